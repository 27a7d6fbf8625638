//! Post-training int8 quantization: an fp32 graph from [`crate::lower`] rewritten as a QDQ model.
//!
//! ONNX Runtime's CPU provider fuses `DequantizeLinear -> op -> QuantizeLinear` groups into integer
//! kernels. What ORT 1.32 actually executes in int8 (read from the optimized graph it writes with
//! `optimized_model_filepath`; see docs/ARCHITECTURE.md):
//!
//! | fp32 op | int8 kernel | here |
//! |---|---|---|
//! | Conv | `QLinearConv` (u8 activations, s8 per-channel weights, i32 bias) | quantized |
//! | Gemm | `QGemm` | quantized |
//! | Add / Concat / LeakyRelu | `QLinearAdd` / `QLinearConcat` / `QLinearLeakyRelu` | quantized |
//! | Transpose / Reshape / Resize / Flatten | run on u8 (the Q/DQ pair is dropped) | same scale in and out |
//! | DepthToSpace | on u8, but NCHW only: slow, and it forces layout transposes | not used, see below |
//! | ConvTranspose | **none** (`QLinearConvTranspose` has a schema but no CPU kernel) | rewritten, see below |
//! | Sigmoid / Tanh / Relu | lookup tables or fused; cheap either way | run fp32 between DQ and Q |
//! | composite (Mul/Sub/Add with the image) | — | fp32: quantizing it would change known pixels |
//!
//! A transposed convolution is rewritten exactly (in fp32 arithmetic) as a *sub-pixel* convolution:
//! one `Conv` with `stride^2 * C_out` output channels whose weights are the transposed kernel's taps
//! per output phase, followed by the interleave of the phases (`DepthToSpace(blocksize = stride,
//! mode = DCR)`, written as Transpose/Reshape nodes that ORT runs in its NHWC int8 layout:
//! [`subpixel_rewrite`]).
//! That makes every convolution of the decoder an int8 `QLinearConv`.
//!
//! Quantization scheme (the one ORT's kernels expect):
//! * weights: int8, symmetric (zero point 0, range `[-127, 127]`), one scale per output channel
//!   (axis 0 of a `Conv` `[out, in, k, k]` or `Gemm(transB=1)` `[out, in]` weight);
//! * biases: int32 with scale `x_scale * w_scale[c]` and zero point 0;
//! * activations: uint8, asymmetric, one scale and zero point per tensor, from a calibrated range
//!   ([`crate::calibrate`]) widened to contain 0 so that zero padding is exact.
//!
//! Every tensor the network computes (the network input and each layer's output, except the final
//! reconstruction) gets a `QuantizeLinear -> DequantizeLinear` pair; layers named in
//! [`QuantizeOptions::fp32_layers`] keep fp32 weights and an unquantized output.

use crate::proto;
use crate::ExportError;
use candle_onnx::onnx::{tensor_proto::DataType, ModelProto, NodeProto, StringStringEntryProto, TensorProto};
use facerecon_contract::keys;
use facerecon_contract::mask::is_hole_f32;
use facerecon_contract::names::{IMAGE, INPAINTED, RECONSTRUCTION};
use facerecon_model::spec::{self, ModelSpec};
use std::collections::{BTreeMap, HashMap, HashSet};

/// The largest int8 weight magnitude (symmetric range, as ORT's quantizer writes it).
pub const WEIGHT_QMAX: f32 = 127.0;

/// A calibrated range of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Range {
    /// Lower end (<= 0, so that 0 is representable).
    pub min: f32,
    /// Upper end (>= 0).
    pub max: f32,
}

/// uint8 quantization parameters of an activation: `x = (q - zero_point) * scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Step between two quantized values.
    pub scale: f32,
    /// The uint8 value that stands for 0.0 (exactly representable, as ONNX requires).
    pub zero_point: u8,
}

impl Range {
    /// Scale and zero point covering the range (widened to contain 0, so 0 is exactly representable).
    pub fn qparams(&self) -> QParams {
        let (lo, hi) = (self.min.min(0.0), self.max.max(0.0));
        let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        QParams { scale, zero_point }
    }
}

