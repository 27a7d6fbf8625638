//! A windowed twin of `image::imageops::resize` for RGB8: it computes only a rectangle of the resized
//! image, bit-identical to the same pixels of the full resize.
//!
//! Compositing needs the upsampled reconstruction at the hole pixels only (a 44x44 hole of a 200x200
//! face is 5% of the image), and the generic resize also spends much of its time in `roundf` calls.
//! This follows `image` 0.25's separable algorithm operation by operation (vertical pass into f32,
//! then horizontal pass, same tap ranges, same weights and normalisation, same summation order, then
//! clamp and round-half-away-from-zero), so the results are the same bits; the tests compare them
//! against `imageops::resize`.

use image::{imageops, RgbImage};

/// The two filters the pipeline uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `FilterType::Triangle` (support 1).
    Triangle,
    /// `FilterType::CatmullRom` (support 2).
    CatmullRom,
}

impl Kernel {
    fn support(self) -> f32 {
        match self {
            Kernel::Triangle => 1.0,
            Kernel::CatmullRom => 2.0,
        }
    }

    fn eval(self, x: f32) -> f32 {
        match self {
            Kernel::Triangle => {
                if x.abs() < 1.0 {
                    1.0 - x.abs()
                } else {
                    0.0
                }
            }
            Kernel::CatmullRom => {
                // image's bc_cubic_spline with b = 0, c = 0.5, written with the same operations.
                let (b, c) = (0.0f32, 0.5f32);
                let a = x.abs();
                let k = if a < 1.0 {
                    (12.0 - 9.0 * b - 6.0 * c) * a.powi(3) + (-18.0 + 12.0 * b + 6.0 * c) * a.powi(2) + (6.0 - 2.0 * b)
                } else if a < 2.0 {
                    (-b - 6.0 * c) * a.powi(3)
                        + (6.0 * b + 30.0 * c) * a.powi(2)
                        + (-12.0 * b - 48.0 * c) * a
                        + (8.0 * b + 24.0 * c)
                } else {
                    0.0
                };
                k / 6.0
            }
        }
    }
}

/// Source taps of one output index: `weights[k]` applies to source index `left + k`.
struct Taps {
    left: u32,
    weights: Vec<f32>,
}

/// The taps of output index `out` when resizing an axis of `src` pixels to `dst`.
fn taps(src: u32, dst: u32, kernel: Kernel, out: u32) -> Taps {
    let ratio = src as f32 / dst as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let src_support = kernel.support() * sratio;
    let input = (out as f32 + 0.5) * ratio;
    let left = ((input - src_support).floor() as i64).clamp(0, src as i64 - 1) as u32;
    let right = ((input + src_support).ceil() as i64).clamp(left as i64 + 1, src as i64) as u32;
    let input = input - 0.5;
    let mut weights: Vec<f32> = (left..right)
        .map(|i| kernel.eval((i as f32 - input) / sratio))
        .collect();
    let mut sum = 0.0;
    for w in &weights {
        sum += w;
    }
    for w in weights.iter_mut() {
        *w /= sum;
    }
    Taps { left, weights }
}

/// Round half away from zero for `t` in `[0, 255]`, exactly as `f32::round`, without a libm call.
fn round_u8(t: f32) -> u8 {
    let t = t.clamp(0.0, 255.0);
    let i = t as u32; // truncation; exact for these values
    (if t - i as f32 >= 0.5 { i + 1 } else { i }) as u8
}

