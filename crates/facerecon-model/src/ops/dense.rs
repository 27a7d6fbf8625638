//! The fully connected layer `y = x · Wᵀ + b` as a candle custom op (forward + backward) on the CPU.
//!
//! Why not candle's `matmul(x, w.t())`: its weight operand is a transposed view, which the `gemm` crate
//! packs element by element on every call (0.2 ms per seed dense layer at batch 1, a tenth of the whole
//! forward pass), and the weight gradient comes back as a transposed view that has to be copied before
//! the optimiser can use it. Here every operand is laid out the way `gemm` reads it without gathering,
//! small batches (the latency case) use dot products split over the output units, and the weight
//! gradient is written contiguous.
use super::kernels::{rm, sgemm, sum, threads, tr};
use super::simd::{self, Level};
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
        yt.par_chunks_mut(chunk * b.max(1))
            .enumerate()
            .for_each(|(c, out)| dots(w, x, bias, f, c * chunk, out));
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
    sgemm(
        (b, u, f),
        &mut y,
        rm(u),
        bias.is_some(),
        x,
        rm(f),
        &wt,
        rm(u),
        par(b * u * f),
    );
    y
}

/// `yt[i * b + bi] = w[unit0 + i] · x[bi] + bias[unit0 + i]` for the units of `yt` (`b` = `x.len() / f`
/// values per unit), with the best dot-product kernel of this CPU.
fn dots(w: &[f32], x: &[f32], bias: Option<&[f32]>, f: usize, unit0: usize, yt: &mut [f32]) {
    let dot: fn(&[f32], &[f32]) -> f32 = match simd::level() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` reports AVX-512 F only where the CPU has it.
        Level::V4 => |a, b| unsafe { x86::dot_avx512(a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `level()` reports AVX2 + FMA only where the CPU has them.
        Level::V3 => |a, b| unsafe { x86::dot_avx2(a, b) },
        _ => dot,
    };
    let b = (x.len() / f.max(1)).max(1);
    for (i, row) in yt.chunks_mut(b).enumerate() {
        let unit = unit0 + i;
        let wu = &w[unit * f..][..f];
        let bu = bias.map_or(0.0, |bs| bs[unit]);
        for (bi, y) in row.iter_mut().enumerate() {
            *y = dot(wu, &x[bi * f..][..f]) + bu;
        }
    }
}

/// Dot product with 16 independent accumulators (vectorises, 4-wide, on baseline x86-64).
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

/// Dot products with explicit AVX-512 / AVX2 fused multiply-adds: four independent accumulator
/// registers (the weights stream through once; the add latency is hidden) and one horizontal sum at the
/// end. The compiler does not vectorise a float reduction this way by itself (it may not reorder the
/// adds), and its SLP-vectorised accumulator arrays came out 2-wide.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f")]
    pub(super) fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: (all loads) every offset read is below `n`, the length of both slices' prefixes; the
        // masked tail load reads only the `n - i` lanes that exist.
        unsafe {
            while i + 64 <= n {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(
                        _mm512_loadu_ps(pa.add(i + 16 * k)),
                        _mm512_loadu_ps(pb.add(i + 16 * k)),
                        *a,
                    );
                }
                i += 64;
            }
            while i + 16 <= n {
                acc[0] = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc[0]);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = (1u16 << (n - i)) - 1;
                acc[1] = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                    acc[1],
                );
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(
            _mm512_add_ps(acc[0], acc[1]),
            _mm512_add_ps(acc[2], acc[3]),
        ))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: every offset read is below `n`, the length of both slices' prefixes.
        unsafe {
            while i + 32 <= n {
                for (k, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(
                        _mm256_loadu_ps(pa.add(i + 8 * k)),
                        _mm256_loadu_ps(pb.add(i + 8 * k)),
                        *a,
                    );
                }
                i += 32;
            }
            while i + 8 <= n {
                acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc[0]);
                i += 8;
            }
        }
        let v = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        _mm_cvtss_f32(h) + a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum::<f32>()
    }
}

impl DenseOp {
    fn fwd(
        &self,
        x: (&CpuStorage, &Layout),
        w: (&CpuStorage, &Layout),
        b: Option<(&CpuStorage, &Layout)>,
    ) -> Result<(CpuStorage, Shape)> {
        let d @ (batch, _, units) = dims(x.1.dims(), w.1.dims())?;
        let bias = b.map(|(s, l)| cpu_f32(s, l)).transpose()?;
        if bias.is_some_and(|bs| bs.len() != units) {
            bail!(
                "facerecon-dense: bias has {} elements, expected {units}",
                bias.map_or(0, |bs| bs.len())
            )
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

#[cfg(test)]
mod tests {
    /// Every dot-product kernel this CPU can run, against an f64 sum, for lengths around the 64-wide main
    /// loop, the 16- and 8-wide loops and the tails.
    type Dot = fn(&[f32], &[f32]) -> f32;

    #[test]
    fn dot_kernels_match_f64() {
        let mut kernels: Vec<(&str, Dot)> = vec![("baseline", super::dot)];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") {
                // SAFETY: the CPU has AVX-512 F (checked).
                kernels.push(("avx512", |a, b| unsafe { super::x86::dot_avx512(a, b) }));
            }
            if has!("avx2") && has!("fma") {
                // SAFETY: the CPU has AVX2 and FMA (checked).
                kernels.push(("avx2", |a, b| unsafe { super::x86::dot_avx2(a, b) }));
            }
        }
        for n in (0..=140).chain([300, 4096, 4097]) {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7919 % 101) as f32 - 50.0) / 37.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 104_729 % 89) as f32 - 44.0) / 29.0).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| *x as f64 * *y as f64).sum();
            let scale: f64 = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (*x as f64 * *y as f64).abs())
                .sum::<f64>()
                + 1.0;
            for (name, dot) in &kernels {
                let got = dot(&a, &b) as f64;
                assert!((got - want).abs() <= 1e-5 * scale, "{name} n={n}: {got} vs {want}");
            }
        }
    }
}