/// What to quantize.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Layers (spec names) that stay fp32: weights and output. Their inputs may still be int8.
    pub fp32_layers: Vec<String>,
    /// Rewrite transposed convolutions as sub-pixel convolutions (ORT has no int8 ConvTranspose on
    /// CPU); when false they stay fp32 ConvTranspose nodes between a DQ and a Q.
    pub subpixel: bool,
    /// Free-form description stored in the `facerecon.quantization` metadata (JSON object).
    pub description: serde_json::Value,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            fp32_layers: Vec::new(),
            subpixel: true,
            description: serde_json::json!({}),
        }
    }
}

/// Per-output-channel symmetric int8 weights: `(q, scales)` with `w ~= q * scales[c]`. `axis0` is
/// the number of output channels (the tensor's first dimension).
pub fn quantize_weight(w: &[f32], out_channels: usize) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / out_channels;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(out_channels);
    for c in 0..out_channels {
        let row = &w[c * per..(c + 1) * per];
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        // An all-zero channel: any positive scale represents it exactly.
        let s = if amax > 0.0 { amax / WEIGHT_QMAX } else { 1.0 };
        scales.push(s);
        q.extend(
            row.iter()
                .map(|v| (v / s).round().clamp(-WEIGHT_QMAX, WEIGHT_QMAX) as i8),
        );
    }
    (q, scales)
}

/// A sub-pixel form: `(weight, bias, kernel T, pad_begin, pad_end)` (see [`subpixel_weights`]).
pub type SubpixelForm = (Vec<f32>, Option<Vec<f32>>, usize, usize, usize);

/// The sub-pixel form of a transposed convolution (weight `[C_in, C_out, K, K]`, `stride`, symmetric
/// `pad`, `output_padding`): `Conv(x, W', pads) -> DepthToSpace(stride, DCR)` gives the same output.
///
/// Output row `s*m + a` (phase `a`) of the transposed convolution is `sum_k x[m + d] * w[k]` over the
/// taps with `a + pad - k = s*d`. The conv has kernel `T = d_max - d_min + 1`, begin padding `-d_min`
/// and end padding chosen so that it yields `ceil(H_out / s)` rows; its output channel
/// `(a*s + b) * C_out + co` (DCR order) holds phase `(a, b)` of channel `co`. Returns
/// `(weight [s*s*C_out, C_in, T, T], bias, T, pad_begin, pad_end)`, or `None` when the layer has no
/// such form (the output length is not a multiple of the stride, or a phase reads ahead of the
/// first input row).
pub fn subpixel_weights(
    w: &[f32],
    bias: Option<&[f32]>,
    dims: [usize; 4],
    stride: usize,
    pad: usize,
    output_padding: usize,
) -> Option<SubpixelForm> {
    let [ci, co, k, k2] = dims;
    if k != k2 || stride == 0 {
        return None;
    }
    let (s, p) = (stride as i64, pad as i64);
    // (phase, tap) -> offset d
    let taps = |a: i64| -> Vec<(usize, i64)> {
        (0..k as i64)
            .filter(|kk| (a + p - kk).rem_euclid(s) == 0)
            .map(|kk| (kk as usize, (a + p - kk).div_euclid(s)))
            .collect()
    };
    let all: Vec<i64> = (0..s).flat_map(|a| taps(a).into_iter().map(|t| t.1)).collect();
    let (dmin, dmax) = (*all.iter().min()?, *all.iter().max()?);
    // Output length (H - 1) * s + extra; it must split into whole phases.
    let extra = k as i64 - 2 * p + output_padding as i64;
    if dmin > 0 || extra.rem_euclid(s) != 0 {
        return None;
    }
    let t = (dmax - dmin + 1) as usize;
    let pad_begin = -dmin;
    // Conv output length M = H + pad_begin + pad_end - T + 1 must be H_out / s = H - 1 + extra / s.
    // pad_end = M - 1 + T - H - pad_begin, with M - H = extra / s - 1.
    let pad_end = extra / s - 2 + t as i64 - pad_begin;
    if pad_end < 0 {
        return None;
    }
    let su = stride;
    let out_ch = su * su * co;
    let mut wc = vec![0f32; out_ch * ci * t * t];
    for a in 0..s {
        for b in 0..s {
            let phase = (a * s + b) as usize;
            for (ky, dy) in taps(a) {
                for (kx, dx) in taps(b) {
                    let (ty, tx) = ((dy - dmin) as usize, (dx - dmin) as usize);
                    for o in 0..co {
                        for i in 0..ci {
                            wc[(((phase * co + o) * ci + i) * t + ty) * t + tx] = w[((i * co + o) * k + ky) * k + kx];
                        }
                    }
                }
            }
        }
    }
    let bc = bias.map(|b| (0..su * su).flat_map(|_| b.iter().copied()).collect());
    Some((wc, bc, t, pad_begin as usize, pad_end as usize))
}

