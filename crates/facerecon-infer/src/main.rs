//! `facerecon-infer`: fill the holes of face photos with an exported facerecon model (ONNX).
//! A thin shell over `facerecon-runtime`: argument parsing, job planning, reporting.
// The `///` comments on the arguments are clap's --help text, not markdown: `DIR/<name>.png` there is
// what the user reads, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod bench;
mod eval;
mod plan;
mod png;
mod report;
mod shard;
mod work;

use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use facerecon_runtime::{Device, FitMode, Runtime, RuntimeOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::{
    eval::{holes::Holes, EvalOptions},
    plan::MaskSource,
    report::Summary,
    work::{BoxArg, MaskRules, Progress},
};

const HOLES_HELP: &str = "\
Where the holes are (255 = hole in mask files; any value >= 128 counts):
  --masks DIR    one mask per image, paired by name: photos/x/y.jpg uses DIR/x/y.png, else DIR/y.png
                 (a missing mask fails that image)
  --masks FILE   the same mask for every image
                 A mask of another size is scaled (nearest) when it has the image's shape (each side
                 the image's times one factor, +-1 pixel); one of another aspect ratio fails that
                 image, naming both files and sizes, unless --resize-masks stretches it.
  --box X,Y,W,H  a rectangle in original-image pixels; repeatable; added to any mask file
  (none)         holes are the tutorial's blacked-out boxes, and nothing else: an opaque rectangle
                 of near-black pixels (max(R,G,B) <= 16 after a 7x7 opening, >= 80% of it <= 8,
                 as JPEG leaves a black box), box-shaped (>= 90% filled, rows and columns >= 65%
                 dark, square corners), both sides >= 10 pixels, standing out from the photo
                 around it (mean max(R,G,B) >= 50 in the ring 2-3 pixels outside) and away from the
                 image's edge (black borders, padding, dark backgrounds reach it: use --box there).
                 The hole is the rectangle grown by 1 pixel.
                 Dark hair, eyes, backgrounds and night shots are left alone (0 detections on
                 22,317 UTKFace photos); an image without such a box is copied unchanged (counted
                 'without hole'). Give a mask for anything else; --dilate N grows a box whose edge
                 heavy JPEG compression has brightened.

Only hole pixels change: the output has the input's size, colour type (grey or RGB, with or without
alpha) and bit depth (8 or 16), and every other pixel is bit-identical, alpha included (hole pixels
keep their alpha too). The network sees an 8-bit RGB view (alpha over mid-grey 128); 16-bit holes
get 16-bit values from the reconstruction. 32-bit float images (TIFF) are refused.
Outputs are PNG (for every input format, JPEG included), <stem>.png under --out (keeping
sub-directories of an input directory); existing outputs are never replaced without --overwrite.
No output (--out, --report, --save-masks) may name or lie inside an input, the model or a mask;
all are checked before any image runs.
Directories are walked once each (symbolic link loops are not followed, a file reached by two
paths is read once); what a walk skips (other formats such as .gif, dangling links, unreadable
directories) is printed as a warning and listed under skipped in --report. Hidden files are
skipped silently.

Scoring a model (--eval): every image (sorted list, index i) is fitted to the model size as the
trainer does (center square crop, Catmull-Rom resize), gets a hole (--masks, else the seeded
--holes kind drawn for (--eval-seed, i): the same image and seed always get the same hole), is
reconstructed and composited (known pixels exact), and is scored against the fitted original:
psnr_full, psnr_hole (dB), ssim, l1_hole (mean |error| over hole pixels x 100), and sharpness
(luma gradient energy inside the hole over the original's: a flat fill 0, the original 1; a set's is
its summed energies' ratio). A markdown table of the means goes to stdout; --report writes per-image metrics; --out writes per image a triptych
(corrupted | reconstructed | original) and grid.png (the first 8); --save-masks DIR writes the masks
(255 = hole, model size) for scoring other tools on the very same holes (--masks DIR reads them back).

Fleet use: --shard I/N (0-based, I < N) takes the inputs whose path relative to the INPUT
directory they were found under (the file name for a file INPUT) hashes to I (mod N): every file
lands in exactly one shard, the same on every machine and mount point, and adding files moves no
other file. In a job array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT (Slurm) or
--shard $JOB_COMPLETION_INDEX/N (Kubernetes Indexed Job); nothing is read from the environment.
--skip-existing skips inputs whose output is already a complete PNG (a requeued task resumes);
an incomplete one (truncated by a crash) is written again. Each shard should write its own --report.

Exit status: 0 all images written, 1 some images failed (each is reported), 2 usage or model error.";

/// ONNX Runtime's graph optimisation levels.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum GraphOpt {
    Disable,
    Basic,
    Extended,
    All,
}

