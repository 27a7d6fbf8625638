//! Fast CPU kernels for training: conv2d, conv_transpose2d, dense, leaky_relu and sigmoid as candle custom ops.
//!
//! Each public function dispatches: on the CPU with f32 tensors it runs the custom op (im2col + GEMM per
//! image spread over rayon threads, weight gradients as accumulating GEMMs, gradients skipped for inputs
//! that do not lead to a variable, single-pass activation gradients); anywhere else (CUDA, other dtypes)
//! it runs candle's own ops, so results and autograd behave the same on every device.
//!
//! Layouts are candle's: NCHW activations, conv2d weights `[c_out, c_in, kh, kw]`, conv_transpose2d
//! weights `[c_in, c_out, kh, kw]`, biases `[c_out]`.
mod activation;
mod composite;
mod conv;
mod dense;
mod geom;
mod kernels;
mod simd;
#[cfg(test)]
mod tests;
mod transpose;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Layout, Result, Storage, Tensor};

/// The contiguous f32 data of a CPU storage, or an error naming what is wrong (also used by the
/// trainer's one-pass loss and Adam kernels).
pub fn cpu_f32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("facerecon ops: expected f32 data, got {:?}", s.dtype())
    };
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => bail!(
            "facerecon ops: expected a contiguous tensor, got strides {:?}",
            l.stride()
        ),
    }
}

/// [`cpu_f32`] for a tensor's storage (as returned by `Tensor::storage_and_layout`).
pub fn tensor_f32<'a>(s: &'a Storage, l: &Layout) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => cpu_f32(c, l),
        _ => bail!("facerecon ops: expected a CPU tensor"),
    }
}

/// Whether the custom CPU kernels apply to these tensors.
fn fast_path(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// A bias `[c]` shaped to broadcast over NCHW.
fn bias4(b: &Tensor) -> Result<Tensor> {
    b.reshape((1, b.elem_count(), 1, 1))
}

/// 2-d convolution of `x` `[n, c_in, h, w]` with `w` `[c_out, c_in, kh, kw]` (+ bias `[c_out]`); the
/// same stride, symmetric padding and dilation on both axes.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    dilation: usize,
) -> Result<Tensor> {
    let op = conv::ConvOp {
        stride,
        pad,
        dilation,
        out_pad: 0,
        transpose: false,
        act: None,
    };
    convolve(op, x, w, b)
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
    /// The activation on its own (the unfused path and other devices).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Act::LeakyRelu(slope) => leaky_relu(x, slope as f64),
            Act::Sigmoid => sigmoid(x),
        }
    }

    /// Whether the fused kernels implement it.
    fn fusable(self) -> bool {
        match self {
            Act::LeakyRelu(slope) => slope >= 0.0,
            Act::Sigmoid => true,
        }
    }
}

/// `act(conv2d(x, w, b, ..))` as one op (see [`Act`]).
pub fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    dilation: usize,
    act: Act,
) -> Result<Tensor> {
    let op = conv::ConvOp {
        stride,
        pad,
        dilation,
        out_pad: 0,
        transpose: false,
        act: Some(act),
    };
    convolve_act(op, x, w, b, act)
}

/// `act(conv_transpose2d(x, w, b, ..))` as one op (see [`Act`]).
pub fn conv_transpose2d_act(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    out_pad: usize,
    act: Act,
) -> Result<Tensor> {
    let op = conv::ConvOp {
        stride,
        pad,
        dilation: 1,
        out_pad,
        transpose: true,
        act: Some(act),
    };
    convolve_act(op, x, w, b, act)
}

fn convolve_act(op: conv::ConvOp, x: &Tensor, w: &Tensor, b: Option<&Tensor>, act: Act) -> Result<Tensor> {
    let mut all = vec![x, w];
    all.extend(b);
    if act.fusable() && fast_path(&all) {
        return convolve(op, x, w, b);
    }
    act.apply(&convolve(conv::ConvOp { act: None, ..op }, x, w, b)?)
}

/// Transposed 2-d convolution of `x` `[n, c_in, h, w]` with `w` `[c_in, c_out, kh, kw]` (+ bias
/// `[c_out]`): output size `(h - 1) * stride - 2 * pad + kh + out_pad` (Keras `same` with stride `s`:
/// `pad = (k - 1) / 2`, `out_pad = s - 1`).
pub fn conv_transpose2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    pad: usize,
    out_pad: usize,
) -> Result<Tensor> {
    let op = conv::ConvOp {
        stride,
        pad,
        dilation: 1,
        out_pad,
        transpose: true,
        act: None,
    };
    convolve(op, x, w, b)
}

