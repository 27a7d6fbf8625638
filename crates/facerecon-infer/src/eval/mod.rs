//! `--eval`: score a model on the user's own faces, with the trainer's fitting and reproducible holes.
//!
//! Per image `i` of the sorted input list: `layout::fit_square` to the model size (exactly what the
//! trainer feeds the network), a mask at that size (seeded, see [`holes`], or from `--masks`), holes
//! zeroed, the network run in batches, the reconstruction composited into the fitted image (known
//! pixels exact), and `metrics::evaluate` of the 8-bit composite against the fitted original: the
//! picture a user gets, and the numbers any other tool scored on the same fitted images and
//! `--save-masks` masks can be compared with.

pub mod holes;
pub mod report;

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use facerecon_imaging::{composite, grid, io, layout, masks::MaskSampler, metrics};
use facerecon_runtime::Runtime;
use image::{GrayImage, RgbImage};
use rayon::prelude::*;

use self::{
    holes::Holes,
    report::{EvalReport, ImageResult},
};
use crate::{
    plan::{self, Job, MaskSource},
    png,
    work::Progress,
};

/// Rows of the `grid.png` picture written with `--out`.
pub const GRID_ROWS: usize = 8;

/// The seeded mask rule, for the report.
pub const MASK_RULE: &str = "image i of the sorted input list: MaskSampler(holes at model size S, pixel sizes x S/128).sample(S, StdRng::seed_from_u64(mix_seed([seed, i]))) with rand 0.8 and facerecon-train's mix_seed";

/// What `--eval` was asked to do.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Seeded hole kind (ignored with mask files).
    pub holes: Holes,
    /// Seed of the seeded masks.
    pub seed: u64,
    /// Mask files, which override the seeded holes.
    pub masks: MaskSource,
    /// Mask files mark holes with 0.
    pub invert: bool,
    /// Where triptychs and `grid.png` go.
    pub out: Option<PathBuf>,
    /// Where masks are saved (`<relative stem>.png`, 255 = hole).
    pub save_masks: Option<PathBuf>,
    /// The JSON report.
    pub report: Option<PathBuf>,
    /// Replace existing triptychs, masks and grid.png.
    pub overwrite: bool,
}

/// One image to score.
#[derive(Debug, Clone)]
struct Item {
    index: usize,
    set: usize,
    /// `output` is the relative name of its triptych / mask (`<relative stem>.png`).
    job: Job,
}

/// An image fitted and masked, ready for the network.
struct Loaded {
    fitted: RgbImage,
    mask: GrayImage,
    image: Vec<f32>,
    mask_vec: Vec<f32>,
}

