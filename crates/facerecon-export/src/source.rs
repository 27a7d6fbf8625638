//! Where the exporter takes a model from: a trainer's checkpoint directory, or an exported fp32 ONNX
//! file (its initializers are the weights: they are named like the checkpoint's tensors, and its
//! `facerecon.config` metadata is the config that trained it). The second form re-exports a shipped
//! model (e.g. quantizes `exported/unet.onnx`) when its training run is gone.

use crate::quantize::tensor_f32_values;
use crate::ExportError;
use candle_core::{Device, Tensor};
use facerecon_contract::{keys, MetricsRecord};
use facerecon_model::ModelSpec;
use std::collections::HashMap;
use std::path::Path;

/// A model to export: spec, config text, name, weights and last metrics.
pub struct Source {
    /// The network.
    pub spec: ModelSpec,
    /// The model's name (`facerecon.name`): the run's directory name or the file's stem.
    pub name: String,
    /// The config text, kept verbatim in the file's metadata.
    pub config_yaml: String,
    /// Weights by the spec's parameter names (`enc1.weight`).
    pub weights: HashMap<String, Tensor>,
    /// The last validation metrics, if the run has any.
    pub metrics: Option<MetricsRecord>,
}

/// The `model` section of a config as a spec, and the config's `name`.
pub fn parse_config(text: &str) -> Result<(ModelSpec, String), String> {
    let v: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let model = v.get("model").ok_or("no 'model' section")?;
    let spec: ModelSpec = serde_yaml::from_value(model.clone()).map_err(|e| format!("invalid 'model' section: {e}"))?;
    spec.resolve().map_err(|e| format!("invalid 'model' section: {e}"))?;
    let name = v.get("name").and_then(|n| n.as_str()).unwrap_or("model").to_string();
    Ok((spec, name))
}

/// Read a facerecon fp32 ONNX file as a [`Source`]. `config_override` (YAML text) replaces the
/// config stored in the file; its `model` section must describe the same parameters.
pub fn from_onnx(path: &Path, config_override: Option<String>) -> Result<Source, ExportError> {
    let bad = |msg: String| ExportError::Invalid { path: path.into(), msg };
    let model = crate::read_model(path)?;
    let props: HashMap<&str, &str> = model
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    if props.contains_key(keys::QUANTIZATION) {
        return Err(bad("is already quantized; give the fp32 model".into()));
    }
    let config_yaml = match config_override {
        Some(t) => t,
        None => props.get(keys::CONFIG).map(|s| s.to_string()).ok_or_else(|| {
            bad(format!(
                "no '{}' metadata (not a facerecon export?); pass --config",
                keys::CONFIG
            ))
        })?,
    };
    let (spec, name) = parse_config(&config_yaml).map_err(|e| bad(format!("config: {e}")))?;
    let g = model.graph.as_ref().ok_or_else(|| bad("no graph".into()))?;
    let mut weights = HashMap::new();
    for (pname, shape) in spec.parameters()? {
        let t = g.initializer.iter().find(|t| t.name == pname).ok_or_else(|| {
            bad(format!(
                "no initializer '{pname}' (the config's model needs shape {shape:?})"
            ))
        })?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let values = tensor_f32_values(t).filter(|v| v.len() == shape.iter().product::<usize>());
        match values {
            Some(v) if t.dims == dims => {
                let tensor = Tensor::from_vec(v, shape.as_slice(), &Device::Cpu)
                    .map_err(|e| bad(format!("initializer '{pname}': {e}")))?;
                weights.insert(pname, tensor);
            }
            _ => {
                return Err(bad(format!(
                    "initializer '{pname}' is type {} with dims {:?}; the config's model needs float32 {dims:?}",
                    t.data_type, t.dims
                )))
            }
        }
    }
    // `{}` (the run recorded no metrics) or anything that is not a record: none.
    let metrics = props.get(keys::METRICS).and_then(|m| MetricsRecord::from_line(m).ok());
    Ok(Source {
        spec,
        name,
        config_yaml,
        weights,
        metrics,
    })
}
