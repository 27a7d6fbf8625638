//! Element-wise activations as candle custom ops with single-pass backward kernels (candle-nn's
//! leaky_relu builds its gradient from maximum/minimum and ~25 temporaries).
use super::simd::fmadd;
use super::{cpu_f32, tensor_f32};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel task: big enough to amortise scheduling, small enough to split a layer.
const CHUNK: usize = 1 << 15;

/// `f` over `x`, in parallel chunks, into a fresh vector that is written once (no zero-fill pass).
fn map1(x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    out.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| {
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
    out.spare_capacity_mut()[..a.len()]
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(|(o, (a, b))| {
            o.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&a, &b))| {
                o.write(f(a, b));
            });
        });
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
        let out = map1(cpu_f32(s, l)?, sigmoid::<false>);
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        grad_map(res, grad, |y, g| g * y * (1.0 - y)).map(Some)
    }
}

/// The logistic sigmoid with a branch-free `exp` that vectorises (libm's `expf` is a scalar call per
/// element: ~2 % of a batch-1 forward pass for the seed's 49k outputs). Relative error below 5e-7 (the
/// test sweeps [-100, 100]).
#[inline(always)]
pub(crate) fn sigmoid<const FMA: bool>(x: f32) -> f32 {
    1.0 / (1.0 + exp::<FMA>(-x))
}

/// `e^x` for `x` clamped to [-87, 88] (beyond that the sigmoid is 0 or 1 to f32 precision anyway):
/// `2^k · e^r` with `k = round(x / ln 2)`, `|r| <= ln 2 / 2`, `e^r` by its degree-7 Taylor polynomial.
#[inline(always)]
fn exp<const FMA: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 in two parts (Cody-Waite) so that `x - k ln 2` stays exact for |k| <= 127.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer with plain float adds.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let k = shifted - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    // Horner's scheme, with fused multiply-adds where the CPU has them.
    let p = [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0]
        .iter()
        .fold(1.0 / 5040.0, |acc, &c| fmadd::<FMA>(acc, r, c));
    // 2^k from its exponent bits (k in [-126, 127] after the clamp). k is read from the low mantissa bits of
    // `shifted` (whose unit in the last place is 1) with integer ops only: `k as i32` would be a saturating
    // float-to-int conversion, which does not vectorise (a scalar convert and NaN check per element).
    let k_bits = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    p * f32::from_bits(k_bits.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_sigmoid_matches_f64() {
        // Both copies: plain (baseline CPUs) and with fused multiply-adds (AVX2 / AVX-512 CPUs).
        for sigmoid in [super::sigmoid::<false>, super::sigmoid::<true>] {
            let mut worst = 0f64;
            for i in -200_000..=200_000 {
                let x = i as f32 * 5e-4;
                let want = 1.0 / (1.0 + (-(x as f64)).exp());
                let got = sigmoid(x) as f64;
                // Relative error where f32 has normal numbers; below e^-87 only the absolute error matters.
                let err = if want > 1e-37 {
                    (got - want).abs() / want
                } else {
                    (got - want).abs() * 1e30
                };
                worst = worst.max(err);
            }
            assert!(worst < 5e-7, "max relative error {worst:e}");
            assert!(sigmoid(-1000.0) < 1e-37 && sigmoid(1000.0) == 1.0 && sigmoid(0.0) == 0.5);
            assert!(sigmoid(f32::NAN).is_nan());
        }
    }
}