/// Run the evaluation; prints the table to stdout, returns the number of images that failed.
pub fn run(rt: &Runtime, inputs: &[PathBuf], opts: &EvalOptions, progress: &Progress) -> Result<usize> {
    let start = Instant::now();
    let writes: Vec<&Path> = opts.out.iter().chain(&opts.save_masks).map(PathBuf::as_path).collect();
    let (items, set_names) = gather(inputs, &writes, opts.overwrite)?;
    if let Some(grid) = opts.out.as_ref().map(|o| o.join("grid.png")) {
        if grid.exists() && !opts.overwrite {
            bail!("{} already exists (use --overwrite to replace it)", grid.display());
        }
    }
    for dir in &writes {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let size = rt.info().image_size;
    let sampler = opts.holes.sampler(size);

    let batch = rt.batch_size();
    let chunk = batch * 16usize.div_ceil(batch).max(1);
    let chunks: Vec<&[Item]> = items.chunks(chunk).collect();
    let load_chunk = |c: &[Item]| -> Vec<Result<Loaded, String>> {
        c.par_iter().map(|item| load(item, size, opts, &sampler)).collect()
    };
    let mut results = Vec::with_capacity(items.len());
    let mut grid_rows = Vec::new();
    let mut next = chunks.first().map(|c| load_chunk(c));
    for (k, chunk) in chunks.iter().enumerate() {
        let loaded = next.take().unwrap_or_default();
        let (done, ahead) = rayon::join(
            || score_chunk(rt, chunk, loaded, opts, progress),
            || chunks.get(k + 1).map(|c| load_chunk(c)),
        );
        next = ahead;
        for (result, triptych) in done {
            if let Some(t) = triptych.filter(|_| grid_rows.len() < GRID_ROWS) {
                grid_rows.push(t);
            }
            results.push(result);
        }
    }
    if let Some(out) = &opts.out {
        if !grid_rows.is_empty() {
            let rows: Vec<Vec<RgbImage>> = grid_rows.into_iter().map(|r| vec![r]).collect();
            png::save_rgb(&grid::grid(&rows), &out.join("grid.png")).map_err(anyhow::Error::msg)?;
        }
    }

    let sets = report::summarise(&results, &set_names);
    let (holes, seed) = match &opts.masks {
        MaskSource::None => (opts.holes.name(), Some(opts.seed)),
        _ => ("masks", None),
    };
    print!("{}", report::table(&sets, holes, seed));
    if let Some(path) = &opts.report {
        let masks = match &opts.masks {
            MaskSource::Dir(p) | MaskSource::File(p) => Some(p.as_path()),
            MaskSource::None => None,
        };
        report::write(
            path,
            &EvalReport {
                model: rt.path(),
                model_name: rt.info().name.as_deref(),
                image_size: size,
                provider: rt.provider().to_string(),
                holes,
                masks,
                seed,
                mask_rule: MASK_RULE,
                seconds: start.elapsed().as_secs_f64(),
                sets: &sets,
                files: &results,
            },
        )?;
    }
    Ok(results.iter().filter(|r| r.metrics.is_none()).count())
}

/// The sorted, de-duplicated list of images of every INPUT, and the names of the sets: one per
/// directory INPUT, one for all file INPUTs together. Usage errors (missing input, no images, an
/// output directory inside an input directory) are errors; output-name collisions and existing
/// outputs (without `overwrite`) fail their image.
fn gather(inputs: &[PathBuf], writes: &[&Path], overwrite: bool) -> Result<(Vec<Item>, Vec<String>)> {
    let write_dirs: Vec<PathBuf> = writes.iter().map(|p| plan::resolve(p)).collect::<Result<_>>()?;
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    let mut set_names: Vec<String> = Vec::new();
    let mut files_set = None;
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("input {}", input.display()))?;
        let set = if meta.is_dir() {
            set_names.push(input.display().to_string());
            set_names.len() - 1
        } else {
            *files_set.get_or_insert_with(|| {
                set_names.push("files".into());
                set_names.len() - 1
            })
        };
        let files: Vec<(PathBuf, PathBuf)> = if meta.is_dir() {
            let resolved = plan::resolve(input)?;
            if let Some(w) = write_dirs.iter().find(|w| w.starts_with(&resolved)) {
                bail!(
                    "refusing to write {} inside the input directory {}: its PNGs would be scored next time",
                    w.display(),
                    input.display()
                );
            }
            let found = io::list_images(input);
            if found.is_empty() {
                bail!("no images found in {} (extensions: {})", input.display(), io::IMAGE_EXTENSIONS.join(", "));
            }
            found
                .into_iter()
                .map(|f| {
                    let rel = f.strip_prefix(input).map(Path::to_path_buf).unwrap_or_else(|_| f.file_name().unwrap_or_default().into());
                    (f, rel)
                })
                .collect()
        } else {
            vec![(input.clone(), PathBuf::from(input.file_name().unwrap_or_default()))]
        };
        for (file, relative) in files {
            if seen.insert(plan::resolve(&file).unwrap_or_else(|_| file.clone())) {
                let output = relative.with_extension("png");
                items.push(Item { index: 0, set, job: Job { input: file, relative, output, error: None } });
            }
        }
    }
    items.sort_by(|a, b| a.job.input.cmp(&b.job.input));
    // Two images may not share a triptych / mask name; `grid.png` is taken by the summary picture.
    let mut owners: HashMap<PathBuf, String> = HashMap::from([(PathBuf::from("grid.png"), "the summary grid".to_string())]);
    for (i, item) in items.iter_mut().enumerate() {
        item.index = i;
        if writes.is_empty() {
            continue;
        }
        match owners.get(&item.job.output) {
            Some(owner) => {
                item.job.error = Some(format!(
                    "its output name {} is also used by {owner}; rename one of them",
                    item.job.output.display()
                ))
            }
            None => {
                owners.insert(item.job.output.clone(), item.job.input.display().to_string());
                if let Some(existing) = writes.iter().map(|d| d.join(&item.job.output)).find(|p| !overwrite && p.exists()) {
                    item.job.error = Some(format!("{} already exists (use --overwrite to replace it)", existing.display()));
                }
            }
        }
    }
    if let Some(k) = files_set {
        let n = items.iter().filter(|i| i.set == k).count();
        set_names[k] = format!("files ({n})");
    }
    Ok((items, set_names))
}

