//! The CLI's pre- and post-processing: `facerecon_runtime::pipeline::{prepare, finish}` with the same
//! results bit for bit (tested against them), but faster: the resizes go through
//! [`crate::resize`] (no `roundf` calls), and `finish` upsamples only the hole's bounding box instead
//! of the whole region (for a box in a face crop, ~5% of the pixels). These were the largest costs
//! after the network (benches/e2e_infer.sh).

use facerecon_imaging::layout;
use facerecon_runtime::{pipeline, FitMode, Prepared, RuntimeError};
use image::{imageops, GrayImage, RgbImage};

use crate::resize::{resize, resize_window, Kernel};

/// Fit `image` and its `mask` to the network's input: identical to [`pipeline::prepare`].
pub fn prepare(image: &RgbImage, mask: &GrayImage, size: u32, fit: FitMode) -> Result<Prepared, RuntimeError> {
    let hole = pipeline::hole_bbox(mask);
    let (Some(hole), true) = (hole, image.dimensions() == mask.dimensions()) else {
        // No hole (nothing to fit) or a size mismatch (the runtime's error).
        return pipeline::prepare(image, mask, size, fit);
    };
    let (w, h) = image.dimensions();
    let region = pipeline::choose_region(w, h, hole, size, fit);
    let cut;
    let source = if (region.x, region.y, region.width, region.height) == (0, 0, w, h) {
        image
    } else {
        cut = imageops::crop_imm(image, region.x, region.y, region.width, region.height).to_image();
        &cut
    };
    let fitted = if (region.width, region.height) == (size, size) {
        source.clone()
    } else {
        resize(source, size, size, Kernel::Triangle)
    };
    let small_mask = pipeline::downscale_mask_max(mask, region, size);
    let mut chw = layout::to_chw(&fitted);
    let plane = (size * size) as usize;
    for channel in chw.chunks_exact_mut(plane) {
        for (v, m) in channel.iter_mut().zip(&small_mask) {
            if *m > 0.5 {
                *v = 0.0;
            }
        }
    }
    Ok(Prepared {
        region: Some(region),
        image: chw,
        mask: small_mask,
    })
}

/// Put the `[3, size, size]` reconstruction back into `original`, changing only the hole pixels of
/// `mask`: identical to [`pipeline::finish`].
pub fn finish(
    original: &RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
) -> Result<RgbImage, RuntimeError> {
    let (Some(region), Some(hole)) = (prepared.region, pipeline::hole_bbox(mask)) else {
        // No hole: the runtime's version returns the original (after the same checks).
        return pipeline::finish(original, mask, prepared, reconstruction, size);
    };
    if original.dimensions() != mask.dimensions() || reconstruction.len() != 3 * (size * size) as usize {
        return pipeline::finish(original, mask, prepared, reconstruction, size);
    }
    // The hole's bounding box, clipped to the region the network saw (it always lies inside).
    let x0 = hole.x.max(region.x);
    let y0 = hole.y.max(region.y);
    let x1 = (hole.x + hole.width).min(region.x + region.width);
    let y1 = (hole.y + hole.height).min(region.y + region.height);
    let mut out = original.clone();
    if x0 >= x1 || y0 >= y1 {
        return Ok(out);
    }
    let small = layout::from_chw(reconstruction, size, size);
    let patch = resize_window(
        &small,
        region.width,
        region.height,
        Kernel::CatmullRom,
        (x0 - region.x, y0 - region.y, x1 - x0, y1 - y0),
    );
    for (px, py, p) in patch.enumerate_pixels() {
        let (x, y) = (x0 + px, y0 + py);
        if mask.get_pixel(x, y).0[0] >= pipeline::HOLE_THRESHOLD {
            out.put_pixel(x, y, *p);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use facerecon_imaging::masks::box_mask;
    use facerecon_runtime::FitMode;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn same_tensors_and_pixels_as_the_runtime() {
        let mut rng = StdRng::seed_from_u64(3);
        let size = 32;
        for case in 0..40 {
            let (w, h) = (rng.gen_range(20..300), rng.gen_range(20..300));
            let img = RgbImage::from_fn(w, h, |_, _| image::Rgb(rng.gen()));
            let (bw, bh) = (rng.gen_range(1..=w.min(60)), rng.gen_range(1..=h.min(60)));
            let mut mask = box_mask(w, h, rng.gen_range(0..=w - bw), rng.gen_range(0..=h - bh), bw, bh);
            if case % 3 == 0 {
                // A second, distant hole: the bounding box then holds known pixels too.
                mask.put_pixel(rng.gen_range(0..w), rng.gen_range(0..h), image::Luma([255]));
            }
            if case == 7 {
                mask = GrayImage::new(w, h);
            }
            let fit = [FitMode::Auto, FitMode::Whole, FitMode::Crop][case % 3];
            let prepared = pipeline::prepare(&img, &mask, size, fit).unwrap();
            assert_eq!(
                prepare(&img, &mask, size, fit).unwrap(),
                prepared,
                "case {case}: {w}x{h}, {fit:?}"
            );
            let rec: Vec<f32> = (0..3 * size * size).map(|_| rng.gen_range(-0.1..1.1)).collect();
            assert_eq!(
                finish(&img, &mask, &prepared, &rec, size).unwrap(),
                pipeline::finish(&img, &mask, &prepared, &rec, size).unwrap(),
                "case {case}: {w}x{h}, {fit:?}, region {:?}",
                prepared.region
            );
        }
        // Errors are the runtime's.
        let img = RgbImage::new(10, 10);
        let mask = box_mask(10, 10, 2, 2, 3, 3);
        let prepared = pipeline::prepare(&img, &mask, size, FitMode::Whole).unwrap();
        assert!(finish(&img, &mask, &prepared, &[0.0; 5], size).is_err());
        assert!(finish(&img, &box_mask(9, 10, 2, 2, 3, 3), &prepared, &[0.0; 3072], size).is_err());
        assert!(prepare(&img, &box_mask(9, 10, 2, 2, 3, 3), size, FitMode::Auto).is_err());
        // A model-size image is used as is.
        let img32 = RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let m32 = box_mask(32, 32, 1, 1, 4, 4);
        assert_eq!(
            prepare(&img32, &m32, size, FitMode::Whole).unwrap(),
            pipeline::prepare(&img32, &m32, size, FitMode::Whole).unwrap()
        );
    }
}