impl From<GraphOpt> for facerecon_runtime::OptimizationLevel {
    fn from(g: GraphOpt) -> Self {
        match g {
            GraphOpt::Disable => Self::Disable,
            GraphOpt::Basic => Self::Basic,
            GraphOpt::Extended => Self::Extended,
            GraphOpt::All => Self::All,
        }
    }
}

/// Fill the holes of face photos with an exported facerecon model (ONNX, through ONNX Runtime).
#[derive(Parser, Debug)]
#[command(name = "facerecon-infer", version, after_help = HOLES_HELP)]
struct Args {
    /// The exported model (facerecon-export's .onnx).
    #[arg(long, value_name = "M.onnx")]
    model: PathBuf,
    /// Image files or directories (searched recursively: png jpg jpeg bmp webp tif tiff).
    #[arg(value_name = "INPUT", required_unless_present = "bench_session")]
    inputs: Vec<PathBuf>,
    /// Output directory [default: reconstructed; with --eval: triptychs and grid.png, none if not given].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Mask directory (paired by file name) or one mask file for all images.
    #[arg(long, value_name = "DIR|FILE")]
    masks: Option<PathBuf>,
    /// A hole rectangle in original-image pixels (repeatable).
    // allow_hyphen_values: `--box -1,0,5,5` reaches BoxArg's parser, which names the option, instead of
    // clap's "unexpected argument '-1,0,5,5'" with a misleading `-- -1,0,5,5` tip (found by fuzzing).
    #[arg(
        long = "box",
        value_name = "X,Y,W,H",
        conflicts_with = "eval",
        allow_hyphen_values = true
    )]
    boxes: Vec<BoxArg>,
    /// Images per ONNX Runtime run (a model with a fixed batch size overrides it).
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    batch_size: u32,
    /// ONNX Runtime intra-op threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    /// Execution provider: cpu, cuda or cuda:N (CUDA never falls back to the CPU silently).
    #[arg(long, value_name = "cpu|cuda[:N]", default_value = "cpu")]
    device: Device,
    /// What the network sees: the whole image, a square around the hole, or auto (a crop when the
    /// hole is small in a large photo).
    #[arg(long, value_enum, default_value_t = Fit::Auto, conflicts_with = "eval")]
    fit: Fit,
    /// Replace existing outputs (with --eval: triptychs, grid.png and saved masks).
    #[arg(long)]
    overwrite: bool,
    /// Process only shard I of N (0-based, `0/N` .. `N-1/N`): the inputs whose relative path hashes
    /// to I (see "Fleet use" below). Not with --eval.
    #[arg(long, value_name = "I/N", conflicts_with = "eval")]
    shard: Option<shard::Shard>,
    /// Skip inputs whose output already exists as a complete PNG (resume a stopped or requeued
    /// run); they count as skipped in the summary and --report.
    #[arg(long, conflicts_with_all = ["overwrite", "eval"])]
    skip_existing: bool,
    /// Write a JSON report: per-file status, error, hole fraction, output path.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Mask files mark holes with 0 (black) instead of 255.
    #[arg(long)]
    invert_mask: bool,
    /// Stretch a mask file of another aspect ratio than its image to the image (without it such a
    /// mask fails the image: its holes would land in the wrong place).
    #[arg(long, requires = "masks", conflicts_with = "eval")]
    resize_masks: bool,
    /// Grow every hole by N pixels (covers soft or compressed hole borders).
    #[arg(long, value_name = "N", default_value_t = 0, conflicts_with = "eval")]
    dilate: u32,
    /// Seam width in pixels: the reconstruction's colour error on the known ring around each hole is
    /// corrected inside the hole, fading over N pixels (known pixels are never changed). 0 = hard edge.
    #[arg(long, value_name = "N", default_value_t = 2)]
    feather: u32,
    /// ONNX Runtime graph optimisation level.
    #[arg(long, value_enum, default_value_t = GraphOpt::All)]
    graph_opt: GraphOpt,
    /// Score the model: seeded (or --masks) holes on the images fitted to the model size; prints
    /// the mean metrics, writes triptychs with --out. See below.
    #[arg(long)]
    eval: bool,
    /// --eval: the seeded holes (sizes for a 128 model, scaled by size/128): one 28x28 box, one box
    /// of side 32-64, or the unet.yaml mixture of boxes and free-form strokes.
    #[arg(long, value_enum, default_value_t = Holes::Box28, requires = "eval")]
    holes: Holes,
    /// --eval: seed of the holes (image i gets the mask drawn from (seed, i)).
    #[arg(long, value_name = "S", default_value_t = 0, requires = "eval")]
    eval_seed: u64,
    /// --eval: write each mask (model size, 255 = hole) as DIR/<name>.png.
    #[arg(long, value_name = "DIR", requires = "eval")]
    save_masks: Option<PathBuf>,
    /// Benchmark: time N bare network runs at --batch-size on random input, print ms/batch, exit.
    #[arg(long, value_name = "N", hide = true)]
    bench_session: Option<usize>,
    /// No progress bar or summary (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Fit {
    Auto,
    Whole,
    Crop,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Everything after parsing; returns the number of failed images. Errors are usage/model errors.