/// Rewrite every transposed convolution of the fp32 `model` (layers not in `keep`) that has an exact
/// sub-pixel form ([`subpixel_weights`]) as a `Conv` with the phase weights followed by the
/// interleave of the phases. Returns the model and, for every tensor the rewrite adds, the tensor of
/// the layer output it holds values of (for quantization parameters).
///
/// The interleave is `DepthToSpace(DCR)` written as `Transpose(NCHW->NHWC) -> Reshape [N,H,W,s,s,C]
/// -> Transpose [N,H,s,W,s,C] -> Reshape [N,sH,sW,C] -> Transpose(NHWC->NCHW)`: ORT's CPU
/// `DepthToSpace` runs only in NCHW (about 0.8 ms for the unet's last one, and it forces layout
/// transposes around it), whereas these ops run on uint8 in the NHWC layout of ORT's int8
/// convolutions, where its transpose optimizer cancels the outer transposes and the inner one
/// copies whole channel blocks.
pub fn subpixel_rewrite(
    model: &ModelProto,
    spec: &ModelSpec,
    keep: &HashSet<String>,
) -> Result<(ModelProto, Vec<(String, String)>), ExportError> {
    let err = |msg: String| ExportError::Weight {
        name: "sub-pixel rewrite".into(),
        msg,
    };
    let layers = spec.resolve()?;
    let mut out = model.clone();
    let g = out.graph.as_mut().ok_or_else(|| err("the model has no graph".into()))?;
    let mut added = Vec::new();
    let mut nodes: Vec<NodeProto> = Vec::with_capacity(g.node.len());
    for n in std::mem::take(&mut g.node) {
        // lower.rs names a layer's node after the layer.
        let layer = layers.iter().find(|l| l.name == n.name);
        let (Some(layer), "ConvTranspose") = (layer, n.op_type.as_str()) else {
            nodes.push(n);
            continue;
        };
        if keep.contains(&layer.name) {
            nodes.push(n);
            continue;
        }
        let ints = |a: &str| attr(&n, a).map(|a| a.ints.clone()).unwrap_or_default();
        let (strides, pads, opad) = (ints("strides"), ints("pads"), ints("output_padding"));
        let find = |name: &str| g.initializer.iter().position(|t| t.name == name);
        let wi = find(&n.input[1]).ok_or_else(|| err(format!("no initializer '{}'", n.input[1])))?;
        let w = &g.initializer[wi];
        let dims: [usize; 4] = [
            w.dims[0] as usize,
            w.dims[1] as usize,
            w.dims[2] as usize,
            w.dims[3] as usize,
        ];
        let wv = tensor_f32_values(w).ok_or_else(|| err(format!("'{}' is not float32", w.name)))?;
        let bi = n.input.get(2).filter(|b| !b.is_empty()).and_then(|b| find(b));
        let bv = match bi {
            Some(i) => Some(
                tensor_f32_values(&g.initializer[i]).ok_or_else(|| err(format!("'{}' is not float32", n.input[2])))?,
            ),
            None => None,
        };
        let square = |v: &[i64]| !v.is_empty() && v.iter().all(|x| *x == v[0]);
        let form = if square(&strides) && square(&pads) && square(&opad) {
            subpixel_weights(
                &wv,
                bv.as_deref(),
                dims,
                strides[0] as usize,
                pads[0] as usize,
                opad[0] as usize,
            )
        } else {
            None
        };
        let Some((wc, bc, t, pb, pe)) = form else {
            nodes.push(n); // no exact sub-pixel form: stays a ConvTranspose
            continue;
        };
        let (s, co) = (strides[0] as usize, dims[1]);
        let (oh, ow) = match layer.out_shape.dims().as_slice() {
            [_, h, w] => (*h as i64, *w as i64),
            d => return Err(err(format!("layer '{}' has output shape {d:?}", layer.name))),
        };
        // Replace the initializers in place (same position in the file).
        let wname = format!("{}/subpixel", n.input[1]);
        g.initializer[wi] = proto::tensor_f32(&wname, &[s * s * co, dims[0], t, t], &wc);
        let mut ins = vec![n.input[0].clone(), wname];
        if let (Some(i), Some(bc)) = (bi, bc) {
            let bname = format!("{}/subpixel", n.input[2]);
            g.initializer[i] = proto::tensor_f32(&bname, &[bc.len()], &bc);
            ins.push(bname);
        }
        let y = n.output[0].clone();
        let name = |step: &str| format!("{}/{step}", n.name);
        let (pb, pe, t) = (pb as i64, pe as i64, t as i64);
        let refs: Vec<&str> = ins.iter().map(String::as_str).collect();
        let phases = name("subpixel");
        nodes.push(proto::node(
            "Conv",
            &phases,
            &refs,
            &[&phases],
            vec![
                proto::attr_ints("kernel_shape", &[t, t]),
                proto::attr_ints("strides", &[1, 1]),
                proto::attr_ints("pads", &[pb, pb, pe, pe]),
                proto::attr_ints("dilations", &[1, 1]),
            ],
        ));
        let (si, coi) = (s as i64, co as i64);
        let (split_shape, merge_shape) = (name("split_shape"), name("merge_shape"));
        g.initializer
            .push(proto::tensor_i64(&split_shape, &[6], &[0, 0, 0, si, si, coi]));
        g.initializer
            .push(proto::tensor_i64(&merge_shape, &[4], &[0, oh, ow, coi]));
        let steps = [
            (
                "nhwc",
                proto::node(
                    "Transpose",
                    &name("nhwc"),
                    &[&phases],
                    &[&name("nhwc")],
                    vec![proto::attr_ints("perm", &[0, 2, 3, 1])],
                ),
            ),
            (
                "split",
                proto::node(
                    "Reshape",
                    &name("split"),
                    &[&name("nhwc"), &split_shape],
                    &[&name("split")],
                    vec![],
                ),
            ),
            (
                "interleave",
                proto::node(
                    "Transpose",
                    &name("interleave"),
                    &[&name("split")],
                    &[&name("interleave")],
                    vec![proto::attr_ints("perm", &[0, 1, 3, 2, 4, 5])],
                ),
            ),
            (
                "merge",
                proto::node(
                    "Reshape",
                    &name("merge"),
                    &[&name("interleave"), &merge_shape],
                    &[&name("merge")],
                    vec![],
                ),
            ),
        ];
        added.push((phases.clone(), y.clone()));
        for (step, node) in steps {
            nodes.push(node);
            added.push((name(step), y.clone()));
        }
        nodes.push(proto::node(
            "Transpose",
            &n.name,
            &[&name("merge")],
            &[&y],
            vec![proto::attr_ints("perm", &[0, 3, 1, 2])],
        ));
    }
    g.node = nodes;
    Ok((out, added))
}

