//! One free function per op of the spec, on NCHW (or `[B, F]`) tensors.
//!
//! [`crate::Model`] calls only these, so that the backend of each op can change in one place:
//! today they use candle's own ops on every device; the fast CPU kernels of `crate::ops` are meant
//! to be dispatched from here (one line per function) when the tensor lives on the CPU.
//!
//! The semantics are the ONNX lowering's (`facerecon-export`): symmetric padding, output padding
//! added at the bottom/right of a transposed convolution, nearest upsampling with
//! `floor(dst / scale)` as the source index.

pub use crate::ops::Act;
use candle_core::{Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// When set, the ops below run candle's own ops (what a plain candle-nn model would do) instead of
/// the fast kernels of `crate::ops`: the baseline for benchmarks and a cross-check of the kernels
/// (same data, same init: only the floating-point summation order differs).
static REFERENCE_OPS: AtomicBool = AtomicBool::new(false);

/// Switch the whole process to candle's plain ops (`true`) or back to the fast kernels (`false`).
/// Meant for benchmarks and cross-checks (`facerecon-train --reference-ops`), not for training.
pub fn set_reference_ops(on: bool) {
    REFERENCE_OPS.store(on, Ordering::Relaxed);
}

/// Whether [`set_reference_ops`] is on.
pub fn reference_ops() -> bool {
    REFERENCE_OPS.load(Ordering::Relaxed)
}

/// Add a per-channel bias `[C]` to an NCHW tensor.
/// (The fast kernels fuse the bias; this is the reference path's.)
fn add_channel_bias(x: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    match b {
        Some(b) => x.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?),
        None => Ok(x.clone()),
    }
}

/// 2-D convolution: `x` `[B, Cin, H, W]`, `w` `[Cout, Cin, k, k]`, optional bias `[Cout]`,
/// symmetric zero padding of `pad` pixels.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Result<Tensor> {
    if reference_ops() {
        return add_channel_bias(&x.conv2d(w, pad, stride, dilation, 1)?, b);
    }
    // CPU f32: the im2col + GEMM custom op of `crate::ops` (bias fused); elsewhere candle's conv2d + bias.
    crate::ops::conv2d(x, w, b, stride, pad, dilation)
}

/// 2-D transposed convolution: `x` `[B, Cin, H, W]`, `w` `[Cin, Cout, k, k]`, optional bias `[Cout]`.
/// Output side `(in - 1) * stride + k - 2 * pad + out_pad` (PyTorch / ONNX semantics).
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    out_pad: usize,
) -> Result<Tensor> {
    if reference_ops() {
        return add_channel_bias(&x.conv_transpose2d(w, pad, out_pad, stride, 1)?, b);
    }
    // CPU f32: the GEMM + col2im custom op of `crate::ops` (bias fused); elsewhere candle's op + bias.
    crate::ops::conv_transpose2d(x, w, b, stride, pad, out_pad)
}

/// Fully connected layer: `x` `[B, F]`, `w` `[U, F]`, optional bias `[U]` -> `[B, U]` (`x W^T + b`).
pub fn dense(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    if !reference_ops() {
        return crate::ops::dense(x, w, b);
    }
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `[B, C, H, W]` -> `[B, C*H*W]` in C-major order (ONNX `Flatten(axis=1)`).
pub fn flatten(x: &Tensor) -> Result<Tensor> {
    x.flatten_from(1)
}

/// `[B, F]` -> `[B, C, H, W]`.
pub fn reshape(x: &Tensor, chw: &[usize]) -> Result<Tensor> {
    let b = x.dim(0)?;
    let mut shape = vec![b];
    shape.extend_from_slice(chw);
    x.reshape(shape)
}

/// `max(x, 0) + slope * min(x, 0)`. For the usual `0 <= slope <= 1` this is `max(x, slope * x)`: one
/// multiply and one max instead of candle-nn's two zero tensors, and the same values bit for bit.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if reference_ops() {
        return candle_nn::ops::leaky_relu(x, slope);
    }
    if x.device().is_cpu() {
        // One pass forward, one pass backward (`crate::ops`).
        return crate::ops::leaky_relu(x, slope);
    }
    if (0.0..=1.0).contains(&slope) {
        x.maximum(&x.affine(slope, 0.0)?)
    } else {
        candle_nn::ops::leaky_relu(x, slope)
    }
}

/// ReLU: candle's own op on every backend (no fast kernel of its own).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// Logistic sigmoid (candle-nn's op: numerically stable, with a backward pass).
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if reference_ops() {
        return candle_nn::ops::sigmoid(x);
    }
    // CPU f32: `crate::ops` (one-pass backward from the saved output); elsewhere candle-nn's op.
    crate::ops::sigmoid(x)
}

/// Hyperbolic tangent: candle's op on every backend.
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    x.tanh()
}

/// Nearest-neighbour upsampling by an integer factor: `out[i] = in[floor(i / scale)]`
/// (ONNX `Resize`, mode nearest, `asymmetric`, `floor`).
pub fn upsample_nearest(x: &Tensor, scale: usize) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    x.upsample_nearest2d(h * scale, w * scale)
}

/// Channel concatenation (dim 1).
pub fn concat(xs: &[&Tensor]) -> Result<Tensor> {
    Tensor::cat(xs, 1)
}

/// Element-wise sum, left to right (the ONNX lowering chains `Add` nodes in the same order).
pub fn add(xs: &[&Tensor]) -> Result<Tensor> {
    let mut acc = xs[0].clone();
    for x in &xs[1..] {
        acc = (acc + *x)?;
    }
    Ok(acc)
}

/// `mask * rec + (1 - mask) * image`: known pixels kept exactly, holes from the reconstruction.
/// `mask` `[B, 1, H, W]` broadcasts over the channels.
pub fn composite(rec: &Tensor, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if !reference_ops() {
        return crate::ops::composite(rec, image, mask);
    }
    let hole = mask.broadcast_mul(rec)?;
    let keep = mask.affine(-1.0, 1.0)?; // 1 - mask
    let known = keep.broadcast_mul(image)?;
    hole + known
}

/// `act(conv2d(..))`; one fused op on the CPU (see `crate::ops::Act`).
pub fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    dilation: usize,
    act: Act,
) -> Result<Tensor> {
    if reference_ops() {
        return activation(&conv2d(x, w, b, stride, pad, dilation)?, act);
    }
    crate::ops::conv2d_act(x, w, b, stride, pad, dilation, act)
}

/// `act(conv_transpose2d(..))`; one fused op on the CPU.
pub fn conv_transpose2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    out_pad: usize,
    act: Act,
) -> Result<Tensor> {
    if reference_ops() {
        return activation(&conv_transpose2d(x, w, b, stride, pad, out_pad)?, act);
    }
    crate::ops::conv_transpose2d_act(x, w, b, stride, pad, out_pad, act)
}

/// The activation alone, through this module's dispatch (reference ops included).
fn activation(x: &Tensor, act: Act) -> Result<Tensor> {
    match act {
        Act::LeakyRelu(slope) => leaky_relu(x, slope as f64),
        Act::Sigmoid => sigmoid(x),
    }
}