fn run(args: &Args) -> Result<usize> {
    let start = Instant::now();
    let masks = MaskSource::from_arg(args.masks.as_deref())?;
    let fit = match args.fit {
        Fit::Auto => FitMode::Auto,
        Fit::Whole => FitMode::Whole,
        Fit::Crop => FitMode::Crop,
    };
    let options = RuntimeOptions {
        threads: args.threads.map(|t| t as usize),
        device: args.device,
        batch_size: args.batch_size as usize,
        fit,
        feather: args.feather,
        optimization_level: args.graph_opt.into(),
        ..Default::default()
    };
    if let Some(runs) = args.bench_session {
        let rt = Runtime::load(&args.model, &options).context("loading the model")?;
        bench::bench_session(&rt, runs)?;
        return Ok(0);
    }
    if args.eval {
        return run_eval(args, masks, &options);
    }
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("reconstructed"));
    // Every output path is checked before the model loads and any image runs.
    let mut protected = plan::Reads {
        model: &args.model,
        masks: &masks,
    }
    .protect(&args.inputs);
    let mut planned = plan::plan(&args.inputs, &out, args.overwrite, &mut protected)?;
    // Sharded after planning: name clashes and output checks are decided over all inputs, the
    // same in every shard, so two shards never write the same output.
    let inputs_all_shards = planned.jobs.len();
    if let Some(s) = &args.shard {
        planned.jobs.retain(|j| s.contains(&j.relative));
    }
    if let Some(report) = &args.report {
        let outputs: Vec<&std::path::Path> = planned.jobs.iter().map(|j| j.output.as_path()).collect();
        plan::check_report(report, &protected, &outputs)?;
    }
    report::print_skipped(&planned.skipped);
    // `done[i]` is the result of job i when it is skipped (its output is complete already).
    let (jobs, done) = if args.skip_existing {
        split_done(planned.jobs)
    } else {
        let n = planned.jobs.len();
        (planned.jobs, vec![None; n])
    };
    let skipped_existing = done.iter().flatten().count();
    let rt = Runtime::load(&args.model, &options).context("loading the model")?;
    if !args.quiet {
        let shard = match &args.shard {
            Some(s) => format!("shard {s}: {} of {inputs_all_shards} inputs, ", done.len()),
            None => String::new(),
        };
        let skipped = match skipped_existing {
            0 => String::new(),
            n => format!(" ({n} more already done, skipped)"),
        };
        eprintln!(
            "model {} ({}x{}, {}) on {}; {shard}{} images{skipped} -> {}",
            args.model.display(),
            rt.info().image_size,
            rt.info().image_size,
            rt.info().name.as_deref().unwrap_or("unnamed"),
            rt.provider(),
            jobs.len(),
            out.display()
        );
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating the output directory {}", out.display()))?;

    let progress = progress(args.quiet, jobs.len());
    let rules = MaskRules {
        source: masks,
        boxes: args.boxes.clone(),
        invert: args.invert_mask,
        dilate: args.dilate,
        resize: args.resize_masks,
    };
    let mut ran = work::run(&rt, &jobs, &rules, fit, args.overwrite, &progress).into_iter();
    // Back in input order, skipped ones in their places.
    let results: Vec<_> = done
        .into_iter()
        .map(|d| d.or_else(|| ran.next()).expect("one result per job"))
        .collect();
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    let summary = Summary::of(&results, start.elapsed().as_secs_f64());
    if let Some(path) = &args.report {
        report::write(
            path,
            &args.model,
            rt.info(),
            rt.provider().to_string(),
            &summary,
            &results,
            &planned.skipped,
            args.shard.map(|s| report::ShardInfo {
                index: s.index,
                count: s.count,
                inputs_all_shards,
            }),
        )?;
    }
    if !args.quiet {
        eprintln!("{}", summary.line());
    }
    Ok(summary.failed)
}

