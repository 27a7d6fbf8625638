//! The spec + weights lowered to an ONNX graph.
//!
//! Every op has one lowering, with the semantics of `facerecon_model::layers`:
//!
//! | spec op | ONNX |
//! |---|---|
//! | conv2d | `Conv` (symmetric `pads`, `strides`, `dilations`, `kernel_shape`) |
//! | conv_transpose2d | `ConvTranspose` (`pads`, `output_padding` at the end, `strides`) |
//! | dense | `Gemm(transB=1)` with the `[out, in]` weight |
//! | flatten | `Flatten(axis=1)` |
//! | reshape | `Reshape` to `[-1, C, H, W]` (batch stays symbolic) |
//! | leaky_relu / relu / sigmoid / tanh | `LeakyRelu(alpha)` / `Relu` / `Sigmoid` / `Tanh` |
//! | upsample | `Resize` (nearest, `asymmetric`, `floor`: `out[i] = in[floor(i / s)]`, like candle) |
//! | concat / add | `Concat(axis=1)` / a left-to-right chain of `Add` |
//!
//! The network input `input` is `image`, or `Concat(image, mask)` when the spec has a mask channel.
//! The image's holes must already be zeroed by the caller (`image * (1 - mask)`); the graph does
//! not zero them. `inpainted = mask * reconstruction + (1 - mask) * image` is built from
//! `Mul`/`Sub`/`Add` nodes, in the same order of operations as candle's `layers::composite`.

use crate::metadata::Metadata;
use crate::proto::{self, Dim};
use crate::{ExportError, IR_VERSION, OPSET, PRODUCER_NAME, PRODUCER_VERSION};
use candle_core::{DType, Tensor};
use candle_onnx::onnx::{GraphProto, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto};
use facerecon_model::spec::{self, ModelSpec, Op, ResolvedLayer};
use std::collections::HashMap;

/// Names of the graph's inputs and outputs (the model file contract).
pub const IMAGE: &str = "image";
/// The hole mask input, `[batch, 1, S, S]`, 1 = hole.
pub const MASK: &str = "mask";
/// The network's raw output, `[batch, C, S, S]`.
pub const RECONSTRUCTION: &str = "reconstruction";
/// `mask * reconstruction + (1 - mask) * image`: known pixels unchanged.
pub const INPAINTED: &str = "inpainted";
/// The symbolic batch dimension of inputs and outputs.
pub const BATCH: &str = "batch";

/// Opsets the lowering is valid for (`Resize` with these attributes and `Reshape` from 13 on;
/// 21 is the newest that ONNX Runtime 1.2x and `onnx.checker` both accept).
pub const OPSET_RANGE: std::ops::RangeInclusive<i64> = 13..=21;

/// Export with the default opset [`OPSET`].
pub fn export(spec: &ModelSpec, weights: &HashMap<String, Tensor>, meta: &Metadata) -> Result<ModelProto, ExportError> {
    export_with_opset(spec, weights, meta, OPSET)
}