/// The f32 values of an initializer (raw little-endian or `float_data`).
pub fn tensor_f32_values(t: &TensorProto) -> Option<Vec<f32>> {
    if t.data_type != DataType::Float as i32 {
        return None;
    }
    if !t.raw_data.is_empty() {
        if !t.raw_data.len().is_multiple_of(4) {
            return None;
        }
        return Some(
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        );
    }
    Some(t.float_data.clone())
}

fn tensor_i8(name: &str, dims: &[i64], data: &[i8]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int8 as i32,
        raw_data: data.iter().map(|v| *v as u8).collect(),
        ..Default::default()
    }
}

fn tensor_i32(name: &str, dims: &[i64], data: &[i32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Int32 as i32,
        raw_data: data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn tensor_u8(name: &str, dims: &[i64], data: &[u8]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::Uint8 as i32,
        raw_data: data.to_vec(),
        ..Default::default()
    }
}

fn attr<'a>(n: &'a NodeProto, name: &str) -> Option<&'a candle_onnx::onnx::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

/// Suffixes of the tensors this module adds (documented in docs/ARCHITECTURE.md).
pub const Q_SUFFIX: &str = "/q";
/// Suffix of the DequantizeLinear output that follows each QuantizeLinear.
pub const DQ_SUFFIX: &str = "/dq";

