//! The data pipeline: scan a directory, split it deterministically, stream shuffled training
//! batches decoded in the background, and hold a fixed validation set.
//!
//! * The split depends only on each file's path relative to the dataset root (FNV-1a hash), so
//!   it is the same on every machine and every run, and adding files never moves old ones.
//! * Training batches are decoded (in parallel, on rayon) by a producer thread a few batches
//!   ahead of the training step, through a bounded channel: the set is never all in memory.
//! * Every draw of an image gets a fresh mask (and flip) from an RNG seeded by
//!   `(seed, epoch, index)`, so runs are reproducible and resuming an epoch replays its order.
//! * A corrupt or unreadable file is reported once (file and reason) and skipped.
//! * Optionally ([`cache`], `--decoded-cache DIR`) the fitted images are decoded once into a file
//!   and read from there on every later draw.

pub mod augment;
pub mod cache;

use facerecon_imaging::masks::MaskSampler;
use facerecon_imaging::{io, layout};
use image::RgbImage;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Batches decoded ahead of the training step.
pub const PREFETCH_BATCHES: usize = 3;

/// Seed of the validation masks: a constant, so every run (whatever its `--seed`) is measured on
/// the same holes.
const VALIDATION_MASK_SEED: u64 = 0x7a11_da7e_5eed;
/// Mixed into the seed of each training image's augmentation draws.
const AUGMENT_STREAM: u64 = 0xa06_3e17;

/// 64-bit FNV-1a, the contract's stable hash: the split by file name must not change between runs.
pub use facerecon_contract::fnv1a64;

pub use facerecon_imaging::masks::mix_seed;

/// A dataset split into training and validation files.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Training files, in path order.
    pub train: Vec<PathBuf>,
    /// Validation files, in hash order (so that a cap takes an unbiased subset), at most `max_val`.
    pub val: Vec<PathBuf>,
}

/// The key a file is hashed by: its path relative to the dataset root, with `/` separators.
fn key(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// A uniform number in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Split `files` (under `root`) deterministically: a file is in validation when the hash of its
/// relative path falls below `validation_fraction`. `max_images` first keeps a deterministic,
/// unbiased subset (ordered by a second hash, not by name: names are often sorted by age or
/// identity). The validation set keeps at most `max_val` files. When the fraction is positive
/// but no file hashes into validation (tiny sets), the lowest-hash file is moved there.
pub fn split_files(
    root: &Path,
    files: &[PathBuf],
    validation_fraction: f64,
    max_images: Option<usize>,
    max_val: usize,
) -> Split {
    let mut keyed: Vec<(u64, u64, &PathBuf)> = files
        .iter()
        .map(|p| {
            let k = key(root, p);
            (fnv1a64(format!("select:{k}").as_bytes()), fnv1a64(k.as_bytes()), p)
        })
        .collect();
    // Order by selection hash (ties by path) so both the subset and the validation cap are stable.
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(b.2)));
    if let Some(n) = max_images {
        keyed.truncate(n);
    }
    let (mut val, mut train): (Vec<_>, Vec<_>) =
        keyed.into_iter().partition(|(_, h, _)| unit(*h) < validation_fraction);
    if val.is_empty() && validation_fraction > 0.0 && train.len() >= 2 {
        let i = (0..train.len()).min_by_key(|&i| train[i].1).unwrap();
        val.push(train.remove(i));
    }
    let mut train: Vec<PathBuf> = train.into_iter().map(|t| t.2.clone()).collect();
    train.sort();
    let val = val.into_iter().take(max_val).map(|t| t.2.clone()).collect();
    Split { train, val }
}

/// Files that could not be used, each reported once on stderr when first seen.
#[derive(Debug, Clone, Default)]
pub struct SkipLog(Arc<Mutex<BTreeMap<PathBuf, String>>>);

impl SkipLog {
    /// Record a bad file; prints a warning the first time it is seen.
    pub fn report(&self, path: &Path, reason: &str) {
        let mut map = self.0.lock().unwrap();
        if !map.contains_key(path) {
            eprintln!("warning: skipping {}: {reason}", path.display());
            map.insert(path.to_path_buf(), reason.to_string());
        }
    }
    fn contains(&self, path: &Path) -> bool {
        self.0.lock().unwrap().contains_key(path)
    }
    /// Every file skipped so far, with the reason.
    pub fn entries(&self) -> Vec<(PathBuf, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect()
    }
}

