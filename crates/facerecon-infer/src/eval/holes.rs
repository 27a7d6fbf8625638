//! The holes `--eval` scores a model on: seeded, reproducible masks at the model size, or mask files
//! fitted exactly as the images are.
//!
//! Seeded rule: image `i` of the sorted input list gets the mask
//! `MaskSampler::sample(S, &mut StdRng::seed_from_u64(mix_seed(&[seed, i])))`, the rule the trainer
//! uses for its fixed validation masks (facerecon-train's `data::mix_seed`, copied here so that this
//! binary does not depend on the trainer). The mask of an image depends only on (seed, i, kind, S):
//! not on the batch size, the thread count or whether other images failed to decode. `StdRng` is
//! rand 0.8's (ChaCha12): a different rand release may draw other masks, so `--save-masks` is the way
//! to freeze a set.

use std::path::Path;

use clap::ValueEnum;
use facerecon_imaging::masks::{self, MaskSampler, MaskSpec};
use image::{imageops, imageops::FilterType, GrayImage};
use rand::{rngs::StdRng, SeedableRng};

/// Which seeded holes to draw (`--holes`). Pixel sizes are for a 128x128 model and scale with `S/128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Holes {
    /// One 28x28 box (the tutorial's corruption), uniformly placed inside the image.
    #[value(name = "box28")]
    Box28,
    /// One square box, side uniform in [32, 64], uniformly placed.
    #[value(name = "box32-64")]
    Box32To64,
    /// The mixture of configs/unet.yaml: a 28 box (weight 1), a 16-64 box (2), 2-4 rectangles of
    /// 12-40 (1), 1-4 free-form strokes 6-18 wide (1).
    #[value(name = "mixed")]
    Mixed,
}

impl Holes {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Holes::Box28 => "box28",
            Holes::Box32To64 => "box32-64",
            Holes::Mixed => "mixed",
        }
    }

    /// The mask mixture at model size `size`.
    pub fn specs(self, size: u32) -> Vec<MaskSpec> {
        let s = |px: u32| scale(px, size);
        match self {
            Holes::Box28 => vec![MaskSpec::Box {
                min: s(28),
                max: s(28),
                weight: 1.0,
            }],
            Holes::Box32To64 => vec![MaskSpec::Box {
                min: s(32),
                max: s(64),
                weight: 1.0,
            }],
            Holes::Mixed => vec![
                MaskSpec::Box {
                    min: s(28),
                    max: s(28),
                    weight: 1.0,
                },
                MaskSpec::Box {
                    min: s(16),
                    max: s(64),
                    weight: 2.0,
                },
                MaskSpec::Boxes {
                    min: s(12),
                    max: s(40),
                    count_min: 2,
                    count_max: 4,
                    weight: 1.0,
                },
                MaskSpec::Strokes {
                    width_min: s(6),
                    width_max: s(18),
                    count_min: 1,
                    count_max: 4,
                    weight: 1.0,
                },
            ],
        }
    }

    /// A sampler for [`seeded_mask`].
    pub fn sampler(self, size: u32) -> MaskSampler {
        MaskSampler::new(&self.specs(size)).expect("the built-in mask mixtures are valid")
    }
}

/// `px` pixels of a 128x128 model at model size `size`, rounded, at least 1.
pub fn scale(px: u32, size: u32) -> u32 {
    ((px as u64 * size as u64 + 64) / 128).max(1) as u32
}

pub use facerecon_imaging::masks::mix_seed;

/// The seeded mask (`size x size`, 255 = hole) of image `index`.
pub fn seeded_mask(sampler: &MaskSampler, size: u32, seed: u64, index: usize) -> GrayImage {
    let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, index as u64]));
    sampler.sample(size, &mut rng)
}

