//! The batch pipeline: decode and prepare the next chunk (in parallel) while ONNX Runtime runs the
//! current one, then composite and write its outputs in parallel. One bad file never stops the rest.

use facerecon_imaging::{composite, io, masks, ImagingError};
use facerecon_runtime::{pipeline, FitMode, Prepared, Runtime};
use image::{DynamicImage, GenericImageView, GrayImage, Luma, RgbImage};
use indicatif::ProgressBar;
use rayon::prelude::*;

use crate::{
    plan::{Job, MaskSource},
    report::{FileResult, Status},
};

/// A hole rectangle from `--box`, in original-image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxArg {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl std::str::FromStr for BoxArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<u32> = s
            .split(',')
            .map(|p| p.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("--box {s:?}: expected X,Y,W,H (non-negative integers)"))?;
        match parts[..] {
            [x, y, w, h] if w > 0 && h > 0 => Ok(BoxArg { x, y, w, h }),
            [_, _, _, _] => Err(format!("--box {s:?}: width and height must be > 0")),
            _ => Err(format!("--box {s:?}: expected 4 numbers X,Y,W,H")),
        }
    }
}

/// How each image's mask is built.
#[derive(Debug, Clone)]
pub struct MaskRules {
    /// Mask files.
    pub source: MaskSource,
    /// Boxes added to every mask.
    pub boxes: Vec<BoxArg>,
    /// Mask files use 0 = hole.
    pub invert: bool,
    /// Grow holes by this many pixels.
    pub dilate: u32,
    /// Stretch mask files of another aspect ratio to the image (`--resize-masks`) instead of
    /// failing the image.
    pub resize: bool,
}

impl MaskRules {
    /// The mask (255 = hole) for one decoded image (`image`: what the network sees; `opaque`: for
    /// an image with alpha, its fully opaque pixels, the only ones detection may take for a hole).
    fn build(&self, job: &Job, image: &RgbImage, opaque: Option<&[bool]>) -> Result<GrayImage, String> {
        let (w, h) = image.dimensions();
        let file = self.source.mask_for(job)?;
        let mut mask = match &file {
            Some(path) => {
                let fit = if self.resize {
                    masks::MaskFit::Stretch
                } else {
                    masks::MaskFit::Scale
                };
                let mut m = masks::load_mask_fit(path, w, h, fit).map_err(|e| match e {
                    ImagingError::MaskAspect {
                        path,
                        mask_width,
                        mask_height,
                        width,
                        height,
                    } => format!(
                        "mask {} is {mask_width}x{mask_height} but the image {} is {width}x{height}: \
                         another aspect ratio, so resizing it would move the holes (give a mask of the \
                         image's shape, or --resize-masks to stretch it anyway)",
                        path.display(),
                        job.input.display()
                    ),
                    e => format!("mask: {e}"),
                })?;
                if self.invert {
                    m.pixels_mut().for_each(|p| p.0[0] = 255 - p.0[0]);
                }
                Some(m)
            }
            None => None,
        };
        for b in &self.boxes {
            if b.x >= w || b.y >= h {
                return Err(format!(
                    "--box {},{},{},{} lies outside the {w}x{h} image",
                    b.x, b.y, b.w, b.h
                ));
            }
            let m = mask.get_or_insert_with(|| GrayImage::new(w, h));
            for y in b.y..(b.y.saturating_add(b.h)).min(h) {
                for x in b.x..(b.x.saturating_add(b.w)).min(w) {
                    m.put_pixel(x, y, Luma([masks::HOLE]));
                }
            }
        }
        let mask = match (mask, opaque) {
            (Some(m), _) => m,
            (None, None) => masks::detect_dark_holes(image),
            // Transparency is never a hole, whatever colour it hides.
            (None, Some(opaque)) => masks::detect_dark_holes_where(image, |x, y| opaque[(y * w + x) as usize]),
        };
        Ok(if self.dilate > 0 {
            masks::dilate(&mask, self.dilate)
        } else {
            mask
        })
    }
}

