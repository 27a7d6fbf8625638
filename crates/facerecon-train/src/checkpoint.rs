//! The checkpoint directory (`runs/NAME/`, see docs/ARCHITECTURE.md).
//!
//! A checkpoint is one unit: the model and optimiser weights (safetensors), `config.yaml`, `state.json`
//! and the `metrics.jsonl` records it covers, written into a fresh directory `ckpt.NNNNNN/` together
//! with `manifest.json` (written last: the generation, epoch and step, and the size and FNV-1a hash of
//! every file). The symlink `current` then switches to the new directory in one `rename` — the commit
//! point — and the previous directory is removed. A kill at any moment leaves either the old or the new
//! checkpoint as `current`, never a mix. The run directory's `model.safetensors`, `optimizer.safetensors`,
//! `config.yaml`, `state.json` and `metrics.jsonl` are symlinks through `current`, so readers (the
//! exporter, scripts) keep their paths. Loading checks the manifest (sizes, hashes, steps) and refuses an
//! inconsistent set, naming the run directory and the mismatch.
//!
//! Runs written before this layout (the same five names as regular files, no `current`) are still read;
//! their only consistency check is that the optimiser's step equals `state.json`'s.

use crate::config::Config;
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

// The names readers share (the exporter, scripts, tests) are the contract's.
pub use facerecon_contract::checkpoint::{
    checkpoint_dir_name, CHECKPOINT_DIR_PREFIX, CONFIG_FILE, CURRENT_LINK, FILES as CHECKPOINT_FILES, MANIFEST_FILE,
    METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE,
};
use facerecon_contract::MetricsRecord;
/// Sample grids per epoch (corrupted | output | original); outside the checkpoints.
pub const SAMPLES_DIR: &str = "samples";
/// The discriminator of an adversarial run (`train.adversarial`): weights, Adam state, spectral-norm
/// vectors. Written into the checkpoint directory and its manifest only by such runs; never read by
/// the exporter (a model file holds the generator alone).
pub const DISCRIMINATOR_FILE: &str = "discriminator.safetensors";
/// Held (`File::try_lock`) by the trainer that owns the run directory.
pub const LOCK_FILE: &str = "train.lock";
const MANIFEST_FORMAT: u32 = 1;

/// `state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Completed epochs.
    pub epoch: usize,
    /// Optimiser steps taken in total.
    pub step: u64,
    /// Batches already drawn in epoch `epoch + 1` (a mid-epoch checkpoint), else 0. A batch whose
    /// files were all unreadable counts (it is a position in the epoch's order) but takes no step.
    #[serde(default)]
    pub batch_in_epoch: usize,
    /// The best validation record so far (highest `psnr_full`), if any epoch finished.
    #[serde(default)]
    pub best: Option<MetricsRecord>,
    /// The run's seed: the initial weights, the shuffles, masks and flips all derive from it.
    pub seed: u64,
    /// The dataset directory.
    pub data: PathBuf,
    /// Whether the data is the generated synthetic set.
    pub synthetic: bool,
    /// The `--max-images` subset, reused on resume.
    #[serde(default)]
    pub max_images: Option<usize>,
    /// The unfinished epoch's running totals (all 0 at an epoch boundary), so that its metrics record
    /// covers the whole epoch however often it was resumed: the sum of loss x images, the images trained,
    /// the files that could not be read, the seconds spent training and waiting for data.
    #[serde(default)]
    pub epoch_loss_sum: f64,
    /// Running total: images trained.
    #[serde(default)]
    pub epoch_images: usize,
    /// Running total: files that could not be read.
    #[serde(default)]
    pub epoch_unreadable: usize,
    /// Running total: seconds spent training.
    #[serde(default)]
    pub epoch_secs: f64,
    /// Running total: seconds spent waiting for data.
    #[serde(default)]
    pub epoch_wait: f64,
    /// Running totals of an adversarial run's losses x images ([`crate::adversarial::AdvLosses::NAMES`]);
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_adversarial: Option<[f64; 4]>,
}