/// The `(x, y, w, h)` window of `imageops::resize(img, new_w, new_h, kernel)`, computed alone.
/// Panics if the window is not inside `new_w x new_h` or the image is empty.
pub fn resize_window(img: &RgbImage, new_w: u32, new_h: u32, kernel: Kernel, window: (u32, u32, u32, u32)) -> RgbImage {
    let (x0, y0, w, h) = window;
    assert!(
        x0 + w <= new_w && y0 + h <= new_h,
        "resize_window: window outside the image"
    );
    let (sw, sh) = img.dimensions();
    assert!(sw > 0 && sh > 0, "resize_window: empty image");
    if (new_w, new_h) == (sw, sh) {
        // imageops::resize copies in this case.
        return imageops::crop_imm(img, x0, y0, w, h).to_image();
    }
    let xtaps: Vec<Taps> = (x0..x0 + w).map(|x| taps(sw, new_w, kernel, x)).collect();
    let ytaps: Vec<Taps> = (y0..y0 + h).map(|y| taps(sh, new_h, kernel, y)).collect();
    // Source columns the horizontal pass reads.
    let cx0 = xtaps.iter().map(|t| t.left).min().unwrap_or(0);
    let cx1 = xtaps.iter().map(|t| t.left + t.weights.len() as u32).max().unwrap_or(0);
    let cols = (cx1 - cx0) as usize;

    // Vertical pass: rows y0..y0+h of the (new_h x sw) intermediate, columns cx0..cx1, in f32.
    let src = img.as_raw();
    let stride = sw as usize * 3;
    let mut tmp = vec![0f32; h as usize * cols * 3];
    for (row, t) in ytaps.iter().enumerate() {
        let out = &mut tmp[row * cols * 3..(row + 1) * cols * 3];
        for c in 0..cols {
            let x = cx0 as usize + c;
            let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
            for (k, &wt) in t.weights.iter().enumerate() {
                let p = (t.left as usize + k) * stride + x * 3;
                r += src[p] as f32 * wt;
                g += src[p + 1] as f32 * wt;
                b += src[p + 2] as f32 * wt;
            }
            out[c * 3] = r;
            out[c * 3 + 1] = g;
            out[c * 3 + 2] = b;
        }
    }

    // Horizontal pass.
    let mut result = RgbImage::new(w, h);
    let dst = &mut *result;
    for (ox, t) in xtaps.iter().enumerate() {
        let first = (t.left - cx0) as usize;
        for row in 0..h as usize {
            let line = &tmp[row * cols * 3..(row + 1) * cols * 3];
            let (mut r, mut g, mut b) = (0.0f32, 0.0f32, 0.0f32);
            for (k, &wt) in t.weights.iter().enumerate() {
                let p = (first + k) * 3;
                r += line[p] * wt;
                g += line[p + 1] * wt;
                b += line[p + 2] * wt;
            }
            let o = (row * w as usize + ox) * 3;
            dst[o] = round_u8(r);
            dst[o + 1] = round_u8(g);
            dst[o + 2] = round_u8(b);
        }
    }
    result
}

/// The whole of `imageops::resize(img, new_w, new_h, kernel)`.
pub fn resize(img: &RgbImage, new_w: u32, new_h: u32, kernel: Kernel) -> RgbImage {
    resize_window(img, new_w, new_h, kernel, (0, 0, new_w, new_h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::FilterType;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    fn random_image(rng: &mut StdRng, w: u32, h: u32) -> RgbImage {
        // Smooth ramps plus noise plus hard edges: exercises clamping (CatmullRom overshoots).
        let (a, b) = (rng.gen_range(0.0..4.0f32), rng.gen_range(0.0..4.0f32));
        let noise: Vec<u8> = (0..w * h * 3).map(|_| rng.gen()).collect();
        RgbImage::from_fn(w, h, |x, y| {
            let i = ((y * w + x) * 3) as usize;
            let edge = if (x / 5 + y / 7) % 2 == 0 { 255 } else { 0 };
            image::Rgb([
                ((x as f32 * a) as u32 % 256) as u8,
                noise[i + 1],
                if x % 3 == 0 {
                    edge
                } else {
                    ((y as f32 * b) as u32 % 256) as u8
                },
            ])
        })
    }

    #[test]
    fn rounding_matches_f32_round() {
        for i in 0..=2_560_000u32 {
            let t = i as f32 / 10_000.0 - 1.0;
            assert_eq!(round_u8(t), t.clamp(0.0, 255.0).round() as u8, "{t}");
        }
        for t in [0.49999997f32, 0.5, 1.5, 2.5, 254.5, 254.49998, 255.7, -3.0] {
            assert_eq!(round_u8(t), t.clamp(0.0, 255.0).round() as u8, "{t}");
        }
    }

    #[test]
    fn windows_are_bit_identical_to_imageops_resize() {
        let mut rng = StdRng::seed_from_u64(1);
        let cases = [
            (200, 200, 128, 128),
            (128, 128, 200, 200),
            (128, 128, 317, 211),
            (50, 31, 32, 32),
            (7, 9, 40, 3),
            (300, 120, 128, 128),
        ];
        for (sw, sh, nw, nh) in cases {
            let img = random_image(&mut rng, sw, sh);
            for (kernel, filter) in [
                (Kernel::Triangle, FilterType::Triangle),
                (Kernel::CatmullRom, FilterType::CatmullRom),
            ] {
                let full = imageops::resize(&img, nw, nh, filter);
                assert_eq!(resize(&img, nw, nh, kernel), full, "{sw}x{sh} -> {nw}x{nh} {kernel:?}");
                for _ in 0..5 {
                    let (x, y) = (rng.gen_range(0..nw), rng.gen_range(0..nh));
                    let (w, h) = (rng.gen_range(1..=nw - x), rng.gen_range(1..=nh - y));
                    let expected = imageops::crop_imm(&full, x, y, w, h).to_image();
                    assert_eq!(
                        resize_window(&img, nw, nh, kernel, (x, y, w, h)),
                        expected,
                        "window {x},{y},{w},{h}"
                    );
                }
            }
        }
    }
}