/// Decode one file and fit it to the model's square.
pub fn load_fitted(path: &Path, size: u32) -> Result<RgbImage, String> {
    let img = io::load_rgb(path).map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("empty image".into());
    }
    Ok(layout::fit_square(&img, size))
}

/// A batch in the model's layout: images `[len,3,S,S]`, masks `[len,1,S,S]` (1 = hole), f32.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Images, `[len, 3, S, S]` in `[0,1]`.
    pub images: Vec<f32>,
    /// Masks, `[len, 1, S, S]`, 1 = hole.
    pub masks: Vec<f32>,
    /// The network input: `images` with the holes zeroed, made on the data thread (the training step
    /// would otherwise spend two full-batch tensor ops on it).
    pub inputs: Vec<f32>,
    /// Images in the batch (fewer than the batch size when files were unreadable, or at the end).
    pub len: usize,
    /// Side `S` of the model's square input.
    pub size: usize,
    /// Files of this batch's slot in the epoch that could not be read (left out of the batch).
    pub unreadable: usize,
}

impl Batch {
    fn from_samples(samples: Vec<(Vec<f32>, Vec<f32>)>, size: usize) -> Batch {
        let len = samples.len();
        let mut images = Vec::with_capacity(len * 3 * size * size);
        let mut masks = Vec::with_capacity(len * size * size);
        for (i, m) in samples {
            images.extend_from_slice(&i);
            masks.extend_from_slice(&m);
        }
        Batch::new(images, masks, len, size)
    }

    fn new(images: Vec<f32>, masks: Vec<f32>, len: usize, size: usize) -> Batch {
        let px = size * size;
        let mut inputs = vec![0f32; images.len()];
        // Plane `p` is channel `p % 3` of image `p / 3`. (Slice loops: they vectorise.)
        for (p, (dst, img)) in inputs.chunks_mut(px.max(1)).zip(images.chunks(px.max(1))).enumerate() {
            let mask = &masks[(p / 3) * px..][..px];
            for ((d, v), m) in dst.iter_mut().zip(img).zip(mask) {
                *d = v * (1.0 - m);
            }
        }
        Batch {
            images,
            masks,
            inputs,
            len,
            size,
            unreadable: 0,
        }
    }
}

/// The training set: what the producer thread needs to build batches.
#[derive(Clone)]
pub struct TrainData {
    files: Arc<Vec<PathBuf>>,
    sampler: Arc<MaskSampler>,
    size: u32,
    batch_size: usize,
    seed: u64,
    flip: bool,
    skipped: SkipLog,
    /// The decoded images, when a [`cache::DecodedCache`] was given: read instead of decoded.
    cache: Option<Arc<cache::DecodedCache>>,
    augment: Option<Arc<crate::config::AugmentConfig>>,
}

impl TrainData {
    /// The training side of the split, drawn in batches of `batch_size` with fresh masks per draw,
    /// all seeded by `seed`.
    pub fn new(
        files: Vec<PathBuf>,
        sampler: MaskSampler,
        size: u32,
        batch_size: usize,
        seed: u64,
        flip: bool,
        skipped: SkipLog,
    ) -> Self {
        TrainData {
            files: Arc::new(files),
            sampler: Arc::new(sampler),
            size,
            batch_size,
            seed,
            flip,
            skipped,
            cache: None,
            augment: None,
        }
    }

    /// Augment each training image as `cfg` says ([`augment`]), before its mask and flip are drawn;
    /// `None` leaves the images as they are.
    pub fn with_augment(self, cfg: Option<crate::config::AugmentConfig>) -> Self {
        TrainData {
            augment: cfg.map(Arc::new),
            ..self
        }
    }

    /// Read the images from `cache` (built for exactly these files at this size) instead of decoding
    /// them: the same pixels, without the decoding's CPU time.
    pub fn with_cache(self, cache: cache::DecodedCache) -> Self {
        TrainData {
            cache: Some(Arc::new(cache)),
            ..self
        }
    }

    /// Number of training files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there are no training files.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Optimiser steps in one epoch (the last batch may be short).
    pub fn batches_per_epoch(&self) -> usize {
        self.files.len().div_ceil(self.batch_size)
    }