impl State {
    /// A new run at step 0.
    pub fn new(seed: u64, data: PathBuf, synthetic: bool, max_images: Option<usize>) -> State {
        State {
            epoch: 0,
            step: 0,
            batch_in_epoch: 0,
            best: None,
            seed,
            data,
            synthetic,
            max_images,
            epoch_loss_sum: 0.0,
            epoch_images: 0,
            epoch_unreadable: 0,
            epoch_secs: 0.0,
            epoch_wait: 0.0,
            epoch_adversarial: None,
        }
    }
}

/// `manifest.json` of a checkpoint directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    generation: u64,
    epoch: usize,
    step: u64,
    batch_in_epoch: usize,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    bytes: u64,
    fnv1a64: String,
}

impl FileEntry {
    fn of(bytes: &[u8]) -> FileEntry {
        FileEntry {
            bytes: bytes.len() as u64,
            fnv1a64: format!("{:016x}", facerecon_contract::fnv1a64(bytes)),
        }
    }
}

/// Test hook for the crash-consistency tests (tests/crash.rs, scripts/crash-test.sh): with
/// `FACERECON_CRASH_POINT=N` the process SIGKILLs itself at the N-th call (counted from its start), so
/// that kills land exactly between the files of a checkpoint. Without the variable this does nothing.
pub fn crash_point(what: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static TARGET: OnceLock<Option<u64>> = OnceLock::new();
    static PASSED: AtomicU64 = AtomicU64::new(0);
    let Some(target) = *TARGET.get_or_init(|| std::env::var("FACERECON_CRASH_POINT").ok().and_then(|v| v.parse().ok()))
    else {
        return;
    };
    if PASSED.fetch_add(1, Ordering::SeqCst) + 1 == target {
        eprintln!("FACERECON_CRASH_POINT={target}: killing this process at '{what}'");
        unsafe extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SIGKILL, like a real kill: no destructors, no flushing.
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe { kill(std::process::id() as i32, 9) };
    }
}