/// Rewrite the fp32 model `model` (as [`crate::export`] writes it for `spec`) into a QDQ int8 model.
/// `ranges` holds the calibrated range of `spec::INPUT` and of every layer output (by layer name).
pub fn quantize(
    model: &ModelProto,
    spec: &ModelSpec,
    ranges: &BTreeMap<String, Range>,
    opts: &QuantizeOptions,
) -> Result<ModelProto, ExportError> {
    let err = |msg: String| ExportError::Weight {
        name: "quantize".into(),
        msg,
    };
    let layers = spec.resolve()?;
    for l in &opts.fp32_layers {
        if !layers.iter().any(|r| &r.name == l) {
            return Err(err(format!("--fp32-layers: the spec has no layer '{l}'")));
        }
    }
    let fp32: HashSet<&str> = opts.fp32_layers.iter().map(String::as_str).collect();
    let mut out = model.clone();
    let g = out.graph.as_mut().ok_or_else(|| err("the model has no graph".into()))?;
    // The ONNX tensor that holds each layer's output, and the layer that writes it.
    let last = layers.len() - 1;
    let mut layer_of_tensor: HashMap<String, String> = HashMap::new();
    for l in &layers {
        let t = if l.index == last {
            RECONSTRUCTION.to_string()
        } else if [RECONSTRUCTION, INPAINTED].contains(&l.name.as_str()) {
            format!("layer/{}", l.name)
        } else {
            l.name.clone()
        };
        layer_of_tensor.insert(t, l.name.clone());
    }
    let input_tensor = if spec.mask_channel { spec::INPUT } else { IMAGE };

    // Tensors to quantize, with their parameters.
    let mut qparams: HashMap<String, QParams> = HashMap::new();
    let range_of = |name: &str| {
        ranges
            .get(name)
            .copied()
            .ok_or_else(|| err(format!("no calibrated range for '{name}'")))
    };
    qparams.insert(input_tensor.to_string(), range_of(spec::INPUT)?.qparams());
    for (t, l) in &layer_of_tensor {
        if t != RECONSTRUCTION && !fp32.contains(l.as_str()) {
            qparams.insert(t.clone(), range_of(l)?.qparams());
        }
    }

    // 1. Transposed convolutions -> sub-pixel convolution + interleave (same values as the layer's
    //    output, so the same quantization parameters on every tensor of the interleave).
    let keep: HashSet<String> = fp32.iter().map(|s| s.to_string()).collect();
    if opts.subpixel {
        let (rewritten, phases) = subpixel_rewrite(
            &ModelProto {
                graph: Some(std::mem::take(g)),
                ..Default::default()
            },
            spec,
            &keep,
        )?;
        *g = rewritten.graph.unwrap_or_default();
        for (t, layer_tensor) in phases {
            if let Some(q) = qparams.get(&layer_tensor).copied() {
                qparams.insert(t, q);
            }
        }
    }
    let mut init_order: Vec<String> = g.initializer.iter().map(|t| t.name.clone()).collect();
    let mut inits: HashMap<String, TensorProto> = g.initializer.drain(..).map(|t| (t.name.clone(), t)).collect();
    let nodes: Vec<NodeProto> = g.node.drain(..).collect();

    // 2. Weights and biases of the convolutions and dense layers whose input is quantized.
    let mut new_nodes: Vec<NodeProto> = Vec::with_capacity(nodes.len() * 3);
    let mut quantized_layers: Vec<String> = Vec::new();
    for mut n in nodes {
        let quantizable = matches!(n.op_type.as_str(), "Conv" | "Gemm");
        // Layer nodes are named after their layer (lower.rs); a sub-pixel conv is "LAYER/subpixel".
        let layer = n.name.trim_end_matches("/subpixel").to_string();
        let x_q = qparams.get(&n.input[0]).copied();
        if quantizable && !fp32.contains(layer.as_str()) {
            if let Some(xq) = x_q {
                let w = inits
                    .remove(&n.input[1])
                    .ok_or_else(|| err(format!("no initializer '{}'", n.input[1])))?;
                let wv = tensor_f32_values(&w).ok_or_else(|| err(format!("'{}' is not float32", w.name)))?;
                let oc = w.dims[0] as usize;
                let (q, scales) = quantize_weight(&wv, oc);
                let wq_name = w.name.clone();
                inits.insert(wq_name.clone(), tensor_i8(&wq_name, &w.dims, &q));
                let (ws, wz, wdq) = (
                    format!("{wq_name}/scale"),
                    format!("{wq_name}/zero_point"),
                    format!("{wq_name}{DQ_SUFFIX}"),
                );
                inits.insert(ws.clone(), proto::tensor_f32(&ws, &[oc], &scales));
                inits.insert(wz.clone(), tensor_i8(&wz, &[oc as i64], &vec![0; oc]));
                init_order.extend([ws.clone(), wz.clone()]);
                new_nodes.push(proto::node(
                    "DequantizeLinear",
                    &wdq,
                    &[&wq_name, &ws, &wz],
                    &[&wdq],
                    vec![proto::attr_int("axis", 0)],
                ));
                n.input[1] = wdq;
                if let Some(bname) = n.input.get(2).filter(|b| !b.is_empty()).cloned() {
                    let b = inits
                        .remove(&bname)
                        .ok_or_else(|| err(format!("no initializer '{bname}'")))?;
                    let bv = tensor_f32_values(&b).ok_or_else(|| err(format!("'{bname}' is not float32")))?;
                    let bs: Vec<f32> = scales.iter().map(|s| s * xq.scale).collect();
                    let bq: Vec<i32> = bv
                        .iter()
                        .zip(&bs)
                        .map(|(v, s)| (v / s).round().clamp(i32::MIN as f32, i32::MAX as f32) as i32)
                        .collect();
                    inits.insert(bname.clone(), tensor_i32(&bname, &b.dims, &bq));
                    let (bsn, bzn, bdq) = (
                        format!("{bname}/scale"),
                        format!("{bname}/zero_point"),
                        format!("{bname}{DQ_SUFFIX}"),
                    );
                    inits.insert(bsn.clone(), proto::tensor_f32(&bsn, &[oc], &bs));
                    inits.insert(bzn.clone(), tensor_i32(&bzn, &[oc as i64], &vec![0; oc]));
                    init_order.extend([bsn.clone(), bzn.clone()]);
                    new_nodes.push(proto::node(
                        "DequantizeLinear",
                        &bdq,
                        &[&bname, &bsn, &bzn],
                        &[&bdq],
                        vec![proto::attr_int("axis", 0)],
                    ));
                    n.input[2] = bdq;
                }
                if !quantized_layers.contains(&layer) {
                    quantized_layers.push(layer);
                }
            }
        }
        new_nodes.push(n);
    }

    // 3. Activations: Q -> DQ after the producer of every quantized tensor; the network's nodes read
    //    the DQ output, the composite keeps reading the fp32 graph inputs.
    let mut final_nodes: Vec<NodeProto> = Vec::with_capacity(new_nodes.len() + 2 * qparams.len());
    let rewire = |n: &mut NodeProto, qparams: &HashMap<String, QParams>| {
        if n.name.starts_with("composite/") {
            return;
        }
        for i in n.input.iter_mut() {
            if qparams.contains_key(i.as_str()) {
                *i = format!("{i}{DQ_SUFFIX}");
            }
        }
    };
    let emit_qdq = |name: &str,
                    q: QParams,
                    nodes: &mut Vec<NodeProto>,
                    inits: &mut HashMap<String, TensorProto>,
                    order: &mut Vec<String>| {
        let (sn, zn) = (format!("{name}/scale"), format!("{name}/zero_point"));
        inits.insert(sn.clone(), proto::tensor_f32(&sn, &[], &[q.scale]));
        inits.insert(zn.clone(), tensor_u8(&zn, &[], &[q.zero_point]));
        order.extend([sn.clone(), zn.clone()]);
        let (qn, dqn) = (format!("{name}{Q_SUFFIX}"), format!("{name}{DQ_SUFFIX}"));
        nodes.push(proto::node("QuantizeLinear", &qn, &[name, &sn, &zn], &[&qn], vec![]));
        nodes.push(proto::node("DequantizeLinear", &dqn, &[&qn, &sn, &zn], &[&dqn], vec![]));
    };
    if !spec.mask_channel {
        // The network reads the graph input `image` directly.
        emit_qdq(IMAGE, qparams[IMAGE], &mut final_nodes, &mut inits, &mut init_order);
    }
    for mut n in new_nodes {
        rewire(&mut n, &qparams);
        let produced: Vec<String> = n
            .output
            .iter()
            .filter(|o| qparams.contains_key(o.as_str()))
            .cloned()
            .collect();
        final_nodes.push(n);
        for o in produced {
            emit_qdq(&o, qparams[&o], &mut final_nodes, &mut inits, &mut init_order);
        }
    }
    g.node = final_nodes;
    let mut seen = HashSet::new();
    g.initializer = init_order
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .filter_map(|n| inits.remove(&n))
        .collect();

    let info = serde_json::json!({
        "format": "QDQ",
        "weights": "int8 symmetric per output channel",
        "activations": "uint8 per tensor",
        "int8_layers": quantized_layers,
        "fp32_layers": opts.fp32_layers,
        "conv_transpose": if opts.subpixel { "sub-pixel Conv + interleave (Transpose/Reshape)" } else { "fp32 ConvTranspose" },
        "calibration": opts.description,
    });
    out.metadata_props.retain(|p| p.key != keys::QUANTIZATION);
    out.metadata_props.push(StringStringEntryProto {
        key: keys::QUANTIZATION.into(),
        value: info.to_string(),
    });
    out.doc_string = format!("{} (int8 QDQ)", out.doc_string);
    Ok(out)
}

