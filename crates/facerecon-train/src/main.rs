//! `facerecon-train`: train a face-inpainting autoencoder from a config.
use anyhow::{Context, Result};
use clap::Parser;
use facerecon_train::TrainOptions;
use std::path::PathBuf;

/// Train a face-reconstruction autoencoder (config: configs/*.yaml) into a checkpoint directory.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Config file (YAML); optional with --resume (the run's config.yaml is used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dataset directory, scanned recursively. Without it, synthetic faces are generated in data/synthetic.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run directory for checkpoints, metrics and samples (e.g. runs/seed).
    #[arg(long)]
    out: PathBuf,
    /// Override the config's number of epochs (total, including epochs already done when resuming).
    #[arg(long)]
    epochs: Option<usize>,
    /// Use a deterministic subset of this many images.
    #[arg(long)]
    max_images: Option<usize>,
    /// Continue the checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// With --resume in the middle of an epoch: accept a --seed, --batch-size, --max-images or --data
    /// that differs from the run's (refused otherwise: the rest of the epoch would not be the run's).
    #[arg(long, requires = "resume")]
    allow_changes: bool,
    /// Start over even if --out already holds a checkpoint (its outputs are removed).
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Start from the model weights of another run directory or of an exported fp32 ONNX file
    /// (e.g. exported/unet.onnx; fine-tuning): new optimiser and schedule, this config's masks and
    /// loss; the model must be the same.
    #[arg(long, value_name = "RUN_DIR|FILE.onnx", conflicts_with = "resume")]
    init_from: Option<PathBuf>,
    /// Seed of the initial weights, shuffles, masks and flips (default: the config's train.seed).
    #[arg(long)]
    seed: Option<u64>,
    /// cpu or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Override the config's batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Worker threads for decoding and CPU kernels (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop after this many optimiser steps in total (smoke runs); a checkpoint is saved.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Generate N procedural faces (into --data if given and empty, else data/synthetic) and train on them.
    #[arg(long, value_name = "N")]
    synthetic: Option<usize>,
    /// Run every layer with candle's plain ops instead of the fast CPU kernels (~15x slower): for
    /// benchmarks and cross-checks of the kernels (benches/), not for real training.
    #[arg(long)]
    reference_ops: bool,
    /// Decode the training images once into a cache file in DIR (named after the model size and the
    /// files' paths, sizes and modification times; rebuilt when any changes) and read them from there:
    /// saves the decoding's CPU time on every later draw and run
    #[arg(long, value_name = "DIR")]
    decoded_cache: Option<PathBuf>,
    /// Print a machine-readable `RESULT {json}` line (steady-state images/s, steps) on stdout at the end.
    #[arg(long, hide = true)]
    bench_json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let _ = facerecon_model::alloc::keep_freed_memory();
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot set up the thread pool")?;
    }
    facerecon_model::layers::set_reference_ops(cli.reference_ops);
    let threads = rayon::current_num_threads();
    let opts = TrainOptions {
        config: cli.config,
        data: cli.data,
        out: cli.out,
        epochs: cli.epochs,
        batch_size: cli.batch_size,
        seed: cli.seed,
        max_images: cli.max_images,
        max_steps: cli.max_steps,
        synthetic: cli.synthetic,
        resume: cli.resume,
        force: cli.force,
        init_from: cli.init_from,
        device: cli.device,
        allow_changes: cli.allow_changes,
        decoded_cache: cli.decoded_cache,
    };
    let summary = facerecon_train::run(&opts)?;
    eprintln!("{summary}");
    if cli.bench_json {
        let result = serde_json::json!({
            "tool": "facerecon-train",
            "ops": if cli.reference_ops { "reference" } else { "fast" },
            "threads": threads,
            "steps": summary.steps,
            "steady_steps": summary.steady_steps,
            "warmup_steps": facerecon_train::train::WARMUP_STEPS,
            "img_per_s": summary.steady_images_per_sec,
            "data_wait": summary.steady_data_wait,
            "img_per_s_all": summary.images_per_sec,
            "device": opts.device,
            "losses": summary.step_losses,
        });
        println!("RESULT {result}");
    }
    Ok(())
}
