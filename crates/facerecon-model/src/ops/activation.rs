//! Element-wise activations as candle custom ops with single-pass backward kernels (candle-nn's
//! leaky_relu builds its gradient from maximum/minimum and ~25 temporaries).
use super::{cpu_f32, tensor_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: big enough to amortise scheduling, small enough to split a layer.
const CHUNK: usize = 1 << 15;

/// `f` over `x`, in parallel chunks, into a fresh vector that is written once (no zero-fill pass).
fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    out.spare_capacity_mut()[..x.len()].par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(|(o, x)| {
        o.iter_mut().zip(x).for_each(|(o, &x)| {
            o.write(f(x));
        });
    });
    // SAFETY: the chunks above cover all `x.len()` slots and each was written.
    unsafe { out.set_len(x.len()) };
    out
}

/// `f` over `a` and `b` element-wise; see [`map1`].
fn map2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Sync) -> Vec<f32> {
    assert_eq!(a.len(), b.len());
    let mut out = Vec::with_capacity(a.len());
    out.spare_capacity_mut()[..a.len()].par_chunks_mut(CHUNK).zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK))).for_each(
        |(o, (a, b))| {
            o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| {
                o.write(f(a, b));
            });
        },
    );
    // SAFETY: the chunks above cover all `a.len()` slots and each was written.
    unsafe { out.set_len(a.len()) };
    out
}

/// `grad ⊙ f(arg or result)` computed from two tensors in one pass.
fn grad_map(t: &Tensor, grad: &Tensor, f: impl Fn(f32, f32) -> f32 + Sync) -> Result<Tensor> {
    let (t, grad) = (t.contiguous()?, grad.contiguous()?);
    let (tg, tl) = t.storage_and_layout();
    let (gg, gl) = grad.storage_and_layout();
    let out = map2(tensor_f32(&tg, tl)?, tensor_f32(&gg, gl)?, f);
    Tensor::from_vec(out, t.shape(), t.device())
}

/// `x > 0 ? x : slope * x`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LeakyRelu {
    pub slope: f32,
}

impl CustomOp1 for LeakyRelu {
    fn name(&self) -> &'static str {
        "facerecon-leaky-relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let slope = self.slope;
        // Branch-free (a select of two products) so that the loop vectorises.
        let out = map1(cpu_f32(s, l)?, |x| x * if x > 0.0 { 1.0 } else { slope });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let slope = self.slope;
        grad_map(arg, grad, |x, g| g * if x > 0.0 { 1.0 } else { slope }).map(Some)
    }
}

/// `1 / (1 + e^-x)`, gradient `y (1 - y)` from the saved output.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sigmoid;

impl CustomOp1 for Sigmoid {
    fn name(&self) -> &'static str {
        "facerecon-sigmoid"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = map1(cpu_f32(s, l)?, |x| 1.0 / (1.0 + (-x).exp()));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        grad_map(res, grad, |y, g| g * y * (1.0 - y)).map(Some)
    }
}