/// Per-op counts of a graph (for reports and tests).
pub fn op_counts(model: &ModelProto) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in model.graph.iter().flat_map(|g| &g.node) {
        *m.entry(n.op_type.clone()).or_insert(0) += 1;
    }
    m
}

/// Structural check of a quantized model: every int8 weight is read by a per-channel
/// DequantizeLinear (axis 0, one scale per output channel, zero points 0), every quantized
/// activation by a Q -> DQ pair with scalar uint8 parameters, and no composite node reads a
/// dequantized tensor (the known pixels are passed through in fp32).
pub fn check_quantized(model: &ModelProto) -> Result<(), String> {
    let g = model.graph.as_ref().ok_or("no graph")?;
    let inits: HashMap<&str, &TensorProto> = g.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    for n in &g.node {
        if n.op_type == "DequantizeLinear" {
            let Some(x) = inits.get(n.input[0].as_str()) else {
                continue;
            };
            let s = inits
                .get(n.input[1].as_str())
                .ok_or_else(|| format!("{}: scale is not an initializer", n.name))?;
            let z = inits
                .get(n.input[2].as_str())
                .ok_or_else(|| format!("{}: zero point is not an initializer", n.name))?;
            let oc = x.dims[0];
            if s.dims != [oc] || z.dims != [oc] {
                return Err(format!(
                    "{}: {} scales / {:?} zero points for {oc} output channels",
                    n.name,
                    s.dims.len(),
                    z.dims
                ));
            }
            if z.raw_data.iter().any(|b| *b != 0) {
                return Err(format!(
                    "{}: non-zero weight zero point (weights are symmetric)",
                    n.name
                ));
            }
            let want = if x.data_type == DataType::Int8 as i32 {
                DataType::Int8
            } else {
                DataType::Int32
            };
            if x.data_type != want as i32 || z.data_type != want as i32 {
                return Err(format!(
                    "{}: weight type {} / zero point type {}",
                    n.name, x.data_type, z.data_type
                ));
            }
            if attr(n, "axis").map(|a| a.i) != Some(0) {
                return Err(format!("{}: per-channel DequantizeLinear without axis 0", n.name));
            }
        }
        if n.name.starts_with("composite/") && n.input.iter().any(|i| i.ends_with(DQ_SUFFIX)) {
            return Err(format!(
                "{} reads a quantized tensor: known pixels would change",
                n.name
            ));
        }
    }
    Ok(())
}

