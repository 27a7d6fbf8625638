//! Zeroing holes and compositing a reconstruction back into the original image.

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

/// Returns `img` with every hole pixel (mask >= 128) set to black (0,0,0),
/// which is what the network sees as input. Panics if the sizes differ.
pub fn zero_holes(img: &RgbImage, mask: &GrayImage) -> RgbImage {
    assert_eq!(img.dimensions(), mask.dimensions(), "zero_holes: image and mask sizes differ");
    let mut out = img.clone();
    for (p, m) in out.pixels_mut().zip(mask.pixels()) {
        if m[0] >= 128 {
            *p = image::Rgb([0, 0, 0]);
        }
    }
    out
}

/// Upsamples `recon` (model size) to the original's size (Catmull-Rom) and replaces only the
/// hole pixels (mask >= 128) of `original`; every other pixel is copied bit-for-bit.
///
/// `mask` must have the original's size. Panics otherwise.
pub fn composite(original: &RgbImage, recon: &RgbImage, mask: &GrayImage) -> RgbImage {
    assert_eq!(original.dimensions(), mask.dimensions(), "composite: original and mask sizes differ");
    let (w, h) = original.dimensions();
    let resized;
    let recon = if recon.dimensions() == (w, h) {
        recon
    } else {
        resized = imageops::resize(recon, w, h, FilterType::CatmullRom);
        &resized
    };
    let mut out = original.clone();
    for ((o, r), m) in out.pixels_mut().zip(recon.pixels()).zip(mask.pixels()) {
        if m[0] >= 128 {
            *o = *r;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masks::box_mask;
    use image::Rgb;

    #[test]
    fn zero_holes_blacks_out_only_holes() {
        let img = crate::synth::synth_face(5, 32);
        let mask = box_mask(32, 32, 4, 6, 10, 5);
        let z = zero_holes(&img, &mask);
        for (x, y, p) in z.enumerate_pixels() {
            if mask.get_pixel(x, y)[0] >= 128 {
                assert_eq!(*p, Rgb([0, 0, 0]));
            } else {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
    }

    #[test]
    fn composite_replaces_exactly_the_holes_at_full_resolution() {
        let original = crate::synth::synth_face(9, 96);
        let recon = RgbImage::from_pixel(32, 32, Rgb([10, 200, 30]));
        let mut mask = box_mask(96, 96, 20, 30, 25, 17);
        mask.put_pixel(0, 0, image::Luma([128])); // >= 128 counts
        mask.put_pixel(1, 0, image::Luma([127])); // < 128 does not
        let out = composite(&original, &recon, &mask);
        assert_eq!(out.dimensions(), (96, 96));
        let mut replaced = 0;
        for (x, y, p) in out.enumerate_pixels() {
            if mask.get_pixel(x, y)[0] >= 128 {
                assert_eq!(*p, Rgb([10, 200, 30]));
                replaced += 1;
            } else {
                assert_eq!(p, original.get_pixel(x, y), "known pixel ({x},{y}) changed");
            }
        }
        assert_eq!(replaced, 25 * 17 + 1);

        // A same-size reconstruction is used as is.
        let recon = crate::synth::synth_face(10, 96);
        let out = composite(&original, &recon, &mask);
        assert_eq!(out.get_pixel(30, 40), recon.get_pixel(30, 40));
        assert_eq!(out.get_pixel(90, 90), original.get_pixel(90, 90));
    }
}