/// Lower `spec` with `weights` (keyed by parameter name, shapes per `spec.parameters()`) to an ONNX model.
pub fn export_with_opset(
    spec: &ModelSpec,
    weights: &HashMap<String, Tensor>,
    meta: &Metadata,
    opset: i64,
) -> Result<ModelProto, ExportError> {
    if !OPSET_RANGE.contains(&opset) {
        return Err(ExportError::Opset(opset));
    }
    let layers = spec.resolve()?;
    let mut g = Builder::default();
    for (name, shape) in spec.parameters()? {
        g.initializers.push(weight_initializer(&name, &shape, weights)?);
    }

    // The network input.
    let input = if spec.mask_channel {
        g.nodes.push(proto::node(
            "Concat",
            "input/concat",
            &[IMAGE, MASK],
            &[spec::INPUT],
            vec![proto::attr_int("axis", 1)],
        ));
        spec::INPUT
    } else {
        IMAGE
    };
    let mut tensors: HashMap<String, String> = HashMap::new();
    tensors.insert(spec::INPUT.into(), input.into());
    tensors.insert(spec::IMAGE.into(), IMAGE.into());
    tensors.insert(spec::MASK.into(), MASK.into());

    let last = layers.len() - 1;
    for l in &layers {
        let out = if l.index == last {
            RECONSTRUCTION.to_string()
        } else if [RECONSTRUCTION, INPAINTED].contains(&l.name.as_str()) {
            // Layer names cannot contain '/', so this cannot collide with another layer.
            format!("layer/{}", l.name)
        } else {
            l.name.clone()
        };
        let ins: Vec<String> = l.inputs.iter().map(|i| tensors[i].clone()).collect();
        lower_layer(&mut g, l, &ins, &out);
        tensors.insert(l.name.clone(), out);
    }

    // inpainted = mask * rec + (1 - mask) * image
    g.initializers.push(proto::tensor_f32("composite/one", &[], &[1.0]));
    g.nodes.push(proto::node(
        "Mul",
        "composite/hole",
        &[MASK, RECONSTRUCTION],
        &["composite/hole"],
        vec![],
    ));
    g.nodes.push(proto::node(
        "Sub",
        "composite/keep",
        &["composite/one", MASK],
        &["composite/keep"],
        vec![],
    ));
    g.nodes.push(proto::node(
        "Mul",
        "composite/known",
        &["composite/keep", IMAGE],
        &["composite/known"],
        vec![],
    ));
    g.nodes.push(proto::node(
        "Add",
        "composite/add",
        &["composite/hole", "composite/known"],
        &[INPAINTED],
        vec![],
    ));

    let (c, s) = (spec.channels, spec.image_size);
    let io = |name: &str, ch: usize| {
        proto::value_f32(
            name,
            &[Dim::Symbolic(BATCH), Dim::Fixed(ch), Dim::Fixed(s), Dim::Fixed(s)],
        )
    };
    let graph = GraphProto {
        name: if meta.name.is_empty() {
            "facerecon".into()
        } else {
            meta.name.clone()
        },
        node: g.nodes,
        initializer: g.initializers,
        input: vec![io(IMAGE, c), io(MASK, 1)],
        output: vec![io(RECONSTRUCTION, c), io(INPAINTED, c)],
        doc_string: "Face inpainting. Inputs: image [batch,C,S,S] float32 in [0,1] with holes already zeroed \
                     by the caller (image * (1 - mask)); mask [batch,1,S,S], 1 = hole, 0 = known. Outputs: \
                     reconstruction (raw network output) and inpainted = mask*reconstruction + (1-mask)*image."
            .into(),
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: PRODUCER_NAME.into(),
        producer_version: PRODUCER_VERSION.into(),
        model_version: 1,
        doc_string: format!("facerecon model '{}'", meta.name),
        metadata_props: meta
            .props(spec, opset)
            .into_iter()
            .map(|(key, value)| StringStringEntryProto { key, value })
            .collect(),
        graph: Some(graph),
        ..Default::default()
    })
}

