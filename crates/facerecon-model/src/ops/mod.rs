//! Fast CPU kernels for training: conv2d, conv_transpose2d, dense, the composite, leaky_relu and sigmoid
//! as candle custom ops (im2col + GEMM per image spread over rayon threads, weight gradients as
//! accumulating GEMMs, gradients skipped for inputs that do not lead to a variable, single-pass
//! activation gradients). CPU and f32 only: [`crate::layers::Backend`] decides when they run and holds
//! candle's form of each op for every other case.
//!
//! Layouts are candle's: NCHW activations, conv2d weights `[c_out, c_in, kh, kw]`, conv_transpose2d
//! weights `[c_in, c_out, kh, kw]`, biases `[c_out]`.
mod activation;
mod composite;
mod conv;
mod dense;
mod geom;
mod implicit;
mod kernels;
mod simd;
#[cfg(test)]
mod tests;
mod transpose;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor};

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

pub(crate) use crate::layers::Act;
pub(crate) use conv::ConvOp;

/// A convolution on the kernels (CPU, f32; bias and activation fused as `op` says).
pub(crate) fn convolve(op: ConvOp, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, op),
        None => x.apply_op2(&w, op),
    }
}

/// The fully connected layer `x Wᵀ + b` on the kernels (CPU, f32).
pub(crate) fn dense(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let (x, w) = (x.contiguous()?, w.contiguous()?);
    match b {
        Some(b) => x.apply_op3(&w, &b.contiguous()?, dense::DenseOp),
        None => x.apply_op2(&w, dense::DenseOp),
    }
}

/// The composite on the kernels (CPU, f32).
pub(crate) use composite::composite;

/// LeakyReLU `x > 0 ? x : slope * x` on the kernels (CPU, f32; any slope).
pub(crate) fn leaky_relu(x: &Tensor, slope: f64) -> Result<Tensor> {
    x.apply_op1(activation::LeakyRelu { slope: slope as f32 })
}

/// Logistic sigmoid on the kernels (CPU, f32).
pub(crate) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    x.apply_op1(activation::Sigmoid)
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
