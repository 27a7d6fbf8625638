//! `facerecon-export --checkpoint runs/NAME --out exported/NAME.onnx [--opset 17] [--no-verify]`
//!
//! Reads a checkpoint directory written by `facerecon-train`, writes the ONNX model atomically,
//! re-reads and checks it, and (unless `--no-verify`) compares ONNX Runtime's outputs with the
//! candle model's on a seeded random batch.

use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Parser;
use facerecon_export::{verify, Metadata, OPSET};
use facerecon_model::ModelSpec;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(version, about = "Export a trained facerecon checkpoint to ONNX and verify it")]
struct Args {
    /// Checkpoint directory (config.yaml, model.safetensors, optional metrics.jsonl).
    #[arg(long)]
    checkpoint: PathBuf,
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

/// Batch size and seed of the verification batch.
const VERIFY_BATCH: usize = 3;
const VERIFY_SEED: u64 = 0;

fn main() -> Result<()> {
    let args = Args::parse();
    let config_path = args.checkpoint.join("config.yaml");
    let config_text =
        std::fs::read_to_string(&config_path).with_context(|| format!("cannot read {}", config_path.display()))?;
    let (spec, name) = parse_config(&config_text).with_context(|| format!("{}", config_path.display()))?;
    let weights_path = args.checkpoint.join("model.safetensors");
    let weights = facerecon_model::load_weights(&spec, &weights_path, &Device::Cpu)?;
    let metrics = last_metrics(&args.checkpoint.join("metrics.jsonl"))?;

    let meta = Metadata { name: name.clone(), config_yaml: config_text, metrics };
    let model = facerecon_export::export_with_opset(&spec, &weights, &meta, args.opset)
        .with_context(|| format!("exporting {}", args.checkpoint.display()))?;
    facerecon_export::write_model(&args.out, &model)?;

    let back = facerecon_export::read_model(&args.out)?;
    facerecon_export::check_model(&back, &spec, &args.out)?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "wrote {} (model '{name}', opset {}, {} parameters, {:.1} MB); structure checked",
        args.out.display(),
        args.opset,
        spec.num_parameters()?,
        size as f64 / 1e6
    );

    if let Some(path) = &args.reference {
        write_reference(&spec, &weights, path).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote the candle reference outputs to {}", path.display());
    }
    if args.no_verify {
        println!("ONNX Runtime verification skipped (--no-verify)");
        return Ok(());
    }
    let bytes = std::fs::read(&args.out).with_context(|| format!("cannot read {}", args.out.display()))?;
    match verify::parity(&spec, &weights, &bytes, VERIFY_BATCH, VERIFY_SEED) {
        Ok(p) => {
            println!(
                "ONNX Runtime vs candle on a random batch of {VERIFY_BATCH}: max |diff| reconstruction {:.3e}, inpainted {:.3e} (tolerance {:.0e})",
                p.reconstruction, p.inpainted, verify::TOLERANCE
            );
            if !p.ok() {
                bail!("{}: ONNX Runtime output differs from the candle model by {:.3e} > {:.0e}", args.out.display(), p.max(), verify::TOLERANCE);
            }
            Ok(())
        }
        Err(verify::VerifyError::Unavailable(why)) => bail!(
            "verification of {} skipped: {why}. Run `make setup` (it fetches ONNX Runtime and sets {}), or pass --no-verify",
            args.out.display(),
            verify::ORT_DYLIB_ENV
        ),
        Err(e) => Err(e).with_context(|| format!("verifying {}", args.out.display())),
    }
}

/// The `model` section as a spec, and the config's `name`.
fn parse_config(text: &str) -> Result<(ModelSpec, String)> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).context("invalid YAML")?;
    let model = v.get("model").context("no 'model' section")?;
    let spec: ModelSpec = serde_yaml::from_value(model.clone()).context("invalid 'model' section")?;
    spec.resolve().context("invalid 'model' section")?;
    let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("model").to_string();
    Ok((spec, name))
}

/// The last JSON line of `metrics.jsonl`, if the file exists.
fn last_metrics(path: &Path) -> Result<Option<serde_json::Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match text.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => Ok(Some(
            serde_json::from_str(line).with_context(|| format!("{}: last line is not JSON", path.display()))?,
        )),
        None => Ok(None),
    }
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
        &[("image", &image), ("mask", &mask), ("reconstruction", &rec), ("inpainted", &inp)],
        path,
    )?;
    Ok(())
}
