//! Reconstruction losses: the raw network output against the original image, per pixel, weighted
//! `hole_weight` inside the hole and 1 outside, averaged over every element (so `hole_weight: 1`
//! is exactly Keras' `mse` / `binary_crossentropy` / `mae`).

use crate::config::{LossConfig, LossKind};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use facerecon_model::layers::Backend;
use facerecon_model::ops::{cpu_f32, tensor_f32};
use rayon::prelude::*;

/// Keras' clipping of probabilities in binary cross-entropy (`epsilon()` = 1e-7).
const BCE_EPS: f64 = 1e-7;

/// The loss of `reconstruction` (`[N,C,H,W]` in `[0,1]`) against `target` (same shape), with the
/// per-pixel weight from `mask` (`[N,1,H,W]`, 1 = hole). Returns a scalar.
pub fn loss(cfg: &LossConfig, reconstruction: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    // The one-pass kernel where the model's layers would run theirs (CPU f32, not --reference-ops).
    let fused = matches!(cfg.kind, LossKind::Mse | LossKind::L1)
        && Backend::for_tensors(&[reconstruction, target, mask]) == Backend::Kernels;
    if fused {
        let op = PixelLoss {
            l1: cfg.kind == LossKind::L1,
            hole_weight: cfg.hole_weight as f32,
        };
        return reconstruction.apply_op3(target, mask, op);
    }
    loss_ops(cfg, reconstruction, target, mask)
}

/// [`loss`] with candle's tensor ops (any device, BCE, and the reference for `PixelLoss`).
pub fn loss_ops(cfg: &LossConfig, reconstruction: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let per_pixel = match cfg.kind {
        LossKind::Mse => (reconstruction - target)?.sqr()?,
        LossKind::L1 => (reconstruction - target)?.abs()?,
        LossKind::Bce => {
            // -(y log p + (1-y) log(1-p)), p clipped away from 0 and 1 as Keras does.
            let p = reconstruction.clamp(BCE_EPS, 1.0 - BCE_EPS)?;
            let pos = (target * p.log()?)?;
            let neg = (target.affine(-1.0, 1.0)? * p.affine(-1.0, 1.0)?.log()?)?;
            (pos + neg)?.neg()?
        }
    };
    if cfg.hole_weight == 1.0 {
        return per_pixel.mean_all();
    }
    // weight = 1 + (hole_weight - 1) * mask, broadcast over the channels.
    let weight = mask.affine(cfg.hole_weight - 1.0, 1.0)?;
    per_pixel.broadcast_mul(&weight)?.mean_all()
}

/// Weighted MSE or L1 as one CPU op: the forward pass reads each tensor once and the backward pass
/// writes the reconstruction's gradient in one pass (candle's ops take ~10 passes over the output and
/// as many gradient accumulations). Same definition as [`loss_ops`].
#[derive(Clone, Copy, Debug)]
struct PixelLoss {
    l1: bool,
    hole_weight: f32,
}

impl PixelLoss {
    /// Checks shapes: `[N,C,H,W]` twice and a `[N,1,H,W]` mask; returns (N, C, H*W).
    fn dims(&self, r: &Layout, t: &Layout, m: &Layout) -> Result<(usize, usize, usize)> {
        let (&[n, c, h, w], &[mn, 1, mh, mw]) = (r.dims(), m.dims()) else {
            candle_core::bail!(
                "pixel loss: expected [N,C,H,W] and a [N,1,H,W] mask, got {:?} and {:?}",
                r.dims(),
                m.dims()
            )
        };
        if t.dims() != r.dims() || (mn, mh, mw) != (n, h, w) {
            candle_core::bail!(
                "pixel loss: shapes {:?}, {:?} and mask {:?} differ",
                r.dims(),
                t.dims(),
                m.dims()
            )
        }
        Ok((n, c, h * w))
    }

    fn weight(&self, m: f32) -> f32 {
        1.0 + (self.hole_weight - 1.0) * m
    }
}