#[derive(Default)]
struct Builder {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

fn weight_initializer(
    name: &str,
    shape: &[usize],
    weights: &HashMap<String, Tensor>,
) -> Result<TensorProto, ExportError> {
    let werr = |msg: String| ExportError::Weight {
        name: name.to_string(),
        msg,
    };
    let t = weights
        .get(name)
        .ok_or_else(|| werr(format!("missing (the spec needs shape {shape:?})")))?;
    if t.dims() != shape {
        return Err(werr(format!("has shape {:?}, the spec needs {shape:?}", t.dims())));
    }
    let data: Vec<f32> = t
        .to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(|e| werr(e.to_string()))?;
    // A NaN or infinite weight makes every output NaN: a model that "runs" and paints black holes.
    let bad = data.iter().filter(|v| !v.is_finite()).count();
    if bad > 0 {
        return Err(werr(format!(
            "{bad} of {} values are not finite (NaN or infinity): the checkpoint is corrupt or training diverged; nothing was exported",
            data.len()
        )));
    }
    Ok(proto::tensor_f32(name, shape, &data))
}

/// Append the node(s) of one layer, reading tensors `ins` and writing tensor `out`.
fn lower_layer(g: &mut Builder, l: &ResolvedLayer, ins: &[String], out: &str) {
    let name = l.name.as_str();
    let x = ins[0].as_str();
    let (w, b) = (format!("{name}.weight"), format!("{name}.bias"));
    let with_bias = |bias: bool| {
        if bias {
            vec![x, w.as_str(), b.as_str()]
        } else {
            vec![x, w.as_str()]
        }
    };
    let pair = |v: usize| [v as i64, v as i64];
    let node = match &l.op {
        Op::Conv2d {
            kernel,
            stride,
            padding,
            dilation,
            bias,
            ..
        } => {
            let p = spec::conv_padding(*padding, *kernel, *dilation) as i64;
            let attrs = vec![
                proto::attr_ints("kernel_shape", &pair(*kernel)),
                proto::attr_ints("strides", &pair(*stride)),
                proto::attr_ints("pads", &[p, p, p, p]),
                proto::attr_ints("dilations", &pair(*dilation)),
            ];
            proto::node("Conv", name, &with_bias(*bias), &[out], attrs)
        }
        Op::ConvTranspose2d {
            kernel,
            stride,
            padding,
            bias,
            ..
        } => {
            // resolve() has already rejected paddings that have no (pad, output_padding).
            let (p, op) = spec::conv_transpose_padding(*padding, *kernel, *stride).unwrap_or((0, 0));
            let p = p as i64;
            let attrs = vec![
                proto::attr_ints("kernel_shape", &pair(*kernel)),
                proto::attr_ints("strides", &pair(*stride)),
                proto::attr_ints("pads", &[p, p, p, p]),
                proto::attr_ints("output_padding", &pair(op)),
                proto::attr_ints("dilations", &[1, 1]),
            ];
            proto::node("ConvTranspose", name, &with_bias(*bias), &[out], attrs)
        }
        Op::Dense { bias, .. } => proto::node(
            "Gemm",
            name,
            &with_bias(*bias),
            &[out],
            vec![proto::attr_int("transB", 1)],
        ),
        Op::Flatten => proto::node("Flatten", name, &[x], &[out], vec![proto::attr_int("axis", 1)]),
        Op::Reshape { shape } => {
            let shape_name = format!("{name}/shape");
            let dims: Vec<i64> = std::iter::once(-1).chain(shape.iter().map(|&d| d as i64)).collect();
            g.initializers
                .push(proto::tensor_i64(&shape_name, &[dims.len()], &dims));
            proto::node("Reshape", name, &[x, &shape_name], &[out], vec![])
        }
        Op::LeakyRelu { slope } => proto::node(
            "LeakyRelu",
            name,
            &[x],
            &[out],
            vec![proto::attr_float("alpha", *slope as f32)],
        ),
        Op::Relu => proto::node("Relu", name, &[x], &[out], vec![]),
        Op::Sigmoid => proto::node("Sigmoid", name, &[x], &[out], vec![]),
        Op::Tanh => proto::node("Tanh", name, &[x], &[out], vec![]),
        Op::Upsample { scale } => {
            let scales_name = format!("{name}/scales");
            let s = *scale as f32;
            g.initializers
                .push(proto::tensor_f32(&scales_name, &[4], &[1.0, 1.0, s, s]));
            let attrs = vec![
                proto::attr_str("mode", "nearest"),
                proto::attr_str("coordinate_transformation_mode", "asymmetric"),
                proto::attr_str("nearest_mode", "floor"),
            ];
            // Resize(X, roi, scales): roi unused (empty name = absent optional input).
            proto::node("Resize", name, &[x, "", &scales_name], &[out], attrs)
        }
        Op::Concat => {
            let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
            proto::node("Concat", name, &refs, &[out], vec![proto::attr_int("axis", 1)])
        }
        Op::Add => {
            // ((a + b) + c) + ...: the order candle's layers::add uses.
            let mut acc = ins[0].clone();
            for (i, y) in ins.iter().enumerate().skip(1) {
                let o = if i == ins.len() - 1 {
                    out.to_string()
                } else {
                    format!("{name}/sum{i}")
                };
                let node_name = if i == ins.len() - 1 {
                    name.to_string()
                } else {
                    format!("{name}/add{i}")
                };
                g.nodes.push(proto::node("Add", &node_name, &[&acc, y], &[&o], vec![]));
                acc = o;
            }
            return;
        }
    };
    g.nodes.push(node);
}
