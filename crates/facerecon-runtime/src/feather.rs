//! A narrow, colour-matched seam inside the hole (opt-in: [`crate::RuntimeOptions::feather`]).
//!
//! A hard composite puts the upsampled reconstruction next to the original's known pixels; wherever
//! the network's colours are off (it reproduces even the known pixels only approximately, and the
//! upsampling smears them), that error shows as an edge along the hole's outline. The original's own
//! hole pixels are garbage, so they cannot be blended in. Instead, the error is measured where it can
//! be, on the known pixels next to the hole (`original - reconstruction`), and added back to the hole
//! pixels near the outline, fading out with the distance into the hole:
//!
//! `out = reconstruction + w(d) * mean(error of the known pixels within F)`, `w(d) = 1 - (d-1)/F`
//!
//! where `d` is the chessboard distance (1 = touching a known pixel) and `F` the feather width. At the
//! outline the result continues the original's colours; `F` pixels in, it is the plain
//! reconstruction. Only hole pixels are written, so known pixels stay bit-identical.

use image::{GrayImage, Rgb32FImage, RgbImage};

use crate::hole::{hole_bbox_in, is_hole, Region};

/// Blend the hole pixels of `out` near the hole's outline, `out` holding `original` with its holes
/// already replaced by `patch`: the reconstruction resized to `region`, of which `patch` holds the
/// rectangle `at` (at least the holes' bounding box in `region` grown by `feather + 1`, clipped to
/// `region`: all the seam reads). Works inside `region` only: the reconstruction is not known
/// elsewhere.
pub fn feather_holes(
    out: &mut RgbImage,
    original: &RgbImage,
    mask: &GrayImage,
    patch: &RgbImage,
    at: Region,
    region: Region,
    feather: u32,
) {
    let error = |x: u32, y: u32| -> [f64; 3] {
        let (o, p) = (original.get_pixel(x, y).0, patch.get_pixel(x - at.x, y - at.y).0);
        std::array::from_fn(|c| o[c] as f64 - p[c] as f64)
    };
    // The sums are of integers (exact in f64), so `s as f32` rounds as the integer would.
    for (x, y, weight, s) in seam(mask, region, feather, error) {
        let base = patch.get_pixel(x - at.x, y - at.y).0;
        let px = out.get_pixel_mut(x, y);
        for c in 0..3 {
            let offset = s[c] as f32 / s[3] as f32;
            px.0[c] = (base[c] as f32 + weight * offset).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// [`feather_holes`] where `out` is also the original: it reads the original's colours at the known
/// pixels, which `out` holds unchanged (only hole pixels were replaced), so no copy of the frame is
/// needed.
pub(crate) fn feather_in_place(
    out: &mut RgbImage,
    mask: &GrayImage,
    patch: &RgbImage,
    at: Region,
    region: Region,
    feather: u32,
) {
    let updates = {
        let known = &*out;
        let error = |x: u32, y: u32| -> [f64; 3] {
            let (o, p) = (known.get_pixel(x, y).0, patch.get_pixel(x - at.x, y - at.y).0);
            std::array::from_fn(|c| o[c] as f64 - p[c] as f64)
        };
        seam(mask, region, feather, error)
    };
    for (x, y, weight, s) in updates {
        let base = patch.get_pixel(x - at.x, y - at.y).0;
        let px = out.get_pixel_mut(x, y);
        for c in 0..3 {
            let offset = s[c] as f32 / s[3] as f32;
            px.0[c] = (base[c] as f32 + weight * offset).round().clamp(0.0, 255.0) as u8;
        }
    }
}

/// [`feather_holes`] in floating point for images of more than 8 bits: `patch` (the reconstruction
/// resized to `region`, values in `[0,1]`, holes already final) gets the seam at its hole pixels;
/// `known(x, y)` is the original's colour in `[0,1]` at a known pixel.
pub fn feather_holes_f32(
    patch: &mut Rgb32FImage,
    known: impl Fn(u32, u32) -> [f32; 3],
    mask: &GrayImage,
    region: Region,
    feather: u32,
) {
    let updates = {
        let patch = &*patch;
        let error = |x: u32, y: u32| -> [f64; 3] {
            let (o, p) = (known(x, y), patch.get_pixel(x - region.x, y - region.y).0);
            std::array::from_fn(|c| o[c] as f64 - p[c] as f64)
        };
        seam(mask, region, feather, error)
    };
    for (x, y, weight, s) in updates {
        let px = patch.get_pixel_mut(x - region.x, y - region.y);
        for c in 0..3 {
            let offset = (s[c] / s[3]) as f32;
            px.0[c] = (px.0[c] + weight * offset).clamp(0.0, 1.0);
        }
    }
}

/// The seam: for every hole pixel within `feather` of a known pixel (chessboard distance `d`), its
/// weight `1 - (d-1)/F` and the sums of `error` (per channel) and the count of the known pixels in
/// its `(2F+1)^2` window: `(x, y, weight, [sum_r, sum_g, sum_b, count])`, count > 0.
fn seam(
    mask: &GrayImage,
    region: Region,
    feather: u32,
    error: impl Fn(u32, u32) -> [f64; 3],
) -> Vec<(u32, u32, f32, [f64; 4])> {
    let mut updates = Vec::new();
    if feather == 0 {
        return updates;
    }
    let is_hole = |x: u32, y: u32| is_hole(mask.get_pixel(x, y).0[0]);
    // The work area: the holes' bounding box in the region, grown by the feather (plus the ring of
    // known pixels the window reads), clipped to the region.
    let Some(hole) = hole_bbox_in(mask, region) else {
        return updates;
    };
    let (x0, y0, x1, y1) = (hole.x, hole.y, hole.x + hole.width - 1, hole.y + hole.height - 1);
    let grow = feather + 1;
    let (ax, ay) = (
        x0.saturating_sub(grow).max(region.x),
        y0.saturating_sub(grow).max(region.y),
    );
    let ax1 = (x1 + grow).min(region.x + region.width - 1);
    let ay1 = (y1 + grow).min(region.y + region.height - 1);
    let (w, h) = ((ax1 - ax + 1) as usize, (ay1 - ay + 1) as usize);

    // Chessboard distance to the nearest known pixel of the area (two chamfer passes). Outside the
    // area counts as unknown, so d <= F guarantees a known pixel inside the (2F+1)^2 window below.
    const FAR: u32 = u32::MAX / 2;
    let mut dist = vec![0u32; w * h];
    for j in 0..h {
        for i in 0..w {
            if is_hole(ax + i as u32, ay + j as u32) {
                dist[j * w + i] = FAR;
            }
        }
    }
    let neighbours_before = [(-1, 0), (-1, -1), (0, -1), (1, -1)];
    let pass = |dist: &mut [u32], order: &mut dyn Iterator<Item = (usize, usize)>, sign: i64| {
        for (i, j) in order {
            let mut d = dist[j * w + i];
            if d == 0 {
                continue;
            }
            for (di, dj) in neighbours_before {
                let (ni, nj) = (i as i64 + sign * di, j as i64 + sign * dj);
                if ni >= 0 && nj >= 0 && (ni as usize) < w && (nj as usize) < h {
                    d = d.min(dist[nj as usize * w + ni as usize] + 1);
                }
            }
            dist[j * w + i] = d;
        }
    };
    pass(&mut dist, &mut (0..h).flat_map(|j| (0..w).map(move |i| (i, j))), 1);
    pass(
        &mut dist,
        &mut (0..h).rev().flat_map(|j| (0..w).rev().map(move |i| (i, j))),
        -1,
    );

    // Summed-area tables of the known pixels' error (per channel) and of their count.
    let stride = w + 1;
    let mut sums = vec![[0f64; 4]; stride * (h + 1)];
    for j in 0..h {
        let mut row = [0f64; 4];
        for i in 0..w {
            let (x, y) = (ax + i as u32, ay + j as u32);
            if dist[j * w + i] == 0 {
                let e = error(x, y);
                for c in 0..3 {
                    row[c] += e[c];
                }
                row[3] += 1.0;
            }
            let above = sums[j * stride + i + 1];
            sums[(j + 1) * stride + i + 1] = std::array::from_fn(|c| above[c] + row[c]);
        }
    }
    let window = |i: usize, j: usize| -> [f64; 4] {
        let r = feather as usize;
        let (i0, j0, i1, j1) = (
            i.saturating_sub(r),
            j.saturating_sub(r),
            (i + r + 1).min(w),
            (j + r + 1).min(h),
        );
        let at = |i: usize, j: usize| sums[j * stride + i];
        let (a, b, c, d) = (at(i1, j1), at(i0, j1), at(i1, j0), at(i0, j0));
        std::array::from_fn(|k| a[k] - b[k] - c[k] + d[k])
    };

    for j in 0..h {
        for i in 0..w {
            let d = dist[j * w + i];
            if d == 0 || d > feather {
                continue;
            }
            let s = window(i, j);
            if s[3] == 0.0 {
                continue;
            }
            let weight = 1.0 - (d - 1) as f32 / feather as f32;
            updates.push((ax + i as u32, ay + j as u32, weight, s));
        }
    }
    updates
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hole::HOLE_THRESHOLD;
    use crate::pipeline::{finish, finish_feathered, prepare, FitMode};
    use image::{Luma, Rgb};

    const SIZE: u32 = 32;

    fn box_mask(w: u32, h: u32, (bx, by, bw, bh): (u32, u32, u32, u32)) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| {
            Luma([if x >= bx && x < bx + bw && y >= by && y < by + bh {
                255
            } else {
                0
            }])
        })
    }

    /// Black (garbage) in the hole, `known` elsewhere.
    fn blanked(known: impl Fn(u32, u32) -> Rgb<u8>, mask: &GrayImage) -> RgbImage {
        RgbImage::from_fn(mask.width(), mask.height(), |x, y| {
            if mask.get_pixel(x, y).0[0] >= HOLE_THRESHOLD {
                Rgb([0, 0, 0])
            } else {
                known(x, y)
            }
        })
    }

    fn constant_recon(rgb: [f32; 3]) -> Vec<f32> {
        let plane = (SIZE * SIZE) as usize;
        rgb.iter().flat_map(|&v| std::iter::repeat_n(v, plane)).collect()
    }

    #[test]
    fn seam_meets_the_original_and_fades_into_the_reconstruction() {
        let (w, h, hole) = (100, 80, (30, 20, 40, 30));
        let mask = box_mask(w, h, hole);
        let known = Rgb([200u8, 120, 60]);
        let img = blanked(|_, _| known, &mask);
        let p = prepare(&img, &mask, SIZE, FitMode::Whole).unwrap();
        // The network is off in colour everywhere: (51, 102, 153) instead of (200, 120, 60).
        let rec = constant_recon([0.2, 0.4, 0.6]);
        let rec_px = [51.0f32, 102.0, 153.0];
        let hard = finish(&img, &mask, &p, &rec, SIZE).unwrap();
        assert_eq!(hard, finish_feathered(&img, &mask, &p, &rec, SIZE, 0).unwrap());
        let soft = finish_feathered(&img, &mask, &p, &rec, SIZE, 4).unwrap();
        // Along the row through the middle of the hole, d = 1, 2, 3, 4, 5 from its left edge.
        let y = 35;
        for (d, x) in (1..=6).zip(30..) {
            let weight = if d <= 4 { 1.0 - (d - 1) as f32 / 4.0 } else { 0.0 };
            let want: [u8; 3] =
                std::array::from_fn(|c| (rec_px[c] + weight * (known.0[c] as f32 - rec_px[c])).round() as u8);
            assert_eq!(soft.get_pixel(x, y).0, want, "d = {d}");
            assert_eq!(hard.get_pixel(x, y).0, [51, 102, 153], "hard, d = {d}");
        }
        // Known pixels untouched, deep hole pixels as the hard composite.
        for (x, y, p) in soft.enumerate_pixels() {
            if mask.get_pixel(x, y).0[0] < HOLE_THRESHOLD {
                assert_eq!(*p, known, "known pixel {x},{y}");
            }
        }
        assert_eq!(soft.get_pixel(50, 35), hard.get_pixel(50, 35));
    }

    #[test]
    fn known_pixels_stay_bit_identical_on_noise_and_crops() {
        let (w, h) = (400, 300);
        let mut state = 12345u32;
        let noise = RgbImage::from_fn(w, h, |_, _| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state >> 24) as u8
            };
            Rgb([next(), next(), next()])
        });
        // A small hole (Auto crops a square around it) and one at the image's corner.
        for hole in [(200, 100, 25, 18), (0, 0, 40, 30)] {
            let mask = box_mask(w, h, hole);
            let img = blanked(|x, y| *noise.get_pixel(x, y), &mask);
            let p = prepare(&img, &mask, SIZE, FitMode::Auto).unwrap();
            let rec: Vec<f32> = (0..3 * SIZE * SIZE).map(|i| (i % 251) as f32 / 251.0).collect();
            let hard = finish(&img, &mask, &p, &rec, SIZE).unwrap();
            let soft = finish_feathered(&img, &mask, &p, &rec, SIZE, 5).unwrap();
            let (bx, by, bw, bh) = hole;
            let mut blended = 0;
            for (x, y, px) in soft.enumerate_pixels() {
                if mask.get_pixel(x, y).0[0] < HOLE_THRESHOLD {
                    assert_eq!(px, img.get_pixel(x, y), "known pixel {x},{y} of hole {hole:?}");
                    continue;
                }
                // Chessboard distance to the nearest known pixel (image edges are not known).
                let mut d = u32::MAX;
                if bx > 0 {
                    d = d.min(x - bx + 1)
                }
                if by > 0 {
                    d = d.min(y - by + 1)
                }
                if bx + bw < w {
                    d = d.min(bx + bw - x)
                }
                if by + bh < h {
                    d = d.min(by + bh - y)
                }
                if d > 5 {
                    assert_eq!(px, hard.get_pixel(x, y), "deep pixel {x},{y}");
                } else {
                    blended += (px != hard.get_pixel(x, y)) as u32;
                }
            }
            assert!(blended > 0, "hole {hole:?}: the seam changed nothing");
        }
    }

    #[test]
    fn the_float_finish_agrees_with_the_8_bit_one() {
        // The same 8-bit image through both: the 16-bit path only avoids the 8-bit rounding of the
        // reconstruction before upsampling, so hole values agree to about one 8-bit step.
        let (w, h) = (90, 70);
        let mask = box_mask(w, h, (20, 15, 30, 25));
        let img = blanked(|x, y| Rgb([(x * 2) as u8, (y * 3) as u8, 90]), &mask);
        let p = prepare(&img, &mask, SIZE, FitMode::Whole).unwrap();
        let rec: Vec<f32> = (0..3 * SIZE * SIZE).map(|i| (i % 97) as f32 / 97.0).collect();
        for feather in [0, 3] {
            let hard = finish_feathered(&img, &mask, &p, &rec, SIZE, feather).unwrap();
            let known = |x: u32, y: u32| img.get_pixel(x, y).0.map(|v| v as f32 / 255.0);
            let (region, patch) = crate::pipeline::finish_f32(known, (w, h), &mask, &p, &rec, SIZE, feather)
                .unwrap()
                .expect("a hole");
            for (x, y, m) in mask.enumerate_pixels() {
                if m.0[0] < HOLE_THRESHOLD {
                    continue;
                }
                let f = patch.get_pixel(x - region.x, y - region.y).0;
                let e = hard.get_pixel(x, y).0;
                for c in 0..3 {
                    let diff = (f[c] * 255.0 - e[c] as f32).abs();
                    assert!(
                        diff <= 2.0,
                        "feather {feather}: {x},{y} channel {c}: {} vs {}",
                        f[c] * 255.0,
                        e[c]
                    );
                }
            }
        }
        // No hole: nothing to paste; a wrong size is the runtime's error.
        let none = prepare(&img, &GrayImage::new(w, h), SIZE, FitMode::Whole).unwrap();
        let known = |_: u32, _: u32| [0.0; 3];
        assert!(
            crate::pipeline::finish_f32(known, (w, h), &GrayImage::new(w, h), &none, &rec, SIZE, 2)
                .unwrap()
                .is_none()
        );
        assert!(crate::pipeline::finish_f32(known, (w + 1, h), &mask, &p, &rec, SIZE, 2).is_err());
        assert!(crate::pipeline::finish_f32(known, (w, h), &mask, &p, &rec[1..], SIZE, 2).is_err());
    }
}
