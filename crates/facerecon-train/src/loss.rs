//! Reconstruction losses: the raw network output against the original image, per pixel, weighted
//! `hole_weight` inside the hole and 1 outside, averaged over every element (so `hole_weight: 1`
//! is exactly Keras' `mse` / `binary_crossentropy` / `mae`).

use crate::config::{LossConfig, LossKind};
use candle_core::{Result, Tensor};

/// Keras' clipping of probabilities in binary cross-entropy (`epsilon()` = 1e-7).
const BCE_EPS: f64 = 1e-7;

/// The loss of `reconstruction` (`[N,C,H,W]` in [0,1]) against `target` (same shape), with the
/// per-pixel weight from `mask` (`[N,1,H,W]`, 1 = hole). Returns a scalar.
pub fn loss(cfg: &LossConfig, reconstruction: &Tensor, target: &Tensor, mask: &Tensor) -> Result<Tensor> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// One image, 1 channel... the model has 3 channels but the loss does not care; 2x2 keeps the
    /// hand computation short. Pixel 0 is the hole.
    fn tensors() -> (Tensor, Tensor, Tensor) {
        let d = Device::Cpu;
        let rec = Tensor::new(&[0.5f32, 0.2, 0.9, 0.0], &d).unwrap().reshape((1, 1, 2, 2)).unwrap();
        let tgt = Tensor::new(&[1.0f32, 0.0, 0.5, 0.0], &d).unwrap().reshape((1, 1, 2, 2)).unwrap();
        let mask = Tensor::new(&[1.0f32, 0.0, 0.0, 0.0], &d).unwrap().reshape((1, 1, 2, 2)).unwrap();
        (rec, tgt, mask)
    }

    fn value(kind: LossKind, hole_weight: f64) -> f64 {
        let (r, t, m) = tensors();
        loss(&LossConfig { kind, hole_weight }, &r, &t, &m).unwrap().to_scalar::<f32>().unwrap() as f64
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
            -(0.5f64.ln()),                      // y=1, p=0.5
            -((1.0 - 0.2f64).ln()),              // y=0, p=0.2
            -(0.5 * 0.9f64.ln() + 0.5 * 0.1f64.ln()), // y=0.5, p=0.9
            -((1.0 - e).ln()),                   // y=0, p=0 clipped to 1e-7
        ];
        let plain: f64 = terms.iter().sum::<f64>() / 4.0;
        assert!((value(LossKind::Bce, 1.0) - plain).abs() < 1e-5, "{}", value(LossKind::Bce, 1.0));
        let weighted = (2.0 * terms[0] + terms[1] + terms[2] + terms[3]) / 4.0;
        assert!((value(LossKind::Bce, 2.0) - weighted).abs() < 1e-5);
    }

    #[test]
    fn mask_broadcasts_over_channels() {
        let d = Device::Cpu;
        let rec = Tensor::zeros((2, 3, 2, 2), candle_core::DType::F32, &d).unwrap();
        let tgt = Tensor::ones((2, 3, 2, 2), candle_core::DType::F32, &d).unwrap();
        let mut m = vec![0f32; 8];
        m[0] = 1.0; // one hole pixel in image 0 -> 3 channel values weighted 5
        let mask = Tensor::from_vec(m, (2, 1, 2, 2), &d).unwrap();
        let v = loss(&LossConfig { kind: LossKind::L1, hole_weight: 5.0 }, &rec, &tgt, &mask).unwrap();
        let v = v.to_scalar::<f32>().unwrap();
        assert!((v - (21.0 + 3.0 * 5.0) / 24.0).abs() < 1e-6, "{v}");
    }
}
