//! fp16 export for GPU execution providers: an fp32 graph from [`crate::lower`] with its network in
//! float16 and the model file contract's fp32 inputs and outputs.
//!
//! * every float initializer the network reads becomes float16, except `Resize`'s `scales` (always
//!   float32 in ONNX);
//! * `image` and `mask` stay float32 graph inputs: `Cast(to=float16)` nodes (`image/fp16`,
//!   `mask/fp16`) feed the network;
//! * the last layer writes `reconstruction/fp16`, cast back to the float32 output `reconstruction`;
//! * the composite `inpainted = mask*rec + (1-mask)*image` stays float32 on the graph inputs, so known
//!   pixels are passed through bit for bit (float16 would round them: 8-bit values k/255 are not all
//!   representable).
//!
//! ONNX Runtime's CPU provider runs the graph too (it casts around the float16 nodes it has no kernel
//! for), which is how the parity with fp32 is checked on machines without a GPU.

use crate::proto;
use crate::quantize::tensor_f32_values;
use crate::ExportError;
use candle_onnx::onnx::{tensor_proto::DataType, ModelProto, StringStringEntryProto, TensorProto};
use facerecon_contract::names::{IMAGE, MASK, RECONSTRUCTION};
use facerecon_contract::{keys, PRECISION_FLOAT16};
use std::collections::HashSet;

/// Suffix of the float16 copies of the graph inputs and of the reconstruction.
pub const FP16_SUFFIX: &str = "/fp16";
/// Largest accepted max |fp16 - fp32| of both outputs on the verification batch. Measured for the
/// shipped unet: 3.4e-4 through ONNX Runtime 1.32's CPU provider, which runs the convolutions in fp32
/// behind "precision-free" casts (so the check covers float16 weights and float16 tensors between
/// layers); a GPU provider computing in float16 throughout adds rounding per layer, hence the margin.
pub const FP16_TOLERANCE: f32 = 1e-2;

fn to_f16(t: &TensorProto, values: &[f32]) -> TensorProto {
    TensorProto {
        name: t.name.clone(),
        dims: t.dims.clone(),
        data_type: DataType::Float16 as i32,
        raw_data: values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        ..Default::default()
    }
}

/// Rewrite `model` (float32, as [`crate::export`] writes it) with a float16 network.
pub fn to_fp16(model: &ModelProto) -> Result<ModelProto, ExportError> {
    let err = |msg: String| ExportError::Weight {
        name: "fp16".into(),
        msg,
    };
    let mut out = model.clone();
    let g = out.graph.as_mut().ok_or_else(|| err("the model has no graph".into()))?;
    let composite = |name: &str| name.starts_with("composite/");
    // Initializers read only as Resize scales stay float32; so do the composite's constants.
    let mut keep_f32: HashSet<String> = HashSet::new();
    for n in &g.node {
        if n.op_type == "Resize" {
            keep_f32.extend(n.input.iter().skip(1).filter(|i| !i.is_empty()).cloned());
        }
        if composite(&n.name) {
            keep_f32.extend(n.input.iter().cloned());
        }
    }
    for t in g.initializer.iter_mut() {
        if t.data_type == DataType::Float as i32 && !keep_f32.contains(&t.name) {
            let v = tensor_f32_values(t).ok_or_else(|| err(format!("initializer '{}' is unreadable", t.name)))?;
            *t = to_f16(t, &v);
        }
    }
    let rec16 = format!("{RECONSTRUCTION}{FP16_SUFFIX}");
    let (image16, mask16) = (format!("{IMAGE}{FP16_SUFFIX}"), format!("{MASK}{FP16_SUFFIX}"));
    let to = |ty: DataType| vec![proto::attr_int("to", ty as i64)];
    let mut nodes = vec![
        proto::node("Cast", &image16, &[IMAGE], &[&image16], to(DataType::Float16)),
        proto::node("Cast", &mask16, &[MASK], &[&mask16], to(DataType::Float16)),
    ];
    for mut n in std::mem::take(&mut g.node) {
        if !composite(&n.name) {
            for i in n.input.iter_mut() {
                if i == IMAGE {
                    *i = image16.clone();
                } else if i == MASK {
                    *i = mask16.clone();
                }
            }
            let writes_rec = n.output.iter().any(|o| o == RECONSTRUCTION);
            for o in n.output.iter_mut().filter(|o| *o == RECONSTRUCTION) {
                *o = rec16.clone();
            }
            nodes.push(n);
            if writes_rec {
                nodes.push(proto::node(
                    "Cast",
                    "cast/reconstruction",
                    &[&rec16],
                    &[RECONSTRUCTION],
                    to(DataType::Float),
                ));
            }
        } else {
            nodes.push(n);
        }
    }
    g.node = nodes;
    // The key is absent in a float32 model.
    out.metadata_props.retain(|p| p.key != keys::PRECISION);
    out.metadata_props.push(StringStringEntryProto {
        key: keys::PRECISION.into(),
        value: PRECISION_FLOAT16.into(),
    });
    out.doc_string = format!("{} (float16 network, float32 inputs and outputs)", out.doc_string);
    Ok(out)
}

/// Check an fp16 model against `spec`: float32 graph inputs and outputs as in the contract, every
/// parameter a float16 initializer of the spec's shape, Casts at the boundary.
pub fn check_fp16(model: &ModelProto, spec: &facerecon_model::ModelSpec) -> Result<(), String> {
    let g = model.graph.as_ref().ok_or("no graph")?;
    for v in g.input.iter().chain(&g.output) {
        match proto::value_dims(v) {
            Some((ty, _)) if ty == DataType::Float as i32 => {}
            other => {
                return Err(format!(
                    "graph input/output '{}' is {other:?}, expected float32",
                    v.name
                ))
            }
        }
    }
    for (name, shape) in spec.parameters().map_err(|e| e.to_string())? {
        let t = g
            .initializer
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| format!("initializer '{name}' is missing"))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        if t.data_type != DataType::Float16 as i32
            || t.dims != dims
            || t.raw_data.len() != 2 * shape.iter().product::<usize>()
        {
            return Err(format!(
                "initializer '{name}': type {} dims {:?}, expected float16 {dims:?}",
                t.data_type, t.dims
            ));
        }
    }
    for want in [
        format!("{IMAGE}{FP16_SUFFIX}"),
        format!("{MASK}{FP16_SUFFIX}"),
        "cast/reconstruction".to_string(),
    ] {
        if !g.node.iter().any(|n| n.op_type == "Cast" && n.name == want) {
            return Err(format!("no Cast node '{want}'"));
        }
    }
    Ok(())
}