fn load(item: &Item, size: u32, opts: &EvalOptions, sampler: &MaskSampler) -> Result<Loaded, String> {
    if let Some(e) = &item.job.error {
        return Err(e.clone());
    }
    let original = io::load_rgb(&item.job.input).map_err(|e| e.to_string())?;
    let fitted = layout::fit_square(&original, size);
    let mask = match opts.masks.mask_for(&item.job)? {
        Some(path) => holes::fitted_mask_file(&path, original.dimensions(), size, opts.invert)?,
        None => holes::seeded_mask(sampler, size, opts.seed, item.index),
    };
    let image = layout::to_chw(&composite::zero_holes(&fitted, &mask));
    let mask_vec = layout::mask_to_vec(&mask);
    Ok(Loaded { fitted, mask, image, mask_vec })
}

/// Run the network on a chunk's good images, then composite, score and write them in parallel.
/// Returns each item's result and, with `--out`, its triptych (for `grid.png`).
fn score_chunk(
    rt: &Runtime,
    items: &[Item],
    loaded: Vec<Result<Loaded, String>>,
    opts: &EvalOptions,
    progress: &Progress,
) -> Vec<(ImageResult, Option<RgbImage>)> {
    let size = rt.info().image_size;
    let plane = (size * size) as usize;
    let good: Vec<&Loaded> = loaded.iter().filter_map(|l| l.as_ref().ok()).collect();
    let mut recs: Vec<Result<Vec<f32>, String>> = Vec::with_capacity(good.len());
    for group in good.chunks(rt.batch_size()) {
        let image: Vec<f32> = group.iter().flat_map(|l| l.image.iter().copied()).collect();
        let mask: Vec<f32> = group.iter().flat_map(|l| l.mask_vec.iter().copied()).collect();
        match rt.run_tensors(&image, &mask, group.len()) {
            // Per image, as Runtime::infer_each does: a NaN/Inf output (a broken model) fails its
            // image instead of scoring as NaN metrics.
            Ok((rec, _)) => recs.extend(rec.chunks_exact(3 * plane).map(|r| match r.iter().filter(|v| !v.is_finite()).count() {
                0 => Ok(r.to_vec()),
                bad => Err(format!(
                    "model {} returned {bad} non-finite values (NaN or infinity) of {} for this image",
                    rt.path().display(),
                    r.len()
                )),
            })),
            Err(e) => recs.extend(group.iter().map(|_| Err(e.to_string()))),
        }
    }
    let mut recs = recs.into_iter();
    let work: Vec<_> = items
        .iter()
        .zip(loaded)
        .map(|(item, l)| {
            let l = l.and_then(|l| recs.next().expect("one reconstruction per good image").map(|r| (l, r)));
            (item, l)
        })
        .collect();
    work.into_par_iter()
        .map(|(item, l)| {
            let mut result = ImageResult {
                index: item.index,
                input: item.job.input.clone(),
                set: item.set,
                status: "failed",
                error: None,
                hole_fraction: None,
                metrics: None,
            };
            let triptych = match l.and_then(|(l, rec)| finish(item, &l, &rec, size, opts, &mut result)) {
                Ok(t) => t,
                Err(e) => {
                    progress.fail(&item.job, &e);
                    result.error = Some(e);
                    result.metrics = None;
                    result.status = "failed";
                    None
                }
            };
            progress.tick();
            (result, triptych)
        })
        .collect()
}

/// Composite, score, and write the triptych and mask of one image.
fn finish(
    item: &Item,
    l: &Loaded,
    rec: &[f32],
    size: u32,
    opts: &EvalOptions,
    result: &mut ImageResult,
) -> Result<Option<RgbImage>, String> {
    let reconstruction = layout::from_chw(rec, size, size);
    let composited = composite::composite(&l.fitted, &reconstruction, &l.mask);
    result.metrics = Some(metrics::evaluate(&composited, &l.fitted, &l.mask));
    result.hole_fraction = Some(facerecon_imaging::masks::hole_fraction(&l.mask));
    result.status = "ok";
    if let Some(dir) = &opts.save_masks {
        png::save_gray(&l.mask, &dir.join(&item.job.output))?;
    }
    let Some(dir) = &opts.out else { return Ok(None) };
    let row = vec![composite::zero_holes(&l.fitted, &l.mask), composited, l.fitted.clone()];
    let triptych = grid::grid(&[row]);
    png::save_rgb(&triptych, &dir.join(&item.job.output))?;
    Ok(Some(triptych))
}