fn convolve(op: conv::ConvOp, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let mut all = vec![x, w];
    all.extend(b);
    if fast_path(&all) {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return match b {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
            None => x.apply_op2(&w, op),
        };
    }
    // (`op.act` is only set on the fast path; see `convolve_act`.)
    let y = if op.transpose {
        x.conv_transpose2d(w, op.pad, op.out_pad, op.stride, op.dilation)?
    } else {
        x.conv2d(w, op.pad, op.stride, op.dilation, 1)?
    };
    match b {
        Some(b) => y.broadcast_add(&bias4(b)?),
        None => Ok(y),
    }
}

/// Fully connected layer: `x` `[B, F]`, `w` `[U, F]`, optional bias `[U]` -> `x Wᵀ + b` `[B, U]`.
pub fn dense(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let mut all = vec![x, w];
    all.extend(b);
    if fast_path(&all) {
        let (x, w) = (x.contiguous()?, w.contiguous()?);
        return match b {
            Some(b) => x.apply_op3(&w, &b.contiguous()?, dense::DenseOp),
            None => x.apply_op2(&w, dense::DenseOp),
        };
    }
    let y = x.matmul(&w.t()?)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// `mask * rec + (1 - mask) * image` with `mask` `[B, 1, H, W]` broadcast over the channels of
/// `[B, C, H, W]` `rec` and `image`.
pub fn composite(rec: &Tensor, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if fast_path(&[rec, image, mask]) {
        return composite::composite(rec, image, mask);
    }
    let hole = mask.broadcast_mul(rec)?;
    let known = mask.affine(-1.0, 1.0)?.broadcast_mul(image)?;
    hole + known
}

/// LeakyReLU: `x > 0 ? x : slope * x`.
pub fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    if fast_path(&[x]) {
        return x.apply_op1(activation::LeakyRelu { slope: slope as f32 });
    }
    candle_nn::ops::leaky_relu(x, slope)
}

/// LeakyReLU of `x + b` with a per-channel bias `[c]` over NCHW `x`.
pub fn bias_leaky_relu(x: &Tensor, b: &Tensor, slope: f64) -> Result<Tensor> {
    leaky_relu(&x.broadcast_add(&bias4(b)?)?, slope)
}

/// Logistic sigmoid.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    if fast_path(&[x]) {
        return x.apply_op1(activation::Sigmoid);
    }
    candle_nn::ops::sigmoid(x)
}

/// Runs `f` on one of rayon's worker threads (moving it there, as `rayon::scope` does) with `helpers`
/// other workers kept awake until it returns: each helper spins, running any pending rayon job (the
/// pieces the kernels split a batch-1 layer into) as soon as it appears.
///
/// Why: between two layers a batch-1 forward pass has a serial stretch (the small layers run on one
/// thread, the tensors are wrapped), long enough for an idle rayon worker to go to sleep; waking it for
/// the next layer's pieces then costs tens of microseconds per layer (a futex wake-up, and on a virtual
/// machine an idle virtual CPU to reschedule), a large part of a 1.4 ms pass. ONNX Runtime's intra-op
/// threads spin between operators by default for the same reason. Use it only for short latency-bound
/// calls: the helpers burn their cores while `f` runs.
///
/// Deadlock freedom: a helper runs other jobs only on top of its own stack (`rayon::yield_now`), and
/// stops when `f` returns or after `HELPER_IDLE` without finding a job. The danger is a thread that
/// starts a helper while it waits inside a join, with work `f` needs below it on its stack: `f`'s own
/// thread could pop a not-yet-started helper off its deque that way, so helpers that find themselves on
/// that thread return at once; other threads steal the oldest jobs of a deque first, i.e. the helpers
/// (spawned before any of `f`'s pieces) before any piece of `f`, so they cannot hold a piece of `f`
/// when they start a helper. The idle limit bounds the cost of any case this reasoning misses (a helper
/// started by a thread busy with another caller's work delays that work until `f` ends or it idles out).
pub fn with_spinning_helpers<R: Send>(helpers: usize, f: impl FnOnce() -> R + Send) -> R {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let done = AtomicBool::new(false);
    let done = &done;
    rayon::scope(|s| {
        let owner = rayon::current_thread_index();
        for _ in 0..helpers {
            s.spawn(move |_| {
                if rayon::current_thread_index() == owner {
                    return;
                }
                let mut last_job = Instant::now();
                let mut idle_rounds = 0u32;
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() == Some(rayon::Yield::Executed) {
                        idle_rounds = 0;
                        last_job = Instant::now();
                        continue;
                    }
                    std::hint::spin_loop();
                    idle_rounds += 1;
                    // Reading the clock costs ~20 ns: once every 64 idle rounds.
                    if idle_rounds.is_multiple_of(64) && last_job.elapsed() > HELPER_IDLE {
                        return;
                    }
                }
            });
        }
        let r = f();
        done.store(true, Ordering::Release);
        r
    })
}

/// How long a [`with_spinning_helpers`] helper spins without finding a job before it gives up: well
/// above the gaps between a batch-1 forward pass's parallel pieces (tens of microseconds).
const HELPER_IDLE: std::time::Duration = std::time::Duration::from_millis(2);
