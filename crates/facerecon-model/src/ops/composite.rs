//! The composite `mask * rec + (1 - mask) * image` (mask `[B, 1, H, W]` broadcast over the channels) as
//! one CPU pass. candle's version is four element-wise ops, and candle runs those on its own spinning
//! thread pool, which then competes with rayon's workers for the next batch's first layers (a batch-1
//! forward pass paid for it twice).
use super::cpu_f32;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub(crate) struct Composite;

/// `(batch, channels, pixels)` of `rec`/`image` `[B, C, H, W]` and `mask` `[B, 1, H, W]`.
fn dims(rec: &[usize], image: &[usize], mask: &[usize]) -> Result<(usize, usize, usize)> {
    let (&[b, c, h, w], &[mb, 1, mh, mw]) = (rec, mask) else {
        bail!("facerecon-composite: expected [B, C, H, W] and a [B, 1, H, W] mask, got {rec:?} and {mask:?}")
    };
    if rec != image || (mb, mh, mw) != (b, h, w) {
        bail!("facerecon-composite: shapes differ: reconstruction {rec:?}, image {image:?}, mask {mask:?}")
    }
    Ok((b, c, h * w))
}

impl CustomOp3 for Composite {
    fn name(&self) -> &'static str {
        "facerecon-composite"
    }

    fn cpu_fwd(
        &self,
        rs: &CpuStorage,
        rl: &Layout,
        is: &CpuStorage,
        il: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (_, c, hw) = dims(rl.dims(), il.dims(), ml.dims())?;
        let (r, i, m) = (cpu_f32(rs, rl)?, cpu_f32(is, il)?, cpu_f32(ms, ml)?);
        let mut out = Vec::with_capacity(r.len());
        out.spare_capacity_mut()[..r.len()]
            .par_chunks_mut(hw.max(1))
            .enumerate()
            .for_each(|(plane, o)| {
                let mask = &m[(plane / c) * hw..][..hw];
                let (r, i) = (&r[plane * hw..][..hw], &i[plane * hw..][..hw]);
                for (o, ((r, i), m)) in o.iter_mut().zip(r.iter().zip(i).zip(mask)) {
                    o.write(m * r + (1.0 - m) * i);
                }
            });
        // SAFETY: the planes cover all `r.len()` slots and each was written.
        unsafe { out.set_len(r.len()) };
        Ok((CpuStorage::F32(out), rl.shape().clone()))
    }

    /// d/drec = mask ⊙ g, d/dimage = (1 - mask) ⊙ g, d/dmask = Σ_channels (rec - image) ⊙ g (candle ops:
    /// training never differentiates through the composite; this keeps the op honest if someone does).
    fn bwd(
        &self,
        rec: &Tensor,
        image: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let keep = mask.affine(-1.0, 1.0)?;
        let drec = rec.track_op().then(|| grad.broadcast_mul(mask)).transpose()?;
        let dimage = image.track_op().then(|| grad.broadcast_mul(&keep)).transpose()?;
        let dmask = mask
            .track_op()
            .then(|| ((rec - image)? * grad)?.sum_keepdim(1))
            .transpose()?;
        Ok((drec, dimage, dmask))
    }
}

/// The composite as one op (CPU, f32; `layers::Backend::composite` decides when it runs).
pub(crate) fn composite(rec: &Tensor, image: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let (rec, image, mask) = (rec.contiguous()?, image.contiguous()?, mask.contiguous()?);
    rec.apply_op3(&image, &mask, Composite)
}