/// How close a quantized model's reconstruction is to the fp32 candle model's.
#[derive(Debug, Clone, Copy)]
pub struct Closeness {
    /// PSNR (dB, peak 1) of the int8 reconstruction against the fp32 one, whole images.
    pub psnr: f64,
    /// The same inside the holes only (what inpainting quality depends on).
    pub psnr_hole: f64,
    /// Largest |int8 - fp32| over every reconstruction value.
    pub max_abs: f32,
}

/// Run the candle model (fp32, `weights`) and the ONNX model `onnx_bytes` (through ONNX Runtime) on
/// `image`/`mask` and compare the reconstructions.
pub fn compare_with_candle(
    spec: &ModelSpec,
    weights: &HashMap<String, candle_core::Tensor>,
    onnx_bytes: &[u8],
    image: &candle_core::Tensor,
    mask: &candle_core::Tensor,
) -> Result<Closeness, crate::verify::VerifyError> {
    use candle_core::{DType, Device};
    let model = facerecon_model::Model::new(
        spec,
        candle_nn::VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu),
    )?;
    let (rec, _) = model.forward(image, mask)?;
    let (q_rec, _) = crate::verify::OrtModel::from_bytes(onnx_bytes)?.run(image, mask)?;
    let a: Vec<f32> = rec.flatten_all()?.to_vec1()?;
    let b: Vec<f32> = q_rec.flatten_all()?.to_vec1()?;
    let m: Vec<f32> = mask.broadcast_as(rec.shape())?.flatten_all()?.to_vec1()?;
    let (mut se, mut se_hole, mut n_hole, mut max_abs) = (0f64, 0f64, 0usize, 0f32);
    for ((x, y), h) in a.iter().zip(&b).zip(&m) {
        let d = (x - y) as f64;
        se += d * d;
        max_abs = max_abs.max(d.abs() as f32);
        if is_hole_f32(*h) {
            se_hole += d * d;
            n_hole += 1;
        }
    }
    let psnr = |se: f64, n: usize| {
        if se > 0.0 && n > 0 {
            10.0 * (n as f64 / se).log10()
        } else {
            f64::INFINITY
        }
    };
    Ok(Closeness {
        psnr: psnr(se, a.len()),
        psnr_hole: psnr(se_hole, n_hole),
        max_abs,
    })
}