/// `--skip-existing`: the jobs still to run, and per job (in order) its `Skipped` result when its
/// output is already a complete PNG. An output that exists but is not a complete PNG (a crash
/// between rename and the data reaching the disk) is removed, with a warning, and written again.
/// Jobs that fail anyway (a name clash: the output is another input's) are left to fail.
fn split_done(jobs: Vec<plan::Job>) -> (Vec<plan::Job>, Vec<Option<report::FileResult>>) {
    let mut run = Vec::with_capacity(jobs.len());
    let mut done = Vec::with_capacity(jobs.len());
    for mut job in jobs {
        // A regular file only (not followed): a directory or link there keeps its usual error.
        let is_file = std::fs::symlink_metadata(&job.output).is_ok_and(|m| m.is_file());
        if job.clash.is_none() && is_file {
            if shard::is_complete_png(&job.output) {
                done.push(Some(report::FileResult {
                    input: job.input,
                    output: job.output,
                    status: report::Status::Skipped,
                    error: None,
                    hole_fraction: None,
                }));
                continue;
            }
            match std::fs::remove_file(&job.output) {
                Ok(()) => {
                    eprintln!(
                        "warning: {} is not a complete PNG (left by a crash?): writing it again",
                        job.output.display()
                    );
                    job.error = None;
                }
                Err(e) => {
                    job.error = Some(format!(
                        "output {} is incomplete and cannot be removed: {e}",
                        job.output.display()
                    ));
                }
            }
        }
        done.push(None);
        run.push(job);
    }
    (run, done)
}

/// A progress bar on a terminal for more than a few images.
fn progress(quiet: bool, len: usize) -> Progress {
    let show_bar = !quiet && std::io::stderr().is_terminal() && len > 8;
    Progress {
        bar: show_bar.then(|| {
            let bar = ProgressBar::new(len as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
                    .expect("valid template"),
            );
            bar
        }),
    }
}

/// `--eval`: score the model on the inputs (see `eval`).
fn run_eval(args: &Args, masks: MaskSource, options: &RuntimeOptions) -> Result<usize> {
    let rt = Runtime::load(&args.model, options).context("loading the model")?;
    if !args.quiet {
        let holes = match &masks {
            MaskSource::None => format!("{} holes, seed {}", args.holes.name(), args.eval_seed),
            MaskSource::Dir(p) | MaskSource::File(p) => format!("masks from {}", p.display()),
        };
        eprintln!(
            "evaluating {} ({}x{}, {}) on {} with {holes}",
            args.model.display(),
            rt.info().image_size,
            rt.info().image_size,
            rt.info().name.as_deref().unwrap_or("unnamed"),
            rt.provider(),
        );
    }
    let opts = EvalOptions {
        holes: args.holes,
        seed: args.eval_seed,
        masks,
        invert: args.invert_mask,
        out: args.out.clone(),
        save_masks: args.save_masks.clone(),
        report: args.report.clone(),
        overwrite: args.overwrite,
    };
    // No bar: the table goes to stdout at the end, failures to stderr as they happen.
    eval::run(&rt, &args.inputs, &opts, &Progress { bar: None })
}
