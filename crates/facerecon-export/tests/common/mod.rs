//! Shared by the exporter's integration tests: a checkpoint directory like the trainer's, built here
//! from the tiny config and seeded random weights.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use facerecon_contract::checkpoint::{CONFIG_FILE, MODEL_FILE};
use facerecon_model::{random_weights, ModelSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `configs/tiny.yaml`'s text and its model spec.
pub fn tiny_spec() -> (String, ModelSpec) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let spec: ModelSpec = serde_yaml::from_value(v["model"].clone()).unwrap();
    (text, spec)
}

/// `dir/runs/tiny` with config.yaml (tiny) and model.safetensors (random weights, seed 5).
pub fn checkpoint(dir: &Path) -> PathBuf {
    checkpoint_with(dir, |_, _| {})
}

/// [`checkpoint`], with the weights changed by `edit` before they are saved.
pub fn checkpoint_with(dir: &Path, edit: impl FnOnce(&ModelSpec, &mut HashMap<String, Tensor>)) -> PathBuf {
    let ck = dir.join("runs/tiny");
    std::fs::create_dir_all(&ck).unwrap();
    let (text, spec) = tiny_spec();
    std::fs::write(ck.join(CONFIG_FILE), &text).unwrap();
    let mut w = random_weights(&spec, 5, 0.1, &Device::Cpu).unwrap();
    edit(&spec, &mut w);
    candle_core::safetensors::save(&w, ck.join(MODEL_FILE)).unwrap();
    ck
}

/// The names of the entries of `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
