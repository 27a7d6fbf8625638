//! `facerecon-export --checkpoint runs/NAME --out exported/NAME.onnx [--opset 17] [--no-verify]`
//!
//! Reads a checkpoint directory written by `facerecon-train`, writes the ONNX model to a temp file
//! next to --out, re-reads and checks it, (unless `--no-verify`) compares ONNX Runtime's outputs
//! with the candle model's on a seeded random batch, and only then renames it to --out: a failed
//! export or verification leaves nothing at --out. --out and --reference are checked first: they
//! may not name or lie inside the checkpoint directory (nor be hard links to its files).

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
    check_outputs(&args)?;
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
    // Staged under a temp name: any error below drops it (the temp file is removed), and --out
    // is only replaced once everything passed.
    let staged = facerecon_export::stage_model(&args.out, &model)?;
    let bytes = std::fs::read(staged.temp()).with_context(|| format!("cannot read back {}", staged.temp().display()))?;
    let back = <facerecon_export::onnx::ModelProto as prost::Message>::decode(bytes.as_slice())
        .map_err(|source| facerecon_export::ExportError::Decode { path: args.out.clone(), source })?;
    facerecon_export::check_model(&back, &spec, &args.out)?;
    println!(
        "exported '{name}' (opset {}, {} parameters, {:.1} MB); structure checked",
        args.opset,
        spec.num_parameters()?,
        bytes.len() as f64 / 1e6
    );

    let reference = match &args.reference {
        Some(path) => {
            let staged = facerecon_export::Staged::new(path)?;
            write_reference(&spec, &weights, staged.temp()).with_context(|| format!("cannot write {}", path.display()))?;
            Some(staged)
        }
        None => None,
    };
    if args.no_verify {
        println!("ONNX Runtime verification skipped (--no-verify)");
    } else {
        match verify::parity(&spec, &weights, &bytes, VERIFY_BATCH, VERIFY_SEED) {
            Ok(p) => {
                println!(
                    "ONNX Runtime vs candle on a random batch of {VERIFY_BATCH}: max |diff| reconstruction {:.3e}, inpainted {:.3e} (tolerance {:.0e})",
                    p.reconstruction, p.inpainted, verify::TOLERANCE
                );
                if !p.ok() {
                    bail!("{}: ONNX Runtime output differs from the candle model by {:.3e} > {:.0e}; nothing written", args.out.display(), p.max(), verify::TOLERANCE);
                }
            }
            Err(verify::VerifyError::Unavailable(why)) => bail!(
                "verification of {} failed: {why}; nothing written. Run `make setup` (it fetches ONNX Runtime and sets {}), or pass --no-verify",
                args.out.display(),
                verify::ORT_DYLIB_ENV
            ),
            Err(e) => return Err(e).with_context(|| format!("verifying {}; nothing written", args.out.display())),
        }
    }
    if let (Some(staged), Some(path)) = (reference, &args.reference) {
        staged.commit()?;
        println!("wrote the candle reference outputs to {}", path.display());
    }
    staged.commit()?;
    println!("wrote {}", args.out.display());
    Ok(())
}

/// Checks --out and --reference before anything is read or written: neither may name or lie
/// inside the checkpoint directory, be a hard link to one of its files, be a directory, or be
/// the other; both must be writable now.
fn check_outputs(args: &Args) -> Result<()> {
    use facerecon_imaging::io::{probe_writable, resolve, Protected};
    let mut protected = Protected::default();
    protected.add("the checkpoint directory", &args.checkpoint);
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
            bail!("--reference {} is also --out: give them different names", reference.display());
        }
    }
    Ok(())
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
