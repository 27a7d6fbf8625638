//! Training-time augmentation (`train.augment`): a random zoom (in or out), shift and rotation about
//! the image centre, then small brightness, contrast and saturation changes, so that the model sees faces
//! framed looser or tighter than the data set's crops.
//!
//! It runs on the fitted `size x size` image (after the decoded cache, [`super::cache`], which stores
//! images already resized): a zoom-out loses nothing, a zoom-in by at most `scale_max` upsamples the
//! cached pixels by that factor (at 1.15, a 111-pixel region stretched over 128 pixels: slightly softer
//! than a resize from the source would be, which the mild range keeps negligible). Caching at the source
//! size instead would cost ~2.4x the cache's memory for UTKFace's 200x200 files and a resize per draw.
//! Pixels that map outside the image are filled by reflection about the border (no black corners for
//! the model to learn). The draws come from the `rng` given, in a fixed order, so an image's
//! augmentation is a function of the run's seed, the epoch and the file.

use crate::config::AugmentConfig;
use image::{Rgb, RgbImage};
use rand::Rng;

/// A uniform draw in `[-a, a]` (0 when `a` is 0; always one draw, so the sequence does not depend on
/// which ranges are 0).
fn sym(rng: &mut impl Rng, a: f64) -> f64 {
    (rng.gen::<f64>() * 2.0 - 1.0) * a
}

/// Reflect an integer coordinate into `0..n` (`-1 -> 1`, `n -> n - 2`; edge-repeat for `n == 1`).
fn reflect(mut i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n - 1);
    i = i.rem_euclid(period);
    if i >= n {
        i = period - i;
    }
    i as usize
}

/// `img` zoomed, shifted, rotated and colour-jittered as drawn from `rng` (see the module documentation).
pub fn augment(img: &RgbImage, cfg: &AugmentConfig, rng: &mut impl Rng) -> RgbImage {
    let scale = cfg.scale_min + rng.gen::<f64>() * (cfg.scale_max - cfg.scale_min);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let tx = sym(rng, cfg.translate) * w as f64;
    let ty = sym(rng, cfg.translate) * h as f64;
    let angle = sym(rng, cfg.rotate_deg).to_radians();
    let brightness = sym(rng, cfg.brightness) as f32;
    let contrast = 1.0 + sym(rng, cfg.contrast) as f32;
    let saturation = 1.0 + sym(rng, cfg.saturation) as f32;

    // Inverse map: output pixel -> source position (rotate by -angle, divide by the zoom).
    let (cx, cy) = ((w - 1) as f64 / 2.0, (h - 1) as f64 / 2.0);
    let (cos, sin) = (angle.cos() / scale, angle.sin() / scale);
    let mut px = vec![0f32; (w * h * 3) as usize];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
            let sx = cx + cos * dx + sin * dy;
            let sy = cy - sin * dx + cos * dy;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let at = |xx: i64, yy: i64| img.get_pixel(reflect(xx, w) as u32, reflect(yy, h) as u32).0;
            let (a, b, c, d) = (at(x0, y0), at(x0 + 1, y0), at(x0, y0 + 1), at(x0 + 1, y0 + 1));
            let o = ((y * w + x) * 3) as usize;
            for ch in 0..3 {
                let top = a[ch] as f32 * (1.0 - fx) + b[ch] as f32 * fx;
                let bottom = c[ch] as f32 * (1.0 - fx) + d[ch] as f32 * fx;
                px[o + ch] = (top * (1.0 - fy) + bottom * fy) / 255.0;
            }
        }
    }
    // Colour: saturation about each pixel's grey, contrast about the image's mean grey, then brightness.
    let grey = |p: &[f32]| 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
    let mean = px.chunks_exact(3).map(grey).sum::<f32>() / (w * h).max(1) as f32;
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let o = ((y as i64 * w + x as i64) * 3) as usize;
        let p = &px[o..o + 3];
        let g = grey(p);
        let mut out = [0u8; 3];
        for ch in 0..3 {
            let v = g + (p[ch] - g) * saturation;
            let v = mean + (v - mean) * contrast + brightness;
            out[ch] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
        Rgb(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn face() -> RgbImage {
        RgbImage::from_fn(32, 32, |x, y| Rgb([(x * 8) as u8, (y * 8) as u8, ((x + y) * 4) as u8]))
    }

    fn none() -> AugmentConfig {
        AugmentConfig {
            scale_min: 1.0,
            scale_max: 1.0,
            translate: 0.0,
            rotate_deg: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
        }
    }

    #[test]
    fn reflection_stays_inside() {
        assert_eq!(
            (-3..9).map(|i| reflect(i, 5)).collect::<Vec<_>>(),
            [3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0]
        );
        assert_eq!(reflect(-4, 1), 0);
    }

    /// Zero ranges give back the image exactly; the same seed gives the same image, another seed another.
    #[test]
    fn identity_when_the_ranges_are_zero_and_deterministic_otherwise() {
        let img = face();
        let out = augment(&img, &none(), &mut StdRng::seed_from_u64(3));
        assert_eq!(out, img);
        let cfg = AugmentConfig::default();
        let a = augment(&img, &cfg, &mut StdRng::seed_from_u64(3));
        let b = augment(&img, &cfg, &mut StdRng::seed_from_u64(3));
        let c = augment(&img, &cfg, &mut StdRng::seed_from_u64(4));
        assert_eq!(a.dimensions(), (32, 32));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, img);
    }

    /// A zoom-out by 0.5 puts the image's centre pixel at the centre and the old corners halfway
    /// between the centre and the new corners; a brightness shift moves every pixel by it.
    #[test]
    fn zoom_and_brightness_do_what_they_say() {
        let img = RgbImage::from_fn(33, 33, |x, y| Rgb([(x * 7) as u8, (y * 7) as u8, 100]));
        let cfg = AugmentConfig {
            scale_min: 0.5,
            scale_max: 0.5,
            ..none()
        };
        let out = augment(&img, &cfg, &mut StdRng::seed_from_u64(0));
        assert_eq!(out.get_pixel(16, 16), img.get_pixel(16, 16));
        assert_eq!(out.get_pixel(8, 8), img.get_pixel(0, 0));
        assert_eq!(out.get_pixel(24, 24), img.get_pixel(32, 32));
        // Outside the shrunken image: reflected content, not black.
        assert_eq!(out.get_pixel(4, 16).0[0], img.get_pixel(8, 16).0[0]);
        let bright = AugmentConfig {
            brightness: 0.1,
            ..none()
        };
        let mut rng = StdRng::seed_from_u64(9);
        let out = augment(&img, &bright, &mut rng);
        let mut rng = StdRng::seed_from_u64(9);
        let _scale: f64 = rng.gen();
        let (_, _, _) = (sym(&mut rng, 0.0), sym(&mut rng, 0.0), sym(&mut rng, 0.0));
        let shift = (sym(&mut rng, 0.1) * 255.0) as f32;
        let (a, b) = (img.get_pixel(10, 3).0[2] as f32, out.get_pixel(10, 3).0[2] as f32);
        assert!((b - a - shift).abs() <= 1.0, "{a} + {shift} vs {b}");
    }
}
