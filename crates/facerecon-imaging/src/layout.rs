//! Fitting images to the model size and converting between `RgbImage` and CHW `f32`.

use facerecon_contract::mask;
use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

/// Center-crops `img` to a square (side = the shorter side), then resizes it to
/// `size x size` with a Catmull-Rom filter. Returns a copy when no work is needed.
///
/// ```
/// use facerecon_imaging::layout::fit_square;
/// use image::{Rgb, RgbImage};
/// // 300x200: 50 red columns on each side of a blue centre.
/// let (red, blue) = (Rgb([255, 0, 0]), Rgb([0, 0, 255]));
/// let img = RgbImage::from_fn(300, 200, |x, _| if (50..250).contains(&x) { blue } else { red });
/// let fitted = fit_square(&img, 200);
/// assert_eq!(fitted.dimensions(), (200, 200));
/// assert!(fitted.pixels().all(|p| p.0 == [0, 0, 255])); // the centre square, the sides cut off
/// assert_eq!(fit_square(&img, 64).dimensions(), (64, 64));
/// ```
pub fn fit_square(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let (x, y) = ((w - side) / 2, (h - side) / 2);
    let cropped = imageops::crop_imm(img, x, y, side, side).to_image();
    if side == size {
        cropped
    } else {
        imageops::resize(&cropped, size, size, FilterType::CatmullRom)
    }
}

/// `[3,H,W]` planar `f32` in `[0,1]` (value / 255).
///
/// ```
/// use facerecon_imaging::layout::{from_chw, to_chw};
/// use image::{Rgb, RgbImage};
/// let img = RgbImage::from_fn(2, 1, |x, _| Rgb([255, 0, 51 * x as u8]));
/// let chw = to_chw(&img);
/// assert_eq!(chw, [1.0, 1.0, 0.0, 0.0, 0.0, 0.2]); // all of R, then G, then B
/// assert_eq!(from_chw(&chw, 2, 1), img); // exact round trip
/// ```
pub fn to_chw(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// Inverse of [`to_chw`]: values are clamped to `[0,1]`, scaled by 255 and rounded.
/// NaN becomes 0. Panics if `data.len() != 3*width*height`.
pub fn from_chw(data: &[f32], width: u32, height: u32) -> RgbImage {
    let plane = (width * height) as usize;
    assert_eq!(data.len(), 3 * plane, "from_chw: expected [3,{height},{width}]");
    let mut img = RgbImage::new(width, height);
    for (i, p) in img.pixels_mut().enumerate() {
        for c in 0..3 {
            p[c] = unit_to_u8(data[c * plane + i]);
        }
    }
    img
}

/// `[0,1]` float to 8-bit, clamped and rounded (NaN -> 0).
pub fn unit_to_u8(v: f32) -> u8 {
    if v.is_nan() {
        0
    } else {
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// `[1,H,W]` `f32` mask: 1.0 where the mask is a hole (value >= 128), else 0.0.
///
/// ```
/// use facerecon_imaging::layout::mask_to_vec;
/// let mask = image::GrayImage::from_raw(4, 1, vec![0, 127, 128, 255]).unwrap();
/// assert_eq!(mask_to_vec(&mask), [0.0, 0.0, 1.0, 1.0]);
/// ```
pub fn mask_to_vec(mask: &GrayImage) -> Vec<f32> {
    mask.pixels().map(|p| mask::to_f32(p[0])).collect()
}

/// Inverse of [`mask_to_vec`]: 255 where the value is >= 0.5 ([`mask::is_hole_f32`]). Panics on a length mismatch.
pub fn mask_from_vec(data: &[f32], width: u32, height: u32) -> GrayImage {
    assert_eq!(
        data.len(),
        (width * height) as usize,
        "mask_from_vec: expected [1,{height},{width}]"
    );
    GrayImage::from_fn(width, height, |x, y| {
        image::Luma([mask::from_f32(data[(y * width + x) as usize])])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    #[test]
    fn fit_square_crops_the_center_then_resizes() {
        // 200x100: red | green (center 100 columns) | blue.
        let img = RgbImage::from_fn(200, 100, |x, _| match x {
            0..=49 => Rgb([255, 0, 0]),
            50..=149 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        });
        let out = fit_square(&img, 32);
        assert_eq!(out.dimensions(), (32, 32));
        assert!(
            out.pixels().all(|p| *p == Rgb([0, 255, 0])),
            "only the green center survives"
        );
        // Portrait input and no-resize case.
        let tall = RgbImage::from_fn(10, 30, |_, y| Rgb([y as u8, 0, 0]));
        let out = fit_square(&tall, 10);
        assert_eq!(out.dimensions(), (10, 10));
        assert_eq!(out.get_pixel(0, 0)[0], 10);
        assert_eq!(out.get_pixel(0, 9)[0], 19);
    }

    #[test]
    fn chw_layout_and_round_trip() {
        let img = RgbImage::from_fn(3, 2, |x, y| Rgb([(x * 10 + y) as u8, 100 + x as u8, 255]));
        let chw = to_chw(&img);
        assert_eq!(chw.len(), 18);
        // Plane R, then G, then B; row-major inside a plane.
        assert_eq!(chw[4], (10 + 1) as f32 / 255.0); // R at (x=1,y=1)
        assert_eq!(chw[6 + 2], 102.0 / 255.0); // G at (x=2,y=0)
        assert_eq!(chw[12], 1.0);
        assert_eq!(from_chw(&chw, 3, 2), img);
        // Clamping, rounding, NaN.
        let out = from_chw(&[-0.5, 1.5, f32::NAN, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2], 3, 1);
        assert_eq!(out.get_pixel(0, 0)[0], 0);
        assert_eq!(out.get_pixel(1, 0)[0], 255);
        assert_eq!(out.get_pixel(2, 0)[0], 0);
        assert_eq!(out.get_pixel(0, 0)[1], 128);
        assert_eq!(out.get_pixel(0, 0)[2], 51);
    }

    #[test]
    fn mask_vec_thresholds_at_the_hole_threshold() {
        let m = GrayImage::from_raw(4, 1, vec![0, 127, 128, 255]).unwrap();
        assert_eq!(mask_to_vec(&m), vec![0.0, 0.0, 1.0, 1.0]);
        let back = mask_from_vec(&mask_to_vec(&m), 4, 1);
        assert_eq!(back.get_pixel(1, 0), &Luma([0]));
        assert_eq!(back.get_pixel(2, 0), &Luma([255]));
    }
}