    /// Stream epoch `epoch`'s batches, starting after its first `skip` batches (resuming
    /// mid-epoch: the shuffle is seeded by `(seed, epoch)`, so the skipped batches are exactly
    /// the ones already trained on). Decoding runs on a background thread.
    pub fn epoch(&self, epoch: usize, skip: usize) -> EpochBatches {
        let (tx, rx) = sync_channel(PREFETCH_BATCHES - 1);
        let data = self.clone();
        let handle = std::thread::Builder::new()
            .name("facerecon-data".into())
            .spawn(move || {
                let mut order: Vec<usize> = (0..data.files.len()).collect();
                order.shuffle(&mut StdRng::seed_from_u64(mix_seed(&[data.seed, epoch as u64])));
                for chunk in order.chunks(data.batch_size).skip(skip) {
                    let batch = data.build(epoch, chunk);
                    // An empty batch (all its files bad) is sent too: it is a position in the epoch
                    // (resuming skips positions) and its files count as unreadable. A closed channel
                    // ends the thread.
                    if tx.send(batch).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn data thread");
        EpochBatches {
            rx: Some(rx),
            handle: Some(handle),
        }
    }

    fn build(&self, epoch: usize, indices: &[usize]) -> Batch {
        let samples: Vec<_> = indices
            .par_iter()
            .filter_map(|&i| {
                let path = &self.files[i];
                if self.skipped.contains(path) {
                    return None;
                }
                let mut rng = StdRng::seed_from_u64(mix_seed(&[self.seed, epoch as u64, i as u64]));
                let fitted = match &self.cache {
                    Some(c) => c.read(i),
                    None => load_fitted(path, self.size),
                };
                match fitted {
                    Ok(mut img) => {
                        if let Some(cfg) = &self.augment {
                            // Its own RNG stream: without augmentation the masks and flips are unchanged.
                            let mut arng =
                                StdRng::seed_from_u64(mix_seed(&[self.seed, epoch as u64, i as u64, AUGMENT_STREAM]));
                            img = augment::augment(&img, cfg, &mut arng);
                        }
                        let mask = self.sampler.sample(self.size, &mut rng);
                        if self.flip && rng.gen_bool(0.5) {
                            img = image::imageops::flip_horizontal(&img);
                        }
                        Some((layout::to_chw(&img), layout::mask_to_vec(&mask)))
                    }
                    Err(reason) => {
                        self.skipped.report(path, &reason);
                        None
                    }
                }
            })
            .collect();
        let unreadable = indices.len() - samples.len();
        Batch {
            unreadable,
            ..Batch::from_samples(samples, self.size as usize)
        }
    }
}

/// One epoch's batches, decoded ahead on a background thread. Dropping it stops the thread.
pub struct EpochBatches {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for EpochBatches {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for EpochBatches {
    fn drop(&mut self) {
        // Close the channel first so a producer blocked on `send` wakes up and exits.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The validation set, decoded once and kept, with a fixed seeded mask per image.
#[derive(Debug, Clone)]
pub struct ValidationSet {
    /// Images, `[len, 3, S, S]` in `[0,1]`.
    pub images: Vec<f32>,
    /// Masks, `[len, 1, S, S]`, 1 = hole (the same every epoch).
    pub masks: Vec<f32>,
    /// The network inputs (holes zeroed), made once at load time as for training batches.
    pub inputs: Vec<f32>,
    /// Number of images.
    pub len: usize,
    /// Side `S` of the model's square input.
    pub size: usize,
}

impl ValidationSet {
    /// Decode `files` in parallel (bad ones reported to `skipped` and left out) and draw the
    /// fixed masks: image `i` of the list always gets the same hole.
    pub fn load(files: &[PathBuf], sampler: &MaskSampler, size: u32, skipped: &SkipLog) -> ValidationSet {
        let samples: Vec<_> = files
            .par_iter()
            .enumerate()
            .filter_map(|(i, path)| match load_fitted(path, size) {
                Ok(img) => {
                    let mut rng = StdRng::seed_from_u64(mix_seed(&[VALIDATION_MASK_SEED, i as u64]));
                    let mask = sampler.sample(size, &mut rng);
                    Some((layout::to_chw(&img), layout::mask_to_vec(&mask)))
                }
                Err(reason) => {
                    skipped.report(path, &reason);
                    None
                }
            })
            .collect();
        let b = Batch::from_samples(samples, size as usize);
        ValidationSet {
            images: b.images,
            masks: b.masks,
            inputs: b.inputs,
            len: b.len,
            size: b.size,
        }
    }

    /// Images `[start, end)` as a batch (for batched evaluation).
    pub fn slice(&self, start: usize, end: usize) -> Batch {
        let (i, m) = (3 * self.size * self.size, self.size * self.size);
        Batch {
            images: self.images[start * i..end * i].to_vec(),
            masks: self.masks[start * m..end * m].to_vec(),
            inputs: self.inputs[start * i..end * i].to_vec(),
            len: end - start,
            size: self.size,
            unreadable: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> (PathBuf, Vec<PathBuf>) {
        let root = PathBuf::from("/data/faces");
        let files = (0..n)
            .map(|i| root.join(format!("sub{}/img_{i:05}.png", i % 3)))
            .collect();
        (root, files)
    }

    #[test]
    fn split_is_deterministic_and_independent_of_order_and_root() {
        let (root, files) = names(2000);
        let a = split_files(&root, &files, 0.1, None, usize::MAX);
        let mut rev = files.clone();
        rev.reverse();
        assert_eq!(a, split_files(&root, &rev, 0.1, None, usize::MAX));
        assert_eq!(a.train.len() + a.val.len(), 2000);
        assert!((150..250).contains(&a.val.len()), "{}", a.val.len());
        // Moving the dataset keeps the split (hash of the relative path).
        let moved: Vec<PathBuf> = files
            .iter()
            .map(|p| Path::new("/elsewhere").join(p.strip_prefix(&root).unwrap()))
            .collect();
        let b = split_files(Path::new("/elsewhere"), &moved, 0.1, None, usize::MAX);
        assert_eq!(
            b.val.iter().map(|p| p.file_name().unwrap()).collect::<Vec<_>>(),
            a.val.iter().map(|p| p.file_name().unwrap()).collect::<Vec<_>>()
        );
        // Adding files never moves an existing one between train and validation.
        let (_, more) = names(3000);
        let c = split_files(&root, &more, 0.1, None, usize::MAX);
        assert!(a.val.iter().all(|p| c.val.contains(p)));
        assert!(a.train.iter().all(|p| c.train.contains(p)));
    }

    #[test]
    fn max_images_and_val_cap_are_deterministic_subsets() {
        let (root, files) = names(1000);
        let a = split_files(&root, &files, 0.2, Some(100), 5);
        assert_eq!(a, split_files(&root, &files, 0.2, Some(100), 5));
        assert!(a.val.len() <= 5 && !a.val.is_empty());
        assert!(a.train.len() + a.val.len() <= 100 && a.train.len() >= 60);
        // Not simply the first 100 names.
        assert!(a.train.iter().any(|p| p.to_string_lossy().contains("img_009")));
        // Tiny sets still get a validation image.
        let t = split_files(&root, &files[..3], 0.01, None, 10);
        assert_eq!((t.train.len(), t.val.len()), (2, 1));
    }

    /// `train.augment` changes the images of an epoch's batches, the same way for the same seed and
    /// epoch, and leaves the masks (and so the holes' draws) as they are without it; `None` is the
    /// unaugmented data.
    #[test]
    fn augmentation_is_deterministic_and_leaves_the_masks_alone() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..6)
            .map(|i| {
                let p = dir.path().join(format!("f{i}.png"));
                RgbImage::from_fn(24, 20, |x, y| image::Rgb([(x * 9 + i) as u8, (y * 11) as u8, 90]))
                    .save(&p)
                    .unwrap();
                p
            })
            .collect();
        let sampler = MaskSampler::new(
            &serde_yaml::from_str::<Vec<facerecon_imaging::masks::MaskSpec>>(
                "[{kind: box, min: 4, max: 8, weight: 1.0}]",
            )
            .unwrap(),
        )
        .unwrap();
        let data = TrainData::new(files, sampler, 16, 3, 5, true, SkipLog::default());
        let batches = |d: &TrainData, epoch| d.epoch(epoch, 0).collect::<Vec<_>>();
        let plain = batches(&data, 0);
        assert_eq!(batches(&data.clone().with_augment(None), 0)[0].images, plain[0].images);
        let aug = data.clone().with_augment(Some(crate::config::AugmentConfig::default()));
        let (a, b) = (batches(&aug, 0), batches(&aug, 0));
        assert_eq!(a.len(), 2);
        for ((x, y), p) in a.iter().zip(&b).zip(&plain) {
            assert_eq!(x.images, y.images, "deterministic");
            assert_eq!(x.masks, p.masks, "the masks do not depend on the augmentation");
            assert_eq!(x.images.len(), p.images.len());
            assert_ne!(x.images, p.images, "augmented");
        }
        assert_ne!(batches(&aug, 1)[0].images, a[0].images, "another epoch, other draws");
    }
}
