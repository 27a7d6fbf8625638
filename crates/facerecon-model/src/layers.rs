//! One function per op of the spec, on NCHW (or `[B, F]`) tensors, and the one place where each op's
//! implementation is chosen.
//!
//! The choice is a [`Backend`], made once (at [`crate::Model`] build, from the device, the dtype and
//! the process-wide [`set_reference_ops`] switch) instead of per op:
//!
//! * [`Backend::Kernels`] — the fast CPU kernels of `crate::ops` (f32 on the CPU only): fused bias and
//!   activations, single-pass gradients.
//! * [`Backend::Candle`] — candle's own ops, for every other device or dtype (CUDA, f64).
//! * [`Backend::Reference`] — candle's plain ops, unfused, what a plain candle-nn model would do: the
//!   baseline for benchmarks and a cross-check of the kernels (`facerecon-train --reference-ops`).
//!
//! Each op's candle form (bias add, matmul, composite, activation after a convolution) is written once,
//! in the `impl Backend` below; `crate::ops` holds only the kernels.
//!
//! The semantics are the ONNX lowering's (`facerecon-export`): symmetric padding, output padding
//! added at the bottom/right of a transposed convolution, nearest upsampling with
//! `floor(dst / scale)` as the source index.

use candle_core::{bail, DType, Device, Result, Tensor};
use std::sync::atomic::{AtomicBool, Ordering};

/// When set, [`Backend::select`] and [`Backend::for_tensors`] choose [`Backend::Reference`].
static REFERENCE_OPS: AtomicBool = AtomicBool::new(false);

/// Make models built from now on (and the trainer's loss) use candle's plain ops (`true`) or the
/// fast kernels (`false`). Meant for benchmarks and cross-checks (`facerecon-train --reference-ops`),
/// not for training. A [`crate::Model`] keeps the backend it was built with ([`crate::Model::set_backend`]
/// changes it).
pub fn set_reference_ops(on: bool) {
    REFERENCE_OPS.store(on, Ordering::Relaxed);
}

/// Whether [`set_reference_ops`] is on.
pub fn reference_ops() -> bool {
    REFERENCE_OPS.load(Ordering::Relaxed)
}

/// Hyper-parameters of a 2-d convolution or transposed convolution; each applies to both axes.
///
/// ```
/// use facerecon_model::layers::ConvParams;
/// let p = ConvParams { stride: 2, padding: 1, ..ConvParams::default() };
/// assert_eq!((p.dilation, p.output_padding), (1, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvParams {
    /// Step between kernel positions (conv) or between input pixels in the output (transposed conv).
    pub stride: usize,
    /// Zero padding on every side (conv), or pixels cropped from every side (transposed conv).
    pub padding: usize,
    /// Spacing between kernel taps.
    pub dilation: usize,
    /// Extra rows/columns at the bottom/right of a transposed convolution's output (must be 0 for a
    /// convolution, and smaller than the stride or the dilation for a transposed one).
    pub output_padding: usize,
}

impl Default for ConvParams {
    /// Stride 1, no padding, dilation 1, no output padding.
    fn default() -> Self {
        ConvParams {
            stride: 1,
            padding: 0,
            dilation: 1,
            output_padding: 0,
        }
    }
}

/// An activation fused into a convolution: applied to each image's output while it is in cache, its
/// gradient folded into the convolution's backward pass (no activation tensor, no extra gradient
/// accumulation by candle's autograd).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    /// LeakyReLU with this slope; fused only for `slope >= 0` (then `out > 0` exactly where the input is).
    LeakyRelu(f32),
    /// Logistic sigmoid; its gradient `y (1 - y)` comes from the saved output.
    Sigmoid,
}

impl Act {
    /// Whether the fused kernels implement it.
    fn fusable(self) -> bool {
        match self {
            Act::LeakyRelu(slope) => slope >= 0.0,
            Act::Sigmoid => true,
        }
    }
}

/// Which implementation runs the ops (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// candle's plain ops, unfused (benchmark baseline, cross-check of the kernels).
    Reference,
    /// The fast CPU kernels of `crate::ops`; every tensor must be f32 on the CPU.
    Kernels,
    /// candle's ops on any device and dtype.
    Candle,
}

impl Backend {
    /// The backend for tensors of `dtype` on `device`: [`Backend::Reference`] when
    /// [`set_reference_ops`] is on, else the kernels for f32 on the CPU, else candle.
    pub fn select(device: &Device, dtype: DType) -> Backend {
        if reference_ops() {
            Backend::Reference
        } else if device.is_cpu() && dtype == DType::F32 {
            Backend::Kernels
        } else {
            Backend::Candle
        }
    }

