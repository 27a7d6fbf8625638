//! The checkpoint directory (`runs/NAME/`, see docs/ARCHITECTURE.md): model and optimiser
//! weights in safetensors, `state.json`, the resolved `config.yaml`. Every file is written to a
//! temporary name and renamed, and `state.json` goes last: a checkpoint is complete when
//! `state.json` says so.

use crate::config::Config;
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
pub const STATE_FILE: &str = "state.json";
pub const CONFIG_FILE: &str = "config.yaml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SAMPLES_DIR: &str = "samples";

/// `state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Completed epochs.
    pub epoch: usize,
    /// Optimiser steps taken in total.
    pub step: u64,
    /// Batches already trained in epoch `epoch + 1` (a mid-epoch checkpoint), else 0.
    #[serde(default)]
    pub batch_in_epoch: usize,
    /// The best validation record so far (highest `psnr_full`), if any epoch finished.
    #[serde(default)]
    pub best: Option<serde_json::Value>,
    pub seed: u64,
    /// The dataset directory.
    pub data: PathBuf,
    /// Whether the data is the generated synthetic set.
    pub synthetic: bool,
    /// The `--max-images` subset, reused on resume.
    #[serde(default)]
    pub max_images: Option<usize>,
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Append one line to a file (metrics.jsonl). Appending a whole line in one write is as atomic as
/// it needs to be: a crash leaves at worst a missing last line.
pub fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes()).with_context(|| format!("cannot append to {}", path.display()))
}

/// Serialise named tensors (converted to f32) and string metadata to safetensors bytes.
pub fn tensors_to_bytes(tensors: &[(String, Tensor)], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let mut data = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        data.push((name.clone(), t.dims().to_vec(), bytes));
    }
    let views = data
        .iter()
        .map(|(n, shape, b)| Ok((n.clone(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let meta = if metadata.is_empty() { None } else { Some(metadata) };
    Ok(safetensors::serialize(views, &meta)?)
}

/// Read an f32 safetensors file: its tensors (on `device`) and metadata.
pub fn load_tensors(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ctx = || format!("{} is not a valid safetensors file", path.display());
    let (_, meta) = SafeTensors::read_metadata(&bytes).with_context(ctx)?;
    let st = SafeTensors::deserialize(&bytes).with_context(ctx)?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            bail!("{}: tensor '{name}' is {:?}, expected F32", path.display(), view.dtype());
        }
        let v: Vec<f32> = view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(name, Tensor::from_vec(v, view.shape(), device)?);
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// The model's parameters, sorted by name.
pub fn model_tensors(varmap: &VarMap) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> =
        varmap.data().lock().unwrap().iter().map(|(k, var)| (k.clone(), var.as_tensor().clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Write a complete checkpoint into `dir`.
pub fn save(dir: &Path, varmap: &VarMap, opt: &Optimizer, config: &Config, state: &State) -> Result<()> {
    let model = tensors_to_bytes(&model_tensors(varmap), HashMap::from([("format".into(), "pt".into())]))?;
    write_atomic(&dir.join(MODEL_FILE), &model)?;
    let meta = HashMap::from([
        ("step".to_string(), opt.steps().to_string()),
        ("kind".to_string(), format!("{:?}", opt.kind()).to_lowercase()),
    ]);
    write_atomic(&dir.join(OPTIMIZER_FILE), &tensors_to_bytes(&opt.state(), meta)?)?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_yaml().as_bytes())?;
    write_atomic(&dir.join(STATE_FILE), serde_json::to_string_pretty(state)?.as_bytes())
}

/// Whether `dir` holds a checkpoint.
pub fn exists(dir: &Path) -> bool {
    dir.join(STATE_FILE).is_file()
}

/// Read `state.json`.
pub fn load_state(dir: &Path) -> Result<State> {
    let path = dir.join(STATE_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid state file", path.display()))
}

/// Load the model weights and the optimiser state of the checkpoint in `dir`.
/// Load only the model weights of the checkpoint in `dir` (fine-tuning with `--init-from`): every
/// variable of the model must be there with its shape.
pub fn load_model(dir: &Path, varmap: &VarMap, device: &Device) -> Result<()> {
    let path = dir.join(MODEL_FILE);
    let (mut tensors, _) = load_tensors(&path, device)?;
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let t = tensors.remove(name).with_context(|| format!("{}: no tensor '{name}'", path.display()))?;
        var.set(&t).with_context(|| format!("{}: tensor '{name}' does not fit the model", path.display()))?;
    }
    Ok(())
}

pub fn load_weights(dir: &Path, varmap: &VarMap, opt: &mut Optimizer, device: &Device) -> Result<()> {
    load_model(dir, varmap, device)?;
    let path = dir.join(OPTIMIZER_FILE);
    let (tensors, meta) = load_tensors(&path, device)?;
    let step = meta
        .get("step")
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{}: no 'step' in the metadata", path.display()))?;
    opt.load_state(tensors, step).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
