//! `--eval`: score a model on the user's own faces, with the trainer's fitting and reproducible holes.
//!
//! Per image `i` of the sorted input list: `layout::fit_square` to the model size (exactly what the
//! trainer feeds the network), a mask at that size (seeded, see [`holes`], or from `--masks`), holes
//! zeroed, the network run in batches, the reconstruction composited into the fitted image (known
//! pixels exact), and `metrics::evaluate` of the 8-bit composite against the fitted original: the
//! picture a user gets, and the numbers any other tool scored on the same fitted images and
//! `--save-masks` masks can be compared with. Beside the PSNR family, the sharpness ratio
//! (`metrics::sharpness`: hole gradient energy of the composite over the original's) says whether a
//! fill is as detailed as a face, or a smooth blob.

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
    // Every output path is checked before any image runs: none may name or lie inside an input,
    // the model or a mask, and the report must be writable now.
    let mut protected = plan::Reads {
        model: rt.path(),
        masks: &opts.masks,
    }
    .protect(inputs);
    for (what, dir) in [("--out", &opts.out), ("--save-masks", &opts.save_masks)] {
        if let Some(dir) = dir {
            if dir.exists() && !dir.is_dir() {
                bail!("{what} {} exists and is not a directory", dir.display());
            }
            protected.check(what, dir).map_err(anyhow::Error::msg)?;
        }
    }
    if let (Some(out), Some(masks)) = (&opts.out, &opts.save_masks) {
        if plan::resolve(out)? == plan::resolve(masks)? {
            bail!(
                "--out and --save-masks are the same directory {}: triptychs and masks share their names",
                out.display()
            );
        }
    }
    let (items, set_names, skipped) = gather(inputs, &writes, opts.overwrite, &mut protected)?;
    if let Some(path) = &opts.report {
        plan::check_report(path, &protected, &[])?;
    }
    crate::report::print_skipped(&skipped);
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
                skipped: &skipped,
            },
        )?;
    }
    Ok(results.iter().filter(|r| r.metrics.is_none()).count())
}

/// The sorted, de-duplicated list of images of every INPUT, and the names of the sets: one per
/// directory INPUT, one for all file INPUTs together. Usage errors (missing input, no images, an
/// output directory inside an input directory) are errors; output-name collisions and existing
/// outputs (without `overwrite`) fail their image.
fn gather(
    inputs: &[PathBuf],
    writes: &[&Path],
    overwrite: bool,
    protected: &mut io::Protected,
) -> Result<(Vec<Item>, Vec<String>, Vec<io::Skipped>)> {
    let write_dirs: Vec<PathBuf> = writes.iter().map(|p| plan::resolve(p)).collect::<Result<_>>()?;
    let mut seen = HashSet::new();
    let mut skipped = Vec::new();
    let mut items = Vec::new();
    let mut set_names: Vec<String> = Vec::new();
    let mut files_set = None;
    for input in inputs {
        let meta = match std::fs::metadata(input) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("input {} does not exist", input.display()),
            Err(e) => bail!("input {}: cannot read it: {e}", input.display()),
        };
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
            let listing = io::walk_images(input);
            if listing.files.is_empty() {
                bail!(
                    "no images found in {} (extensions: {})",
                    input.display(),
                    io::IMAGE_EXTENSIONS.join(", ")
                );
            }
            skipped.extend(listing.skipped);
            listing
                .files
                .into_iter()
                .map(|f| {
                    let rel = f
                        .strip_prefix(input)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| f.file_name().unwrap_or_default().into());
                    (f, rel)
                })
                .collect()
        } else {
            vec![(input.clone(), PathBuf::from(input.file_name().unwrap_or_default()))]
        };
        for (file, relative) in files {
            if seen.insert(plan::resolve(&file).unwrap_or_else(|_| file.clone())) {
                let output = relative.with_extension("png");
                protected.add_file_id("the input", &file);
                items.push(Item {
                    index: 0,
                    set,
                    job: Job {
                        input: file,
                        relative,
                        output,
                        error: None,
                        clash: None,
                    },
                });
            }
        }
    }
    items.sort_by(|a, b| a.job.input.cmp(&b.job.input));
    // Two images may not share a triptych / mask name; `grid.png` is taken by the summary picture.
    let mut owners: HashMap<PathBuf, String> =
        HashMap::from([(PathBuf::from("grid.png"), "the summary grid".to_string())]);
    for (i, item) in items.iter_mut().enumerate() {
        item.index = i;
        if writes.is_empty() {
            continue;
        }
        for dir in writes {
            // E.g. an input directory inside --out whose triptychs would land back inside it.
            protected
                .check(
                    &format!("the output of {},", item.job.input.display()),
                    &dir.join(&item.job.output),
                )
                .map_err(anyhow::Error::msg)?;
        }
        match owners.get(&item.job.output) {
            Some(owner) => {
                item.job.clash = Some(format!(
                    "its output name {} is also used by {owner}; rename one of them",
                    item.job.output.display()
                ))
            }
            None => {
                owners.insert(item.job.output.clone(), item.job.input.display().to_string());
                if let Some(existing) = writes
                    .iter()
                    .map(|d| d.join(&item.job.output))
                    .find(|p| !overwrite && p.exists())
                {
                    item.job.error = Some(format!(
                        "{} already exists (use --overwrite to replace it)",
                        existing.display()
                    ));
                }
            }
        }
    }
    if let Some(k) = files_set {
        let n = items.iter().filter(|i| i.set == k).count();
        set_names[k] = format!("files ({n})");
    }
    Ok((items, set_names, skipped))
}

fn load(item: &Item, size: u32, opts: &EvalOptions, sampler: &MaskSampler) -> Result<Loaded, String> {
    if let Some(e) = &item.job.error {
        return Err(e.clone());
    }
    // Decoded before a name clash fails the item: a broken file is reported as broken too.
    let original = io::load_rgb(&item.job.input).map_err(|e| crate::work::with_clash(e.to_string(), &item.job))?;
    if let Some(clash) = &item.job.clash {
        return Err(clash.clone());
    }
    let fitted = layout::fit_square(&original, size);
    let mask = match opts.masks.mask_for(&item.job)? {
        Some(path) => holes::fitted_mask_file(&path, original.dimensions(), size, opts.invert)?,
        None => holes::seeded_mask(sampler, size, opts.seed, item.index),
    };
    let image = layout::to_chw(&composite::zero_holes(&fitted, &mask));
    let mask_vec = layout::mask_to_vec(&mask);
    Ok(Loaded {
        fitted,
        mask,
        image,
        mask_vec,
    })
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
            Ok((rec, _)) => {
                recs.extend(
                    rec.chunks_exact(3 * plane)
                        .map(|r| match r.iter().filter(|v| !v.is_finite()).count() {
                            0 => Ok(r.to_vec()),
                            bad => Err(format!(
                                "model {} returned {bad} non-finite values (NaN or infinity) of {} for this image",
                                rt.path().display(),
                                r.len()
                            )),
                        }),
                )
            }
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
                sharpness: None,
            };
            let triptych = match l.and_then(|(l, rec)| finish(item, &l, &rec, size, opts, &mut result)) {
                Ok(t) => t,
                Err(e) => {
                    progress.fail(&item.job, &e);
                    result.error = Some(e);
                    result.metrics = None;
                    result.sharpness = None;
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
    result.sharpness = Some(metrics::sharpness(&composited, &l.fitted, &l.mask));
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