impl CustomOp3 for PixelLoss {
    fn name(&self) -> &'static str {
        "facerecon-pixel-loss"
    }

    fn cpu_fwd(
        &self,
        rs: &CpuStorage,
        rl: &Layout,
        ts: &CpuStorage,
        tl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, hw) = self.dims(rl, tl, ml)?;
        let (r, t, m) = (cpu_f32(rs, rl)?, cpu_f32(ts, tl)?, cpu_f32(ms, ml)?);
        let total: f64 = (0..n * c)
            .into_par_iter()
            .map(|plane| {
                let mask = &m[(plane / c) * hw..][..hw];
                let (r, t) = (&r[plane * hw..][..hw], &t[plane * hw..][..hw]);
                let mut acc = [0f32; 16];
                for (i, ((r, t), m)) in r.iter().zip(t).zip(mask).enumerate() {
                    let d = r - t;
                    acc[i % 16] += self.weight(*m) * if self.l1 { d.abs() } else { d * d };
                }
                acc.iter().map(|&a| a as f64).sum::<f64>()
            })
            .sum();
        let mean = (total / (n * c * hw).max(1) as f64) as f32;
        Ok((CpuStorage::F32(vec![mean]), Shape::from(())))
    }

    fn bwd(
        &self,
        rec: &Tensor,
        target: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let g = grad.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?[0];
        let (rec, target, mask) = (rec.contiguous()?, target.contiguous()?, mask.contiguous()?);
        let (rg, rl) = rec.storage_and_layout();
        let (tg, tl) = target.storage_and_layout();
        let (mg, ml) = mask.storage_and_layout();
        let (r, t, m) = (tensor_f32(&rg, rl)?, tensor_f32(&tg, tl)?, tensor_f32(&mg, ml)?);
        let (n, c, hw) = self.dims(rl, tl, ml)?;
        // d/dr mean(w * d^2) = 2 w d / count; d/dr mean(w * |d|) = w sign(d) / count (sign(0) = +1,
        // as candle's abs backward).
        let scale = g / (n * c * hw).max(1) as f32;
        // Written once, plane by plane in parallel (no zeroing pass first).
        let len = n * c * hw;
        let mut out = Vec::with_capacity(len);
        out.spare_capacity_mut()[..len]
            .par_chunks_mut(hw.max(1))
            .enumerate()
            .for_each(|(plane, o)| {
                let mask = &m[(plane / c) * hw..][..hw];
                let (r, t) = (&r[plane * hw..][..hw], &t[plane * hw..][..hw]);
                for (o, ((r, t), m)) in o.iter_mut().zip(r.iter().zip(t).zip(mask)) {
                    let d = r - t;
                    let dl = if self.l1 {
                        if d >= 0.0 {
                            1.0
                        } else {
                            -1.0
                        }
                    } else {
                        2.0 * d
                    };
                    o.write(scale * self.weight(*m) * dl);
                }
            });
        // SAFETY: the planes cover all `len` slots (r, t and the planes have `len` elements, checked by
        // `dims`) and the loop wrote each.
        unsafe { out.set_len(len) };
        let dr = Tensor::from_vec(out, rec.shape(), rec.device())?;
        Ok((Some(dr), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One image, 1 channel... the model has 3 channels but the loss does not care; 2x2 keeps the
    /// hand computation short. Pixel 0 is the hole.
    fn tensors() -> (Tensor, Tensor, Tensor) {
        let d = Device::Cpu;
        let rec = Tensor::new(&[0.5f32, 0.2, 0.9, 0.0], &d)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap();
        let tgt = Tensor::new(&[1.0f32, 0.0, 0.5, 0.0], &d)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap();
        let mask = Tensor::new(&[1.0f32, 0.0, 0.0, 0.0], &d)
            .unwrap()
            .reshape((1, 1, 2, 2))
            .unwrap();
        (rec, tgt, mask)
    }

    fn value(kind: LossKind, hole_weight: f64) -> f64 {
        let (r, t, m) = tensors();
        loss(&LossConfig { kind, hole_weight }, &r, &t, &m)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64
    }

    #[test]
    fn mse_and_l1_match_hand_computation() {
        // squared errors 0.25, 0.04, 0.16, 0; abs errors 0.5, 0.2, 0.4, 0.
        assert!((value(LossKind::Mse, 1.0) - 0.45 / 4.0).abs() < 1e-6);
        assert!((value(LossKind::Mse, 3.0) - (3.0 * 0.25 + 0.2) / 4.0).abs() < 1e-6);
        assert!((value(LossKind::L1, 1.0) - 1.1 / 4.0).abs() < 1e-6);
        assert!((value(LossKind::L1, 4.0) - (4.0 * 0.5 + 0.6) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn bce_matches_hand_computation() {
        let e = 1e-7f64;
        let terms = [
            -(0.5f64.ln()),                           // y=1, p=0.5
            -((1.0 - 0.2f64).ln()),                   // y=0, p=0.2
            -(0.5 * 0.9f64.ln() + 0.5 * 0.1f64.ln()), // y=0.5, p=0.9
            -((1.0 - e).ln()),                        // y=0, p=0 clipped to 1e-7
        ];
        let plain: f64 = terms.iter().sum::<f64>() / 4.0;
        assert!(
            (value(LossKind::Bce, 1.0) - plain).abs() < 1e-5,
            "{}",
            value(LossKind::Bce, 1.0)
        );
        let weighted = (2.0 * terms[0] + terms[1] + terms[2] + terms[3]) / 4.0;
        assert!((value(LossKind::Bce, 2.0) - weighted).abs() < 1e-5);
    }

    /// The one-pass CPU loss equals candle's ops, value and gradient, for MSE and L1, weighted or not.
    #[test]
    fn fused_loss_matches_the_tensor_ops() {
        let d = Device::Cpu;
        let rec = Tensor::rand(0f32, 1.0, (3, 3, 9, 7), &d).unwrap();
        let tgt = Tensor::rand(0f32, 1.0, (3, 3, 9, 7), &d).unwrap();
        let mask = Tensor::rand(0f32, 1.0, (3, 1, 9, 7), &d)
            .unwrap()
            .ge(0.7)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap();
        for kind in [LossKind::Mse, LossKind::L1] {
            for hole_weight in [1.0, 6.0] {
                let cfg = LossConfig { kind, hole_weight };
                let mut got = vec![];
                for fused in [true, false] {
                    let r = candle_core::Var::from_tensor(&rec).unwrap();
                    let l = if fused {
                        loss(&cfg, &r, &tgt, &mask)
                    } else {
                        loss_ops(&cfg, &r, &tgt, &mask)
                    }
                    .unwrap();
                    let g = l
                        .backward()
                        .unwrap()
                        .get(&r)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap();
                    got.push((l.to_scalar::<f32>().unwrap(), g));
                }
                let ((a, ga), (b, gb)) = (&got[0], &got[1]);
                assert!(
                    (a - b).abs() < 1e-6 * b.abs().max(1.0),
                    "{kind:?} {hole_weight}: {a} vs {b}"
                );
                assert!(ga.iter().any(|v| *v != 0.0));
                for (x, y) in ga.iter().zip(gb) {
                    assert!((x - y).abs() < 1e-6, "{kind:?} {hole_weight}: gradient {x} vs {y}");
                }
            }
        }
        let bad = Tensor::zeros((3, 1, 9, 6), candle_core::DType::F32, &d).unwrap();
        assert!(loss(
            &LossConfig {
                kind: LossKind::L1,
                hole_weight: 2.0
            },
            &rec,
            &tgt,
            &bad
        )
        .is_err());
    }

    #[test]
    fn mask_broadcasts_over_channels() {
        let d = Device::Cpu;
        let rec = Tensor::zeros((2, 3, 2, 2), candle_core::DType::F32, &d).unwrap();
        let tgt = Tensor::ones((2, 3, 2, 2), candle_core::DType::F32, &d).unwrap();
        let mut m = vec![0f32; 8];
        m[0] = 1.0; // one hole pixel in image 0 -> 3 channel values weighted 5
        let mask = Tensor::from_vec(m, (2, 1, 2, 2), &d).unwrap();
        let v = loss(
            &LossConfig {
                kind: LossKind::L1,
                hole_weight: 5.0,
            },
            &rec,
            &tgt,
            &mask,
        )
        .unwrap();
        let v = v.to_scalar::<f32>().unwrap();
        assert!((v - (21.0 + 3.0 * 5.0) / 24.0).abs() < 1e-6, "{v}");
    }
}
