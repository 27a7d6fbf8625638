//! The fully connected layer `y = x · Wᵀ + b` as a candle custom op (forward + backward) on the CPU.
//!
//! Why not candle's `matmul(x, w.t())`: its weight operand is a transposed view, which the `gemm` crate
//! packs element by element on every call (0.2 ms per seed dense layer at batch 1, a tenth of the whole
//! forward pass), and the weight gradient comes back as a transposed view that has to be copied before
//! the optimiser can use it. Here every operand is laid out the way `gemm` reads it without gathering,
//! small batches (the latency case) use dot products split over the output units, and the weight
//! gradient is written contiguous.
use super::kernels::{rm, sgemm, sum, threads, tr};
use super::transpose::transpose;
use super::{cpu_f32, tensor_f32};
use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

/// Batches below this use per-unit dot products instead of a GEMM: a GEMM's packing costs more than the
/// arithmetic it organises when each weight is used by so few rows.
const DOT_MAX_BATCH: usize = 8;

pub(crate) struct DenseOp;

/// `(batch, features, units)` for `x` `[B, F]` and `w` `[U, F]`.
fn dims(x: &[usize], w: &[usize]) -> Result<(usize, usize, usize)> {
    let (&[b, f], &[u, fw]) = (x, w) else {
        bail!("facerecon-dense: expected a 2-d input and weight, got {x:?} and {w:?}")
    };
    if f != fw {
        bail!("facerecon-dense: input has {f} features but the weight {w:?} expects {fw}")
    }
    Ok((b, f, u))
}

/// Parallelism for a GEMM of `macs` multiply-adds (the dense layers run one GEMM for the whole batch).
fn par(macs: usize) -> Parallelism {
    if threads() > 1 && macs >= 1 << 22 {
        Parallelism::Rayon(threads())
    } else {
        Parallelism::None
    }
}

fn forward(x: &[f32], w: &[f32], bias: Option<&[f32]>, (b, f, u): (usize, usize, usize)) -> Vec<f32> {
    if b < DOT_MAX_BATCH {
        // yᵀ [U, B], units split over the threads (each reads its share of the weight once), then
        // transposed to [B, U] (B is tiny).
        let mut yt = vec![0f32; u * b];
        let chunk = u.div_ceil(threads()).max(1);
        yt.par_chunks_mut(chunk * b.max(1)).enumerate().for_each(|(c, out)| {
            for (i, row) in out.chunks_mut(b.max(1)).enumerate() {
                let unit = c * chunk + i;
                let wu = &w[unit * f..][..f];
                let bu = bias.map_or(0.0, |bs| bs[unit]);
                for (bi, y) in row.iter_mut().enumerate() {
                    *y = dot(wu, &x[bi * f..][..f]) + bu;
                }
            }
        });
        let mut y = vec![0f32; b * u];
        transpose(&yt, u, b, &mut y);
        return y;
    }
    // y = x · Wᵀ with Wᵀ materialised [F, U]: `gemm` then reads both operands along their contiguous axis.
    let mut wt = vec![0f32; w.len()];
    transpose(w, u, f, &mut wt);
    let mut y = match bias {
        Some(bs) => bs.repeat(b),
        None => vec![0f32; b * u],
    };
    sgemm((b, u, f), &mut y, rm(u), bias.is_some(), x, rm(f), &wt, rm(u), par(b * u * f));
    y
}

/// Dot product with 16 independent accumulators (vectorises).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let rest: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (xa, xb) in ca.zip(cb) {
        for ((s, p), q) in acc.iter_mut().zip(xa).zip(xb) {
            *s += p * q;
        }
    }
    acc.iter().sum::<f32>() + rest
}

impl DenseOp {
    fn fwd(&self, x: (&CpuStorage, &Layout), w: (&CpuStorage, &Layout), b: Option<(&CpuStorage, &Layout)>) -> Result<(CpuStorage, Shape)> {
        let d @ (batch, _, units) = dims(x.1.dims(), w.1.dims())?;
        let bias = b.map(|(s, l)| cpu_f32(s, l)).transpose()?;
        if bias.is_some_and(|bs| bs.len() != units) {
            bail!("facerecon-dense: bias has {} elements, expected {units}", bias.map_or(0, |bs| bs.len()))
        }
        let y = forward(cpu_f32(x.0, x.1)?, cpu_f32(w.0, w.1)?, bias, d);
        Ok((CpuStorage::F32(y), (batch, units).into()))
    }

    /// Gradients for (x, w, b), each only when it leads to a variable.
    fn bwd(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>, grad: &Tensor) -> Result<[Option<Tensor>; 3]> {
        let (x, w, grad) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let (batch, f, u) = dims(x.dims(), w.dims())?;
        let (xg, xl) = x.storage_and_layout();
        let (wg, wl) = w.storage_and_layout();
        let (gg, gl) = grad.storage_and_layout();
        let (xs, ws, dy) = (tensor_f32(&xg, xl)?, tensor_f32(&wg, wl)?, tensor_f32(&gg, gl)?);
        let p = par(batch * u * f);
        let dev = x.device();
        let dx = if x.track_op() {
            // dx [B, F] = dy [B, U] · W [U, F].
            let mut dx = vec![0f32; batch * f];
            sgemm((batch, f, u), &mut dx, rm(f), false, dy, rm(u), ws, rm(f), p);
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        let dw = if w.track_op() {
            // dW [U, F] = dyᵀ [U, B] · x [B, F], written row-major (contiguous, as the weight).
            let mut dw = vec![0f32; u * f];
            sgemm((u, f, batch), &mut dw, rm(f), false, dy, tr(u), xs, rm(f), p);
            Some(Tensor::from_vec(dw, w.shape(), dev)?)
        } else {
            None
        };
        let db = match b {
            Some(b) if b.track_op() => {
                let mut dyt = vec![0f32; dy.len()];
                transpose(dy, batch, u, &mut dyt);
                let db: Vec<f32> = dyt.chunks(batch.max(1)).map(sum).collect();
                Some(Tensor::from_vec(db, b.shape(), dev)?)
            }
            _ => None,
        };
        Ok([dx, dw, db])
    }
}

impl CustomOp2 for DenseOp {
    fn name(&self) -> &'static str {
        "facerecon-dense"
    }

    fn cpu_fwd(&self, xs: &CpuStorage, xl: &Layout, ws: &CpuStorage, wl: &Layout) -> Result<(CpuStorage, Shape)> {
        self.fwd((xs, xl), (ws, wl), None)
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = DenseOp::bwd(self, x, w, None, grad)?;
        Ok((dx, dw))
    }
}

impl CustomOp3 for DenseOp {
    fn name(&self) -> &'static str {
        "facerecon-dense"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        self.fwd((xs, xl), (ws, wl), Some((bs, bl)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = DenseOp::bwd(self, x, w, Some(b), grad)?;
        Ok((dx, dw, db))
    }
}