/// A mask file fitted to the model size the way `layout::fit_square` fits its image: a mask already
/// `size x size` is used as is; otherwise it is read at the image's size (resized, nearest, if it
/// has another), center-cropped to a square and resized (nearest) to `size`. Thresholded at 128;
/// `invert` reads 0 as the hole.
pub fn fitted_mask_file(path: &Path, image_size: (u32, u32), size: u32, invert: bool) -> Result<GrayImage, String> {
    let dims = image::image_dimensions(path).map_err(|e| format!("mask {}: {e}", path.display()))?;
    let mut mask = if dims == (size, size) {
        masks::load_mask(path, size, size).map_err(|e| format!("mask: {e}"))?
    } else {
        let (w, h) = image_size;
        let full = masks::load_mask(path, w, h).map_err(|e| format!("mask: {e}"))?;
        let side = w.min(h);
        let square = imageops::crop_imm(&full, (w - side) / 2, (h - side) / 2, side, side).to_image();
        if side == size {
            square
        } else {
            imageops::resize(&square, size, size, FilterType::Nearest)
        }
    };
    if invert {
        mask.pixels_mut().for_each(|p| p.0[0] = 255 - p.0[0]);
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hole_count(m: &GrayImage) -> usize {
        m.pixels().filter(|p| facerecon_imaging::masks::is_hole(p.0[0])).count()
    }

    #[test]
    fn seeded_masks_are_reproducible_and_per_index() {
        let sampler = Holes::Box28.sampler(128);
        let a = seeded_mask(&sampler, 128, 7, 3);
        assert_eq!(a, seeded_mask(&sampler, 128, 7, 3));
        assert_eq!(hole_count(&a), 28 * 28);
        // Another index or seed moves the box (positions are drawn from 101x101 places).
        assert_ne!(a, seeded_mask(&sampler, 128, 7, 4));
        assert_ne!(a, seeded_mask(&sampler, 128, 8, 3));
    }

    #[test]
    fn sizes_scale_with_the_model() {
        assert_eq!(scale(28, 128), 28);
        assert_eq!(scale(28, 32), 7);
        assert_eq!(scale(28, 256), 56);
        assert_eq!(scale(1, 8), 1);
        let m = seeded_mask(&Holes::Box28.sampler(32), 32, 0, 0);
        assert_eq!(hole_count(&m), 49);
        for i in 0..20 {
            let n = hole_count(&seeded_mask(&Holes::Box32To64.sampler(128), 128, 1, i));
            let side = (n as f64).sqrt() as usize;
            assert!(side * side == n && (32..=64).contains(&side), "box of {n} pixels");
            assert!(hole_count(&seeded_mask(&Holes::Mixed.sampler(128), 128, 1, i)) > 0);
        }
    }

    #[test]
    fn mask_files_are_fitted_like_images() {
        let dir = tempfile::tempdir().unwrap();
        // 60x40 mask with a hole at x 10..20: the square crop keeps x 10..50, so the hole lands
        // at x 0..10 of the 40x40 square, 0..5 at size 20.
        let path = dir.path().join("m.png");
        masks::box_mask(60, 40, 10, 0, 10, 40).save(&path).unwrap();
        let m = fitted_mask_file(&path, (60, 40), 20, false).unwrap();
        assert_eq!(m.dimensions(), (20, 20));
        for (x, _, p) in m.enumerate_pixels() {
            assert_eq!(p.0[0] == 255, x < 5, "x {x}");
        }
        let inv = fitted_mask_file(&path, (60, 40), 20, true).unwrap();
        assert_eq!(hole_count(&inv), 400 - hole_count(&m));
        // Already at the model size: used as is, whatever the image's size.
        let small = dir.path().join("s.png");
        masks::box_mask(20, 20, 3, 4, 5, 6).save(&small).unwrap();
        assert_eq!(
            fitted_mask_file(&small, (300, 200), 20, false).unwrap(),
            masks::box_mask(20, 20, 3, 4, 5, 6)
        );
        assert!(fitted_mask_file(&dir.path().join("none.png"), (20, 20), 20, false)
            .unwrap_err()
            .contains("none.png"));
    }
}