    /// [`Backend::select`] for these tensors: the kernels only when every one is f32 on the CPU.
    pub fn for_tensors(ts: &[&Tensor]) -> Backend {
        if reference_ops() {
            Backend::Reference
        } else if ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32) {
            Backend::Kernels
        } else {
            Backend::Candle
        }
    }

    /// 2-D convolution: `x` `[B, Cin, H, W]`, `w` `[Cout, Cin, kh, kw]`, optional bias `[Cout]`.
    pub fn conv2d(self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: ConvParams) -> Result<Tensor> {
        self.conv(x, w, b, p, false, None)
    }

    /// 2-D transposed convolution: `x` `[B, Cin, H, W]`, `w` `[Cin, Cout, kh, kw]`, optional bias
    /// `[Cout]`. Output side `(in - 1) * stride + dilation * (k - 1) + 1 - 2 * padding + output_padding`
    /// (PyTorch / ONNX semantics; Keras `same` with stride `s`: `padding = (k - 1) / 2`,
    /// `output_padding = s - 1`).
    pub fn conv_transpose2d(self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: ConvParams) -> Result<Tensor> {
        self.conv(x, w, b, p, true, None)
    }

    /// `act(conv2d(..))`; one fused op with the kernels (see [`Act`]).
    pub fn conv2d_act(self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, p: ConvParams, act: Act) -> Result<Tensor> {
        self.conv(x, w, b, p, false, Some(act))
    }

    /// `act(conv_transpose2d(..))`; one fused op with the kernels.
    pub fn conv_transpose2d_act(
        self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        p: ConvParams,
        act: Act,
    ) -> Result<Tensor> {
        self.conv(x, w, b, p, true, Some(act))
    }

    fn conv(
        self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        p: ConvParams,
        transpose: bool,
        act: Option<Act>,
    ) -> Result<Tensor> {
        if !transpose && p.output_padding != 0 {
            bail!(
                "conv2d: output padding {} applies only to transposed convolutions",
                p.output_padding
            )
        }
        match act {
            // The kernels fuse the bias and (LeakyReLU slopes >= 0, sigmoid) the activation.
            _ if self == Backend::Kernels && act.is_none_or(Act::fusable) => {
                let op = crate::ops::ConvOp {
                    params: p,
                    transpose,
                    act,
                };
                crate::ops::convolve(op, x, w, b)
            }
            Some(act) => self.activation(&self.conv(x, w, b, p, transpose, None)?, act),
            None => {
                let y = if transpose {
                    x.conv_transpose2d(w, p.padding, p.output_padding, p.stride, p.dilation)?
                } else {
                    x.conv2d(w, p.padding, p.stride, p.dilation, 1)?
                };
                match b {
                    Some(b) => y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?),
                    None => Ok(y),
                }
            }
        }
    }

    /// Fully connected layer: `x` `[B, F]`, `w` `[U, F]`, optional bias `[U]` -> `[B, U]` (`x W^T + b`).
    pub fn dense(self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if self == Backend::Kernels {
            return crate::ops::dense(x, w, b);
        }
        let y = x.matmul(&w.t()?)?;
        match b {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }

    /// `max(x, 0) + slope * min(x, 0)`.
    pub fn leaky_relu(self, x: &Tensor, slope: f64) -> Result<Tensor> {
        match self {
            // One pass forward, one pass backward.
            Backend::Kernels => crate::ops::leaky_relu(x, slope),
            // For the usual `0 <= slope <= 1` this is `max(x, slope * x)`: one multiply and one max
            // instead of candle-nn's two zero tensors, and the same values bit for bit.
            Backend::Candle if (0.0..=1.0).contains(&slope) => x.maximum(&x.affine(slope, 0.0)?),
            _ => candle_nn::ops::leaky_relu(x, slope),
        }
    }

    /// Logistic sigmoid (the kernels: one-pass backward from the saved output; otherwise candle-nn's
    /// op: numerically stable, with a backward pass).
    pub fn sigmoid(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Backend::Kernels => crate::ops::sigmoid(x),
            _ => candle_nn::ops::sigmoid(x),
        }
    }

    /// The activation on its own.
    pub fn activation(self, x: &Tensor, act: Act) -> Result<Tensor> {
        match act {
            Act::LeakyRelu(slope) => self.leaky_relu(x, slope as f64),
            Act::Sigmoid => self.sigmoid(x),
        }
    }

    /// `mask * rec + (1 - mask) * image`: known pixels kept exactly, holes from the reconstruction.
    /// `mask` `[B, 1, H, W]` broadcasts over the channels of `[B, C, H, W]` `rec` and `image`.
    pub fn composite(self, rec: &Tensor, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
        if self == Backend::Kernels {
            return crate::ops::composite(rec, image, mask);
        }
        let hole = mask.broadcast_mul(rec)?;
        let known = mask.affine(-1.0, 1.0)?.broadcast_mul(image)?; // (1 - mask) * image
        hole + known
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

/// `max(x, 0)`.
pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.relu()
}

/// Hyperbolic tangent.
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
