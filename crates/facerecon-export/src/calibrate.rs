//! Activation ranges for [`crate::quantize`], from the candle model run over real faces.
//!
//! * The faces are drawn from the **training** side of the trainer's hash split of the data directory
//!   (`facerecon_train::data::split_files` with the config's `validation_fraction` and
//!   `max_val_images`), so the held-out faces the model is measured on are never calibration data.
//! * `n` of them are chosen by a seeded shuffle, and image `i` gets a hole drawn from the config's
//!   training masks with an RNG seeded by `(seed, i)`: the same seed gives the same ranges.
//! * [`Method::MinMax`] takes each tensor's extremes; [`Method::Percentile`] the `p`-th percentile of
//!   its values at the top and `100 - p` at the bottom (from a 4096-bin histogram over the min/max
//!   range), which ignores a few outliers and so gives finer steps to the bulk of the values.

use crate::quantize::Range;
use candle_core::{Device, Tensor};
use facerecon_imaging::layout;
use facerecon_imaging::masks::{mix_seed, MaskSampler};
use facerecon_model::Model;
use facerecon_train::data::{load_fitted, split_files};
use facerecon_train::Config;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How a tensor's range is taken from its calibration values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The smallest and largest value seen (one outlier widens the range for every value).
    MinMax,
    /// Percentile `p` in (50, 100], e.g. 99.99.
    Percentile(f64),
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::MinMax => write!(f, "minmax"),
            Method::Percentile(p) => write!(f, "percentile {p}"),
        }
    }
}

/// Histogram bins per tensor for [`Method::Percentile`].
pub const BINS: usize = 4096;
/// Images per forward pass.
pub const BATCH: usize = 16;

/// The calibration images: `n` training-side files of `dir` (seeded choice, returned in path order).
pub fn calibration_files(dir: &Path, config: &Config, n: usize, seed: u64) -> Result<Vec<PathBuf>, String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!(
            "--calibrate {} is a file, expected a directory of face images",
            dir.display()
        ));
    }
    if !dir.is_dir() {
        return Err(format!(
            "--calibrate {}: the calibration directory does not exist",
            dir.display()
        ));
    }
    // The same walk as the trainer's (each file once, link loops ended); what it leaves out is said.
    let listing = facerecon_imaging::io::walk_images(dir);
    for s in listing.skipped.iter().take(50) {
        eprintln!("warning: skipped {}: {}", s.path.display(), s.reason);
    }
    let files = listing.files;
    let t = &config.train;
    let split = split_files(dir, &files, t.validation_fraction, None, t.max_val_images);
    if split.train.is_empty() {
        return Err(format!(
            "{}: no training-side images ({} image files found)",
            dir.display(),
            files.len()
        ));
    }
    let mut train = split.train;
    train.shuffle(&mut StdRng::seed_from_u64(mix_seed(&[seed, 0xCA11B])));
    train.truncate(n);
    train.sort();
    Ok(train)
}

/// The calibration batch: images `[N, C, S, S]` with the holes zeroed (the network input contract)
/// and masks `[N, 1, S, S]`, image `i` with a training mask seeded by `(seed, i)`. Unreadable files
/// are an error naming the file (calibration data should be clean, and silently fewer images would
/// change the ranges).
pub fn load_batch(files: &[PathBuf], config: &Config, seed: u64) -> Result<(Tensor, Tensor), String> {
    let size = config.model.image_size as u32;
    let sampler = MaskSampler::new(&config.masks).map_err(|e| format!("masks: {e}"))?;
    let (mut images, mut masks) = (Vec::new(), Vec::new());
    for (i, f) in files.iter().enumerate() {
        let img = load_fitted(f, size).map_err(|e| format!("{}: {e}", f.display()))?;
        let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, i as u64]));
        let mask = layout::mask_to_vec(&sampler.sample(size, &mut rng));
        let chw = layout::to_chw(&img);
        let plane = mask.len();
        images.extend(chw.iter().enumerate().map(|(k, v)| v * (1.0 - mask[k % plane])));
        masks.extend(mask);
    }
    let (n, s) = (files.len(), size as usize);
    let c = config.model.channels;
    let image = Tensor::from_vec(images, (n, c, s, s), &Device::Cpu).map_err(|e| e.to_string())?;
    let mask = Tensor::from_vec(masks, (n, 1, s, s), &Device::Cpu).map_err(|e| e.to_string())?;
    Ok((image, mask))
}

/// Run `model` over the batch (in chunks of [`BATCH`]) and return the range of the network input
/// and of every layer's output, by name.
pub fn calibrate(
    model: &Model,
    image: &Tensor,
    mask: &Tensor,
    method: Method,
) -> candle_core::Result<BTreeMap<String, Range>> {
    let n = image.dim(0)?;
    let each = |f: &mut dyn FnMut(&str, &[f32])| -> candle_core::Result<()> {
        for start in (0..n).step_by(BATCH) {
            let len = BATCH.min(n - start);
            let (im, ma) = (image.narrow(0, start, len)?, mask.narrow(0, start, len)?);
            let mut err = None;
            model.trace(
                &im,
                &ma,
                &mut |name, t| match t.flatten_all().and_then(|t| t.to_vec1::<f32>()) {
                    Ok(v) => f(name, &v),
                    Err(e) => err = Some(e),
                },
            )?;
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    };
    let mut minmax: BTreeMap<String, Range> = BTreeMap::new();
    each(&mut |name, v| {
        let r = minmax.entry(name.to_string()).or_insert(Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        });
        for &x in v {
            r.min = r.min.min(x);
            r.max = r.max.max(x);
        }
    })?;
    let Method::Percentile(p) = method else {
        return Ok(minmax);
    };
    let mut hist: BTreeMap<String, (Vec<u64>, u64)> = BTreeMap::new();
    each(&mut |name, v| {
        let r = minmax[name];
        let (h, total) = hist.entry(name.to_string()).or_insert_with(|| (vec![0; BINS], 0));
        let width = (r.max - r.min).max(f32::MIN_POSITIVE);
        for &x in v {
            let b = (((x - r.min) / width) * BINS as f32) as usize;
            h[b.min(BINS - 1)] += 1;
        }
        *total += v.len() as u64;
    })?;
    let frac = ((100.0 - p) / 100.0).clamp(0.0, 0.5);
    Ok(minmax
        .into_iter()
        .map(|(name, r)| {
            let (h, total) = &hist[&name];
            let tail = (frac * *total as f64).floor() as u64;
            let width = (r.max - r.min) / BINS as f32;
            // Lowest bin edge below which at most `tail` values lie, and the highest above which at most `tail` do.
            let (mut acc, mut lo) = (0u64, 0usize);
            while lo < BINS && acc + h[lo] <= tail {
                acc += h[lo];
                lo += 1;
            }
            let (mut acc, mut hi) = (0u64, BINS);
            while hi > 0 && acc + h[hi - 1] <= tail {
                acc += h[hi - 1];
                hi -= 1;
            }
            let range = Range {
                min: r.min + lo as f32 * width,
                max: r.min + hi as f32 * width,
            };
            (name, if range.max > range.min { range } else { r })
        })
        .collect())
}
