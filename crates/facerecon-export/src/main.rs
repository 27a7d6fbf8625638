//! `facerecon-export --checkpoint runs/NAME --out exported/NAME.onnx [--opset 17] [--no-verify]`
//!
//! Reads a checkpoint directory written by `facerecon-train` (or an exported fp32 ONNX file, whose
//! initializers are the weights), writes the ONNX model to a temp file next to --out, re-reads and
//! checks it, (unless `--no-verify`) compares ONNX Runtime's outputs with the candle model's, and only
//! then renames it to --out: a failed export or verification leaves nothing at --out. --out and
//! --reference are checked first: they may not name or lie inside the checkpoint (nor be hard links to
//! its files). `--quantize int8 --calibrate DIR` writes an int8 QDQ model instead (see `quantize.rs`),
//! `--precision fp16` a float16 one.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Parser;
use facerecon_contract::checkpoint::{CONFIG_FILE, METRICS_FILE, MODEL_FILE};
use facerecon_contract::{names, MetricsRecord};
use facerecon_export::{calibrate, quantize, source, verify, Metadata, OPSET};
use facerecon_model::ModelSpec;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(version, about = "Export a trained facerecon checkpoint to ONNX and verify it")]
struct Args {
    /// Checkpoint directory (config.yaml, model.safetensors, optional metrics.jsonl), or an fp32
    /// facerecon ONNX file: its initializers are the weights and its metadata the config.
    #[arg(long)]
    checkpoint: PathBuf,
    /// With an ONNX --checkpoint: use this config instead of the one stored in the file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Quantize: `int8` writes a QDQ model (int8 per-channel weights, uint8 activations).
    #[arg(long, value_enum)]
    quantize: Option<Precision>,
    /// Network precision: `fp16` writes float16 weights and activations behind float32 inputs and
    /// outputs (for GPU execution providers).
    #[arg(long, value_enum, default_value = "fp32", conflicts_with = "quantize")]
    precision: FloatPrecision,
    /// Image directory for the activation ranges (the training side of the config's split is used).
    #[arg(long, value_name = "DIR", required_if_eq("quantize", "int8"))]
    calibrate: Option<PathBuf>,
    /// Number of calibration faces.
    #[arg(long, default_value_t = 200)]
    calibration_images: usize,
    /// How a tensor's range is taken from its calibration values.
    #[arg(long, value_enum, default_value = "percentile")]
    calibration_method: CalibrationMethod,
    /// The percentile of --calibration-method percentile.
    #[arg(long, default_value_t = 99.99)]
    percentile: f64,
    /// Seed of the choice of calibration faces and of their masks.
    #[arg(long, default_value_t = 0)]
    calibration_seed: u64,
    /// Layers kept in fp32 (comma-separated spec names).
    #[arg(long, value_delimiter = ',')]
    fp32_layers: Vec<String>,
    /// Keep transposed convolutions as fp32 ConvTranspose (default: exact sub-pixel Conv + DepthToSpace, run in int8).
    #[arg(long)]
    keep_conv_transpose: bool,
    /// Output ONNX file.
    #[arg(long)]
    out: PathBuf,
    /// ONNX opset to write.
    #[arg(long, default_value_t = OPSET)]
    opset: i64,
    /// Skip the ONNX Runtime comparison (the structural check still runs).
    #[arg(long)]
    no_verify: bool,
    /// Also write the verification batch and the candle model's outputs to this .npz
    /// (`image`, `mask`, `reconstruction`, `inpainted`), for scripts/check_onnx.py --reference.
    #[arg(long)]
    reference: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Precision {
    Int8,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum FloatPrecision {
    Fp32,
    Fp16,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum CalibrationMethod {
    Minmax,
    Percentile,
}

/// Calibration faces the int8 verification compares on, and its least accepted PSNR (dB) of the
/// int8 reconstruction against the fp32 candle model's (a broken graph scores far below; a good
/// quantization of the shipped unet scores above 40).
const INT8_VERIFY_IMAGES: usize = 16;
const INT8_MIN_PSNR: f64 = 30.0;

/// Batch size and seed of the verification batch.
const VERIFY_BATCH: usize = 3;
const VERIFY_SEED: u64 = 0;

fn main() -> Result<()> {
    let args = Args::parse();
    check_outputs(&args)?;
    let (spec, name, config_text, weights, metrics) = if args.checkpoint.is_file() {
        let config = match &args.config {
            Some(p) => Some(std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?),
            None => None,
        };
        let s = source::from_onnx(&args.checkpoint, config)?;
        (s.spec, s.name, s.config_yaml, s.weights, s.metrics)
    } else {
        if let Some(p) = &args.config {
            bail!(
                "--config {}: only an ONNX --checkpoint takes a config (a run directory has its config.yaml)",
                p.display()
            );
        }
        let config_path = args.checkpoint.join(CONFIG_FILE);
        let config_text =
            std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
        let (spec, name) = parse_config(&config_text).with_context(|| format!("{}", config_path.display()))?;
        let weights_path = args.checkpoint.join(MODEL_FILE);
        let weights = facerecon_model::load_weights(&spec, &weights_path, &Device::Cpu)?;
        let metrics = last_metrics(&args.checkpoint.join(METRICS_FILE))?;
        (spec, name, config_text, weights, metrics)
    };

    let meta = Metadata {
        name: name.clone(),
        config_yaml: config_text.clone(),
        metrics,
    };
    let mut model = facerecon_export::export_with_opset(&spec, &weights, &meta, args.opset)
        .with_context(|| format!("exporting {}", args.checkpoint.display()))?;
    let int8 = if args.quantize == Some(Precision::Int8) {
        let (q, check) = quantize_int8(&args, &spec, &config_text, &weights, &model)?;
        model = q;
        Some(check)
    } else {
        None
    };
    let fp16 = args.precision == FloatPrecision::Fp16;
    if fp16 {
        model = facerecon_export::fp16::to_fp16(&model)?;
    }

    // Staged under a temp name: any error below drops it (the temp file is removed), and --out
    // is only replaced once everything passed.
    let staged = facerecon_export::stage_model(&args.out, &model)?;
    let bytes =
        std::fs::read(staged.temp()).with_context(|| format!("cannot read back {}", staged.temp().display()))?;
    let back = <facerecon_export::onnx::ModelProto as prost::Message>::decode(bytes.as_slice()).map_err(|source| {
        facerecon_export::ExportError::Decode {
            path: args.out.clone(),
            source,
        }
    })?;
    facerecon_export::check::check_finite(&back)
        .map_err(|e| anyhow::anyhow!("{}: {e}; nothing written", args.out.display()))?;
    if int8.is_some() {
        quantize::check_quantized(&back)
            .map_err(|e| anyhow::anyhow!("{}: {e}; nothing written", args.out.display()))?;
    } else if fp16 {
        facerecon_export::fp16::check_fp16(&back, &spec)
            .map_err(|e| anyhow::anyhow!("{}: {e}; nothing written", args.out.display()))?;
    } else {
        facerecon_export::check_model(&back, &spec, &args.out)?;
    }
    println!(
        "exported '{name}' (opset {}, {} parameters, {:.1} MB); structure checked",
        args.opset,
        spec.num_parameters()?,
        bytes.len() as f64 / 1e6
    );

    let reference = match &args.reference {
        Some(path) => {
            let staged = facerecon_export::Staged::new(path)?;
            write_reference(&spec, &weights, staged.temp())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Some(staged)
        }
        None => None,
    };
    if args.no_verify {
        println!("ONNX Runtime verification skipped (--no-verify)");
    } else {
        verify_file(&args, &spec, &weights, &bytes, int8.as_ref(), fp16)?;
    }
    // The model and its reference outputs are replaced together or not at all.
    let mut files = vec![staged];
    files.extend(reference);
    facerecon_export::commit_all(files).context("nothing written")?;
    println!("wrote {}", args.out.display());
    if let Some(path) = &args.reference {
        println!("wrote the candle reference outputs to {}", path.display());
    }
    Ok(())
}

/// Runs the staged file `bytes` through ONNX Runtime against the candle model: int8 on calibration
/// faces (PSNR, it is not within 1e-4 of fp32), fp16 and fp32 on a seeded random batch (max |diff|).
/// An error means nothing is written.
fn verify_file(
    args: &Args,
    spec: &ModelSpec,
    weights: &std::collections::HashMap<String, candle_core::Tensor>,
    bytes: &[u8],
    int8: Option<&(candle_core::Tensor, candle_core::Tensor)>,
    fp16: bool,
) -> Result<()> {
    if let Some((image, mask)) = int8 {
        let q = quantize::compare_with_candle(spec, weights, bytes, image, mask)
            .with_context(|| format!("verifying {}; nothing written", args.out.display()))?;
        println!(
            "ONNX Runtime int8 vs candle fp32 on {} calibration faces: reconstruction PSNR {:.2} dB (holes {:.2} dB), max |diff| {:.3e}",
            image.dim(0)?,
            q.psnr,
            q.psnr_hole,
            q.max_abs
        );
        if q.psnr < INT8_MIN_PSNR {
            bail!(
                "{}: the int8 model is far from the fp32 model (PSNR {:.2} dB < {INT8_MIN_PSNR} dB); nothing written",
                args.out.display(),
                q.psnr
            );
        }
        return Ok(());
    }
    let tolerance = if fp16 {
        facerecon_export::fp16::FP16_TOLERANCE
    } else {
        verify::TOLERANCE
    };
    let what = if fp16 { "fp16 " } else { "" };
    match verify::parity(spec, weights, bytes, VERIFY_BATCH, VERIFY_SEED) {
        Ok(p) => {
            println!(
                "ONNX Runtime (CPU) {what}vs candle fp32 on a random batch of {VERIFY_BATCH}: max |diff| reconstruction {:.3e}, inpainted {:.3e} (tolerance {tolerance:.0e})",
                p.reconstruction, p.inpainted
            );
            // Written so that a NaN difference (a non-finite output) fails too.
            if p.max().is_nan() || p.max() > tolerance {
                bail!(
                    "{}: ONNX Runtime output differs from the candle model by {:.3e} > {tolerance:.0e}; nothing written",
                    args.out.display(),
                    p.max()
                );
            }
            Ok(())
        }
        Err(verify::VerifyError::Unavailable(why)) => bail!(
            "verification of {} failed: {why}; nothing written. Run `make setup` (it fetches ONNX Runtime and sets {}), or pass --no-verify",
            args.out.display(),
            verify::ORT_DYLIB_ENV
        ),
        Err(e) => Err(e).with_context(|| format!("verifying {}; nothing written", args.out.display())),
    }
}

/// Checks --out and --reference before anything is read or written: neither may name or lie
/// inside the checkpoint directory, be a hard link to one of its files, be a directory, or be
/// the other; both must be writable now.
fn check_outputs(args: &Args) -> Result<()> {
    use facerecon_imaging::io::{probe_writable, resolve, Protected};
    let mut protected = Protected::default();
    if args.checkpoint.is_file() {
        protected.add("the checkpoint (ONNX file)", &args.checkpoint);
    } else {
        protected.add("the checkpoint directory", &args.checkpoint);
    }
    // The other inputs: the config given with an ONNX checkpoint, the calibration images.
    if let Some(config) = &args.config {
        protected.add("--config", config);
    }
    if let Some(dir) = &args.calibrate {
        protected.add("the --calibrate directory", dir);
    }
    // Its files by identity, so that a hard link to them elsewhere is refused too.
    let mut dirs = vec![(args.checkpoint.clone(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() && depth < 3 => dirs.push((entry.path(), depth + 1)),
                Ok(t) if t.is_file() => protected.add_file_id("the checkpoint's file", &entry.path()),
                _ => {}
            }
        }
    }
    let outputs = [("--out", Some(&args.out)), ("--reference", args.reference.as_ref())];
    for (what, path) in outputs {
        let Some(path) = path else { continue };
        protected.check(what, path).map_err(anyhow::Error::msg)?;
        probe_writable(path).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    }
    if let Some(reference) = &args.reference {
        if resolve(reference)? == resolve(&args.out)? {
            bail!(
                "--reference {} is also --out: give them different names",
                reference.display()
            );
        }
    }
    Ok(())
}

/// The `model` section as a spec, and the config's `name`.
fn parse_config(text: &str) -> Result<(ModelSpec, String)> {
    source::parse_config(text).map_err(anyhow::Error::msg)
}

/// Calibrate on the training side of `--calibrate` and rewrite `model` as int8 QDQ. Returns the
/// quantized model and the first calibration faces (for the verification).
fn quantize_int8(
    args: &Args,
    spec: &ModelSpec,
    config_text: &str,
    weights: &std::collections::HashMap<String, candle_core::Tensor>,
    model: &facerecon_export::onnx::ModelProto,
) -> Result<(
    facerecon_export::onnx::ModelProto,
    (candle_core::Tensor, candle_core::Tensor),
)> {
    let dir = args
        .calibrate
        .as_ref()
        .context("--quantize int8 needs --calibrate DIR")?;
    let config = facerecon_train::Config::from_yaml(config_text, &args.checkpoint)?;
    let method = match args.calibration_method {
        CalibrationMethod::Minmax => calibrate::Method::MinMax,
        CalibrationMethod::Percentile if args.percentile > 50.0 && args.percentile <= 100.0 => {
            calibrate::Method::Percentile(args.percentile)
        }
        CalibrationMethod::Percentile => bail!("--percentile {} must be in (50, 100]", args.percentile),
    };
    if args.calibration_images == 0 {
        bail!("--calibration-images must be at least 1");
    }
    let files = calibrate::calibration_files(dir, &config, args.calibration_images, args.calibration_seed)
        .map_err(anyhow::Error::msg)?;
    let (image, mask) = calibrate::load_batch(&files, &config, args.calibration_seed).map_err(anyhow::Error::msg)?;
    let vb = candle_nn::VarBuilder::from_tensors(weights.clone(), candle_core::DType::F32, &Device::Cpu);
    let candle_model = facerecon_model::Model::new(spec, vb)?;
    let started = std::time::Instant::now();
    let ranges = calibrate::calibrate(&candle_model, &image, &mask, method)?;
    println!(
        "calibrated {} tensors on {} training-side faces of {} ({method}, seed {}) in {:.1} s",
        ranges.len(),
        files.len(),
        dir.display(),
        args.calibration_seed,
        started.elapsed().as_secs_f64()
    );
    let opts = quantize::QuantizeOptions {
        fp32_layers: args.fp32_layers.clone(),
        subpixel: !args.keep_conv_transpose,
        description: serde_json::json!({
            "images": files.len(),
            "method": method.to_string(),
            "seed": args.calibration_seed,
            "data": "training side of the config's split of --calibrate",
            "ranges": ranges,
        }),
    };
    let q = quantize::quantize(model, spec, &ranges, &opts)?;
    let counts = quantize::op_counts(&q);
    println!(
        "int8 QDQ graph: {}",
        counts
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let k = INT8_VERIFY_IMAGES.min(files.len());
    Ok((q, (image.narrow(0, 0, k)?, mask.narrow(0, 0, k)?)))
}

/// The last record of `metrics.jsonl`, if the file exists.
fn last_metrics(path: &Path) -> Result<Option<MetricsRecord>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    MetricsRecord::last(&text).with_context(|| format!("{}: the last line is not a metrics record", path.display()))
}

/// The verification batch and the candle model's outputs on it, as .npz.
fn write_reference(
    spec: &ModelSpec,
    weights: &std::collections::HashMap<String, candle_core::Tensor>,
    path: &Path,
) -> Result<()> {
    let vb = candle_nn::VarBuilder::from_tensors(weights.clone(), candle_core::DType::F32, &Device::Cpu);
    let model = facerecon_model::Model::new(spec, vb)?;
    let (image, mask) = verify::random_batch(spec, VERIFY_BATCH, VERIFY_SEED)?;
    let (rec, inp) = model.forward(&image, &mask)?;
    candle_core::Tensor::write_npz(
        &[
            (names::IMAGE, &image),
            (names::MASK, &mask),
            (names::RECONSTRUCTION, &rec),
            (names::INPAINTED, &inp),
        ],
        path,
    )?;
    Ok(())
}