/// Take an exclusive lock on `file` without waiting (`flock(LOCK_EX | LOCK_NB)`, what std's
/// `File::try_lock` does since Rust 1.89; written before the MSRV reached it): `Ok(false)` when another process
/// holds it. The OS releases the lock when the holder exits or is killed.
pub fn try_lock(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    unsafe extern "C" {
        fn flock(fd: i32, operation: i32) -> i32;
    }
    const LOCK_EX: i32 = 2;
    const LOCK_NB: i32 = 4;
    // SAFETY: flock(2) takes plain integers; the descriptor is open for as long as `file` is borrowed.
    if unsafe { flock(file.as_raw_fd(), LOCK_EX | LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Write `bytes` to `path` (a new file) and flush it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}

/// Flush a directory's entries (new names, renames) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// Point the symlink `dir/name` at `target` atomically (a new link renamed over the old name).
fn replace_symlink(dir: &Path, name: &str, target: &Path) -> Result<()> {
    let link = dir.join(name);
    if std::fs::read_link(&link).is_ok_and(|t| t == target) {
        return Ok(());
    }
    let tmp = dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .and_then(|_| std::fs::rename(&tmp, &link))
        .with_context(|| format!("cannot point {} at {}", link.display(), target.display()))
}

/// The generation of a checkpoint directory name (`ckpt.000012` -> 12).
fn generation_of(name: &str) -> Option<u64> {
    name.strip_prefix(CHECKPOINT_DIR_PREFIX)?.parse().ok()
}

/// The directory name `current` points at, if the run has a checkpoint in the current layout.
fn current_target(run: &Path) -> Option<String> {
    let target = std::fs::read_link(run.join(CURRENT_LINK)).ok()?;
    Some(target.to_string_lossy().into_owned())
}

/// Remove what an interrupted save leaves: checkpoint directories other than `current`'s and
/// half-made links. Only names this module writes are touched.
pub fn remove_stale(run: &Path) -> Result<()> {
    let current = current_target(run);
    let Ok(entries) = std::fs::read_dir(run) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if generation_of(&name).is_some() && current.as_deref() != Some(name.as_str()) {
            std::fs::remove_dir_all(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        } else if name.starts_with('.') && name.ends_with(".new") {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// Remove a run's checkpoint (all layouts) and metrics, for `--force`.
pub fn remove_checkpoint(run: &Path) -> Result<()> {
    for f in CHECKPOINT_FILES.iter().chain(&[CURRENT_LINK]) {
        let p = run.join(f);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    remove_stale(run)
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
            bail!(
                "{}: tensor '{name}' is {:?}, expected F32",
                path.display(),
                view.dtype()
            );
        }
        let v: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, Tensor::from_vec(v, view.shape(), device)?);
    }
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// The model's variables, sorted by name.
fn model_tensors_vars(varmap: &VarMap) -> Vec<(String, candle_core::Var)> {
    let mut v: Vec<_> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, var)| (k.clone(), var.clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The model's parameters, sorted by name.
pub fn model_tensors(varmap: &VarMap) -> Vec<(String, Tensor)> {
    let mut v: Vec<_> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, var)| (k.clone(), var.as_tensor().clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Write a complete checkpoint of the run in `run`: a new checkpoint directory, its manifest, then
/// the switch of `current` (see the module documentation). `metrics` are the records of the finished
/// epochs, one JSON object per line.
pub fn save(
    run: &Path,
    varmap: &VarMap,
    opt: &Optimizer,
    config: &Config,
    state: &State,
    metrics: &[String],
) -> Result<()> {
    save_with(run, varmap, opt, config, state, metrics, &[])
}

/// [`save`] with further files in the checkpoint directory (the discriminator's), written after the
/// five and listed in the manifest, so they are switched, checked and removed with the rest.
pub fn save_with(
    run: &Path,
    varmap: &VarMap,
    opt: &Optimizer,
    config: &Config,
    state: &State,
    metrics: &[String],
    extra: &[(&str, Vec<u8>)],
) -> Result<()> {
    std::fs::create_dir_all(run).with_context(|| format!("cannot create directory {}", run.display()))?;
    let generation = current_target(run)
        .as_deref()
        .and_then(generation_of)
        .map_or(1, |g| g + 1);
    let name = checkpoint_dir_name(generation);
    let dir = run.join(&name);
    if dir.exists() {
        // Left by a save that was interrupted before its switch: never current, safe to replace.
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let meta = HashMap::from([
        ("step".to_string(), opt.steps().to_string()),
        ("kind".to_string(), format!("{:?}", opt.kind()).to_lowercase()),
    ]);
    let files: [(&str, Vec<u8>); 5] = [
        (
            MODEL_FILE,
            tensors_to_bytes(&model_tensors(varmap), HashMap::from([("format".into(), "pt".into())]))?,
        ),
        (OPTIMIZER_FILE, tensors_to_bytes(&opt.state(), meta)?),
        (CONFIG_FILE, config.to_yaml().into_bytes()),
        (STATE_FILE, serde_json::to_string_pretty(state)?.into_bytes()),
        (
            METRICS_FILE,
            metrics
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                .into_bytes(),
        ),
    ];
    let mut entries = BTreeMap::new();
    for (f, bytes) in files.iter().chain(extra) {
        write_synced(&dir.join(f), bytes)?;
        entries.insert(f.to_string(), FileEntry::of(bytes));
        crash_point(f);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        generation,
        epoch: state.epoch,
        step: state.step,
        batch_in_epoch: state.batch_in_epoch,
        files: entries,
    };
    write_synced(
        &dir.join(MANIFEST_FILE),
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )?;
    sync_dir(&dir)?;
    crash_point("manifest written");
    // The commit point: one rename switches every file at once.
    replace_symlink(run, CURRENT_LINK, Path::new(&name))?;
    sync_dir(run)?;
    crash_point("switched");
    // The run directory's names resolve through `current` (regular files of an older layout are
    // replaced here, after the new checkpoint holds everything they held).
    for f in CHECKPOINT_FILES {
        replace_symlink(run, f, &Path::new(CURRENT_LINK).join(f))?;
    }
    crash_point("linked");
    remove_stale(run)
}

/// A checkpoint as read from a run directory, checked for consistency.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The directory holding its files (`RUN/ckpt.NNNNNN`, or `RUN` itself for the older layout).
    pub dir: PathBuf,
    /// Its `state.json`.
    pub state: State,
    /// The metrics records of the epochs it covers, one JSON object per line.
    pub metrics: Vec<String>,
}

/// Whether `run` holds a checkpoint (either layout).
pub fn exists(run: &Path) -> bool {
    run.join(CURRENT_LINK).symlink_metadata().is_ok() || run.join(STATE_FILE).is_file()
}

/// Read and check the checkpoint in `run`; `None` if there is none. A checkpoint whose files do not
/// match its manifest (size, hash, step) is an error that names the run directory and the mismatch.
pub fn open(run: &Path) -> Result<Option<Checkpoint>> {
    let bad = |msg: String| {
        anyhow::anyhow!(
            "the checkpoint in {} is inconsistent: {msg}. It was changed or damaged after it was written; \
             restore the run directory from a copy, or start over with --force",
            run.display()
        )
    };
    if let Some(target) = current_target(run) {
        let dir = run.join(&target);
        let manifest_path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path)
            .map_err(|e| bad(format!("cannot read {}: {e}", manifest_path.display())))?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| bad(format!("{} is not a valid manifest: {e}", manifest_path.display())))?;
        for f in CHECKPOINT_FILES {
            if !manifest.files.contains_key(f) {
                bail!(bad(format!("{} does not list {f}", manifest_path.display())));
            }
        }
        // The five, and whatever else the save listed (the discriminator's file).
        for (f, entry) in &manifest.files {
            let path = dir.join(f);
            let bytes = std::fs::read(&path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            let found = FileEntry::of(&bytes);
            if found != *entry {
                bail!(bad(format!(
                    "{} has {} bytes with hash {}, the manifest says {} bytes with hash {}",
                    path.display(),
                    found.bytes,
                    found.fnv1a64,
                    entry.bytes,
                    entry.fnv1a64
                )));
            }
        }
        let state = read_state(&dir.join(STATE_FILE))?;
        if (state.epoch, state.step, state.batch_in_epoch) != (manifest.epoch, manifest.step, manifest.batch_in_epoch) {
            bail!(bad(format!(
                "state.json is at epoch {} step {} batch {}, the manifest at epoch {} step {} batch {}",
                state.epoch, state.step, state.batch_in_epoch, manifest.epoch, manifest.step, manifest.batch_in_epoch
            )));
        }
        let metrics = std::fs::read_to_string(dir.join(METRICS_FILE))?
            .lines()
            .map(str::to_string)
            .collect();
        return Ok(Some(Checkpoint { dir, state, metrics }));
    }
    if !run.join(STATE_FILE).is_file() {
        return Ok(None);
    }
    // The older layout: five files renamed one by one. Keep the metrics records the state covers
    // (a kill between the metrics append and state.json left a record of an epoch it does not cover,
    // or a second record of one epoch), one per epoch.
    let state = read_state(&run.join(STATE_FILE))?;
    let text = std::fs::read_to_string(run.join(METRICS_FILE)).unwrap_or_default();
    let mut by_epoch = BTreeMap::new();
    for line in text.lines() {
        let epoch = MetricsRecord::from_line(line).ok().map(|r| r.epoch);
        if let Some(e) = epoch.filter(|&e| e >= 1 && e <= state.epoch) {
            by_epoch.entry(e).or_insert_with(|| line.to_string());
        }
    }
    Ok(Some(Checkpoint {
        dir: run.to_path_buf(),
        state,
        metrics: by_epoch.into_values().collect(),
    }))
}

fn read_state(path: &Path) -> Result<State> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a valid state file", path.display()))
}

/// The checked checkpoint of `run`, which must exist.
fn open_existing(run: &Path) -> Result<Checkpoint> {
    open(run)?.with_context(|| format!("{} holds no checkpoint", run.display()))
}

/// The state of the checkpoint in `run`.
pub fn load_state(run: &Path) -> Result<State> {
    Ok(open_existing(run)?.state)
}

/// The resolved config stored with the checkpoint in `run`.
pub fn load_config(run: &Path) -> Result<Config> {
    let ck = open_existing(run)?;
    Ok(Config::load(&ck.dir.join(CONFIG_FILE))?)
}

/// Load only the model weights of the checkpoint in `run` (fine-tuning with `--init-from`): every
/// variable of the model must be there with its shape.
pub fn load_model(run: &Path, varmap: &VarMap, device: &Device) -> Result<()> {
    let ck = open_existing(run)?;
    load_model_file(&ck.dir.join(MODEL_FILE), varmap, device)
}

/// Load the model weights from an exported fp32 ONNX file (`facerecon-export`'s output, e.g.
/// `exported/unet.onnx`) for `--init-from FILE.onnx`: its initializers carry the checkpoint's tensor
/// names, so every variable of `varmap` must be there as a float32 initializer of the same shape. When the
/// file records the config that trained it (`facerecon.config` metadata), its `model` section must be
/// `config`'s. Errors name the file and the first mismatch. Returns the model name the file records.
pub fn load_model_onnx(path: &Path, config: &Config, varmap: &VarMap, device: &Device) -> Result<String> {
    let label = format!("--init-from {}", path.display());
    let export = OnnxExport::read(path, &label)?;
    if export.spec.as_ref().is_some_and(|theirs| *theirs != config.model) {
        bail!("{label}: the model it was exported from differs from this config's model");
    }
    let vars = model_tensors_vars(varmap);
    let shapes: Vec<(String, Vec<usize>)> = vars.iter().map(|(n, v)| (n.clone(), v.dims().to_vec())).collect();
    let mut weights = export.weights(&shapes, "this config's model", device)?;
    for (pname, var) in vars {
        var.set(&weights.remove(&pname).expect("weights() returns every requested name"))?;
    }
    Ok(export.name)
}

/// An exported fp32 facerecon model read back (for `--init-from FILE.onnx` and distillation teachers):
/// its initializers, the model spec of the config its metadata records (if it records one), and its name.
pub(crate) struct OnnxExport {
    /// The model spec of its recorded config (`facerecon.config` metadata), when it has one.
    pub spec: Option<facerecon_model::ModelSpec>,
    /// The recorded config's `name`, else the file stem.
    pub name: String,
    initializers: HashMap<String, candle_onnx::onnx::TensorProto>,
    /// What errors start with (the option and the file).
    label: String,
}

impl OnnxExport {
    /// Read `path`; errors start with `label`. Quantized models are refused (their weights are int8).
    pub fn read(path: &Path, label: &str) -> Result<OnnxExport> {
        let model =
            candle_onnx::read_file(path).with_context(|| format!("{label}: cannot read it as an ONNX model"))?;
        let meta = |key: &str| {
            model
                .metadata_props
                .iter()
                .find(|p| p.key == key)
                .map(|p| p.value.clone())
        };
        if meta(facerecon_contract::keys::QUANTIZATION).is_some() {
            bail!("{label}: the model is quantized; give the fp32 export");
        }
        let mut name = path
            .file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned());
        let mut spec = None;
        if let Some(text) = meta(facerecon_contract::keys::CONFIG) {
            let v: serde_yaml::Value = serde_yaml::from_str(&text).with_context(|| {
                format!(
                    "{label}: its '{}' metadata is not YAML",
                    facerecon_contract::keys::CONFIG
                )
            })?;
            let theirs: facerecon_model::ModelSpec = v
                .get("model")
                .cloned()
                .map(serde_yaml::from_value)
                .transpose()
                .ok()
                .flatten()
                .with_context(|| format!("{label}: its recorded config has no valid 'model' section"))?;
            spec = Some(theirs);
            if let Some(n) = v.get("name").and_then(|n| n.as_str()) {
                name = n.to_string();
            }
        }
        let graph = model.graph.with_context(|| format!("{label}: no graph"))?;
        let initializers = graph.initializer.into_iter().map(|t| (t.name.clone(), t)).collect();
        Ok(OnnxExport {
            spec,
            name,
            initializers,
            label: label.to_string(),
        })
    }

    /// The float32 initializers named in `shapes`, each of its shape, as tensors on `device`; errors
    /// name the first missing or mismatched one (in `shapes`' order) and say whose shape was expected.
    pub fn weights(
        &self,
        shapes: &[(String, Vec<usize>)],
        whose: &str,
        device: &Device,
    ) -> Result<HashMap<String, Tensor>> {
        let label = &self.label;
        let mut out = HashMap::new();
        for (pname, shape) in shapes {
            let t = self
                .initializers
                .get(pname)
                .with_context(|| format!("{label}: no initializer '{pname}' ({whose} needs shape {shape:?})"))?;
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            match float_values(t) {
                Some(v) if t.dims == dims && v.len() == shape.iter().product::<usize>() => {
                    out.insert(pname.clone(), Tensor::from_vec(v, shape.as_slice(), device)?);
                }
                _ => bail!(
                    "{label}: initializer '{pname}' is data type {} with dims {:?}; {whose} needs float32 {dims:?}",
                    t.data_type,
                    t.dims
                ),
            }
        }
        Ok(out)
    }
}

/// The values of a float32 ONNX initializer (raw little-endian bytes or `float_data`); `None` for other
/// data types.
fn float_values(t: &candle_onnx::onnx::TensorProto) -> Option<Vec<f32>> {
    let float = candle_onnx::onnx::tensor_proto::DataType::Float as i32;
    (t.data_type == float).then(|| {
        if t.raw_data.is_empty() {
            t.float_data.clone()
        } else {
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        }
    })
}

fn load_model_file(path: &Path, varmap: &VarMap, device: &Device) -> Result<()> {
    let (mut tensors, _) = load_tensors(path, device)?;
    for (name, var) in varmap.data().lock().unwrap().iter() {
        let t = tensors
            .remove(name)
            .with_context(|| format!("{}: no tensor '{name}'", path.display()))?;
        var.set(&t)
            .with_context(|| format!("{}: tensor '{name}' does not fit the model", path.display()))?;
    }
    Ok(())
}

/// The discriminator file of checkpoint `ck`, read back (`None` when the checkpoint has none: a run
/// that was not adversarial until now).
#[allow(clippy::type_complexity)]
pub fn load_discriminator(
    ck: &Checkpoint,
    device: &Device,
) -> Result<Option<(HashMap<String, Tensor>, HashMap<String, String>, PathBuf)>> {
    let path = ck.dir.join(DISCRIMINATOR_FILE);
    if !path.is_file() {
        return Ok(None);
    }
    let (t, meta) = load_tensors(&path, device)?;
    Ok(Some((t, meta, path)))
}

/// Load the model weights and the optimiser state of the checkpoint `ck` of the run in `run`; the
/// optimiser's step must be the state's.
pub fn load_weights(run: &Path, ck: &Checkpoint, varmap: &VarMap, opt: &mut Optimizer, device: &Device) -> Result<()> {
    load_model_file(&ck.dir.join(MODEL_FILE), varmap, device)?;
    let path = ck.dir.join(OPTIMIZER_FILE);
    let (tensors, meta) = load_tensors(&path, device)?;
    let step: u64 = meta
        .get("step")
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{}: no 'step' in the metadata", path.display()))?;
    if step != ck.state.step {
        bail!(
            "the checkpoint in {} is inconsistent: {} is at step {step} but state.json at step {} (a save was \
             interrupted between its files); restore the run directory from a copy, or start over with --force",
            run.display(),
            path.display(),
            ck.state.step
        );
    }
    opt.load_state(tensors, step)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
