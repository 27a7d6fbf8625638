//! Validation: reconstruct the fixed validation set, composite, measure (../shared/DESIGN.md
//! definitions, via `facerecon_imaging::metrics`), and draw a sample grid.

use crate::config::LossConfig;
use crate::data::{Batch, ValidationSet};
use crate::loss;
use anyhow::Result;
use candle_core::{Device, Tensor};
use facerecon_imaging::{grid, layout, metrics};
use facerecon_model::Model;
use image::RgbImage;

/// Faces shown in each sample grid.
pub const SAMPLE_FACES: usize = 8;

/// Mean validation metrics over the set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValMetrics {
    /// The training loss on the validation set.
    pub loss: f64,
    /// PSNR (dB) of the composited image over the whole image.
    pub psnr_full: f64,
    /// PSNR (dB) over the hole pixels only.
    pub psnr_hole: f64,
    /// SSIM of the composited image.
    pub ssim: f64,
    /// Mean |error| over the hole pixels x 100 (pixels in `[0,1]`).
    pub l1_hole: f64,
    /// PSNR of the raw reconstruction (no compositing) over the whole image: the tutorial's number.
    pub psnr_raw: f64,
}

/// The batch as `(image [N,3,S,S], mask [N,1,S,S])` tensors on `device`.
pub fn batch_tensors(b: &Batch, device: &Device) -> Result<(Tensor, Tensor)> {
    let image = Tensor::from_slice(&b.images, (b.len, 3, b.size, b.size), device)?;
    let mask = Tensor::from_slice(&b.masks, (b.len, 1, b.size, b.size), device)?;
    Ok((image, mask))
}

/// The network input: the image with its holes zeroed.
pub fn zero_holes(image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    Ok(image.broadcast_mul(&mask.affine(-1.0, 1.0)?)?)
}

/// PSNR of `a` against `b` (values in `[0,1]`); identical images give 100 dB rather than infinity.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    let mse = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64;
    10.0 * (1.0 / mse.max(1e-10)).log10()
}

/// Evaluate `model` on the whole validation set in batches of `batch_size`. Returns `None` for an
/// empty set, plus the grid rows (corrupted | output | original) of the first faces.
pub fn validate(
    model: &Model,
    val: &ValidationSet,
    batch_size: usize,
    loss_cfg: &LossConfig,
    device: &Device,
) -> Result<(Option<ValMetrics>, Vec<Vec<RgbImage>>)> {
    let (s, px) = (val.size, val.size * val.size);
    let mut per_image = Vec::with_capacity(val.len);
    let (mut raw, mut loss_sum) = (0.0, 0.0);
    let mut rows = Vec::new();
    for start in (0..val.len).step_by(batch_size.max(1)) {
        let b = val.slice(start, (start + batch_size).min(val.len));
        let (image, mask) = batch_tensors(&b, device)?;
        let input = Tensor::from_slice(&b.inputs, image.shape(), device)?;
        let (rec, inpainted) = model.forward(&input, &mask)?;
        loss_sum += loss::loss(loss_cfg, &rec, &image, &mask)?.to_scalar::<f32>()? as f64 * b.len as f64;
        let rec = rec.flatten_all()?.to_vec1::<f32>()?;
        let inpainted = inpainted.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..b.len {
            let (img, m) = (&b.images[i * 3 * px..(i + 1) * 3 * px], &b.masks[i * px..(i + 1) * px]);
            let out = &inpainted[i * 3 * px..(i + 1) * 3 * px];
            per_image.push(metrics::evaluate_chw(out, img, m, s, s));
            raw += psnr(&rec[i * 3 * px..(i + 1) * 3 * px], img);
            if rows.len() < SAMPLE_FACES {
                let corrupted: Vec<f32> = img.iter().enumerate().map(|(j, v)| v * (1.0 - m[j % px])).collect();
                rows.push(vec![
                    layout::from_chw(&corrupted, s as u32, s as u32),
                    layout::from_chw(out, s as u32, s as u32),
                    layout::from_chw(img, s as u32, s as u32),
                ]);
            }
        }
    }
    if per_image.is_empty() {
        return Ok((None, rows));
    }
    let n = per_image.len() as f64;
    let m = metrics::mean(&per_image);
    let v = ValMetrics {
        loss: loss_sum / n,
        psnr_full: m.psnr_full,
        psnr_hole: m.psnr_hole,
        ssim: m.ssim,
        l1_hole: m.l1_hole,
        psnr_raw: raw / n,
    };
    Ok((Some(v), rows))
}

/// The sample grid image of `rows`.
pub fn sample_grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    grid::grid(rows)
}

#[cfg(test)]
mod tests {
    #[test]
    fn psnr_reference_values() {
        // mse 0.01 -> 20 dB; identical -> capped at 100 dB.
        assert!((super::psnr(&[0.1, 0.3], &[0.0, 0.4]) - 20.0).abs() < 1e-5);
        assert_eq!(super::psnr(&[0.5], &[0.5]), 100.0);
    }
}