/// A decoded, prepared image waiting for the network.
struct Loaded {
    /// What the network sees (8-bit RGB; for an RGB8 input, the input itself).
    image: RgbImage,
    /// The decoded input when its pixels are of another type (grey, alpha, 16-bit): the output is
    /// written in its type, only its hole pixels replaced.
    original: Option<DynamicImage>,
    mask: GrayImage,
    prepared: Prepared,
    hole_fraction: f32,
}

/// Where failures and progress go: above the progress bar, or straight to stderr.
pub struct Progress {
    /// The bar, when one is shown.
    pub bar: Option<ProgressBar>,
}

impl Progress {
    /// Print a failure (above the bar when there is one).
    pub fn fail(&self, job: &Job, msg: &str) {
        // Most messages (from the imaging crate) already start with the file; don't repeat it.
        let name = job.input.display().to_string();
        let line = if msg.contains(&name) {
            format!("error: {msg}")
        } else {
            format!("error: {name}: {msg}")
        };
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// One image done.
    pub fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

/// Run every job (images fitted to the model by `fit`); returns one result per job, in order.
pub fn run(
    rt: &Runtime,
    jobs: &[Job],
    rules: &MaskRules,
    fit: FitMode,
    overwrite: bool,
    progress: &Progress,
) -> Vec<FileResult> {
    // A chunk is at least a few ORT batches' worth, so decoding has enough images to parallelise.
    let batch = rt.batch_size();
    let chunk = batch * 16usize.div_ceil(batch).max(1);
    let chunks: Vec<&[Job]> = jobs.chunks(chunk).collect();
    let load_chunk =
        |c: &[Job]| -> Vec<Result<Loaded, FileResult>> { c.par_iter().map(|job| load(rt, job, rules, fit)).collect() };

    let mut results = Vec::with_capacity(jobs.len());
    let mut next = chunks.first().map(|c| load_chunk(c));
    for (k, chunk) in chunks.iter().enumerate() {
        let loaded = next.take().unwrap_or_default();
        let (done, ahead) = rayon::join(
            || process(rt, chunk, loaded, overwrite, progress),
            || chunks.get(k + 1).map(|c| load_chunk(c)),
        );
        next = ahead;
        results.extend(done);
    }
    results
}

fn failed(job: &Job, error: String, hole_fraction: Option<f32>) -> FileResult {
    FileResult {
        input: job.input.clone(),
        output: job.output.clone(),
        status: Status::Failed,
        error: Some(error),
        hole_fraction,
    }
}

/// A decode error, plus the job's name clash when it has one (both are wrong with the file).
pub fn with_clash(error: String, job: &Job) -> String {
    match &job.clash {
        Some(clash) => format!("{error}; also, {clash}"),
        None => error,
    }
}

fn load(rt: &Runtime, job: &Job, rules: &MaskRules, fit: FitMode) -> Result<Loaded, FileResult> {
    if let Some(e) = &job.error {
        return Err(failed(job, e.clone(), None));
    }
    // Decoded before a name clash fails the job: a broken file is reported as broken too.
    let decoded = io::load_image(&job.input).map_err(|e| failed(job, with_clash(e.to_string(), job), None))?;
    // A pixel type we cannot keep is this file's own problem too, reported before (with) a clash.
    composite::check_keepable(&decoded).map_err(|e| failed(job, with_clash(e, job), None))?;
    if let Some(clash) = &job.clash {
        return Err(failed(job, clash.clone(), None));
    }
    let (image, original) = match decoded {
        DynamicImage::ImageRgb8(rgb) => (rgb, None),
        other => (composite::network_view(&other), Some(other)),
    };
    let opaque = original.as_ref().and_then(composite::opaque_pixels);
    let mask = rules
        .build(job, &image, opaque.as_deref())
        .map_err(|e| failed(job, e, None))?;
    let hole_fraction = masks::hole_fraction(&mask);
    let prepared = pipeline::prepare(&image, &mask, rt.info().image_size, fit)
        .map_err(|e| failed(job, e.to_string(), Some(hole_fraction)))?;
    Ok(Loaded {
        image,
        original,
        mask,
        prepared,
        hole_fraction,
    })
}

/// Run the network on a chunk's good images, then finish and write all of them in parallel.
fn process(
    rt: &Runtime,
    jobs: &[Job],
    loaded: Vec<Result<Loaded, FileResult>>,
    overwrite: bool,
    progress: &Progress,
) -> Vec<FileResult> {
    let ready: Vec<&Prepared> = loaded
        .iter()
        .filter_map(|l| l.as_ref().ok())
        .map(|l| &l.prepared)
        .collect();
    // Per item: a non-finite reconstruction (a broken model) fails its own image only.
    let (mut recs, batch_error) = match rt.infer_each(&ready) {
        Ok(r) => (
            r.into_iter()
                .map(|r| Some(r.map_err(|e| e.to_string())))
                .collect::<Vec<_>>(),
            None,
        ),
        Err(e) => (vec![None; ready.len()], Some(e.to_string())),
    };
    // Hand each good image its reconstruction, in order.
    let mut rec_iter = recs.iter_mut();
    let work: Vec<_> = jobs
        .iter()
        .zip(loaded)
        .map(|(job, l)| {
            let rec = if l.is_ok() {
                rec_iter.next().and_then(Option::take)
            } else {
                None
            };
            (job, l, rec)
        })
        .collect();
    work.into_par_iter()
        .map(|(job, loaded, rec)| {
            let result = match loaded {
                Err(r) => r,
                Ok(l) => write_one(rt, job, l, rec, batch_error.as_deref(), overwrite),
            };
            if let Some(e) = &result.error {
                progress.fail(job, e);
            }
            progress.tick();
            result
        })
        .collect()
}

fn write_one(
    rt: &Runtime,
    job: &Job,
    l: Loaded,
    rec: Option<Result<Vec<f32>, String>>,
    batch_error: Option<&str>,
    overwrite: bool,
) -> FileResult {
    let fraction = Some(l.hole_fraction);
    let (output, status) = if !l.prepared.has_hole() {
        (l.original.unwrap_or(DynamicImage::ImageRgb8(l.image)), Status::NoHole)
    } else {
        let Some(rec) = rec else {
            return failed(
                job,
                batch_error.unwrap_or("no reconstruction came back").to_string(),
                fraction,
            );
        };
        let rec = match rec {
            Ok(rec) => rec,
            Err(e) => return failed(job, e, fraction),
        };
        let finished = match l.original {
            Some(original) => finish_typed(rt, original, &l.mask, &l.prepared, &rec),
            // RGB8: the library's finish (with the seam of `--feather`, if any), into the decoded
            // image itself (no copy of it).
            None => {
                let mut image = l.image;
                rt.finish_in_place(&mut image, &l.mask, &l.prepared, &rec)
                    .map(|()| DynamicImage::ImageRgb8(image))
            }
        };
        match finished {
            Ok(img) => (img, Status::Ok),
            Err(e) => return failed(job, e.to_string(), fraction),
        }
    };
    // Checked again here: the file may have appeared since planning.
    if !overwrite && job.output.exists() {
        return failed(
            job,
            format!(
                "output {} already exists (use --overwrite to replace it)",
                job.output.display()
            ),
            fraction,
        );
    }
    if let Err(e) = crate::png::save_image(&output, &job.output) {
        return failed(job, e, fraction);
    }
    FileResult {
        input: job.input.clone(),
        output: job.output.clone(),
        status,
        error: None,
        hole_fraction: fraction,
    }
}

/// Put the reconstruction into an image of another pixel type than RGB8: resized in floating point
/// (with the seam of `--feather`) and written into its hole pixels in its own type and bit depth
/// (16-bit holes get 16-bit values), alpha kept; every other sample stays as decoded.
fn finish_typed(
    rt: &Runtime,
    mut original: DynamicImage,
    mask: &GrayImage,
    prepared: &Prepared,
    rec: &[f32],
) -> Result<DynamicImage, facerecon_runtime::RuntimeError> {
    let patch = pipeline::finish_f32(
        |x, y| composite::view_colour(&original, x, y),
        original.dimensions(),
        mask,
        prepared,
        rec,
        rt.info().image_size,
        rt.options().feather,
    )?;
    if let Some((region, patch)) = patch {
        composite::paste_holes(&mut original, mask, |x, y| {
            let (px, py) = (x.checked_sub(region.x)?, y.checked_sub(region.y)?);
            (px < region.width && py < region.height).then(|| patch.get_pixel(px, py).0)
        });
    }
    Ok(original)
}
