//! Pure per-image pre- and post-processing around the network: no ONNX Runtime needed, so every
//! geometric decision is unit-tested on its own.
//!
//! The network sees a square `size x size` picture. [`prepare`] picks the part of the original that it
//! sees (a [`Region`]) and resizes it; [`finish`] resizes the reconstruction back to that region and
//! replaces the hole pixels of the original, and only those: known pixels leave bit-identical.

use facerecon_imaging::layout;
use image::{imageops, imageops::FilterType, GrayImage, Rgb32FImage, RgbImage};

use crate::RuntimeError;

/// Mask values at or above this count as holes (255 = hole; defined in `facerecon-contract`).
pub use facerecon_contract::HOLE_THRESHOLD;

/// How the network's square input is cut from the original image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FitMode {
    /// [`FitMode::Crop`] when the hole is small in a large photo (its bounding box with a 50% margin
    /// on every side fits in a square at most half the image's shorter side), else [`FitMode::Whole`].
    #[default]
    Auto,
    /// Resize the whole image to the model size, ignoring the aspect ratio (nothing is lost, and the
    /// mapping back is exact).
    Whole,
    /// A square around the hole (with a 50% margin), at least the model size when the image allows.
    Crop,
}

/// A rectangle of the original image, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0).
    pub width: u32,
    /// Height (> 0).
    pub height: u32,
}

/// One image ready for the network, plus what [`finish`] needs to map the result back.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// The part of the original the network sees; `None` when the mask has no hole (nothing to run).
    pub region: Option<Region>,
    /// `[3, size, size]` in `[0,1]`, holes zeroed (empty when there is no hole).
    pub image: Vec<f32>,
    /// `[1, size, size]`, 1 = hole (empty when there is no hole).
    pub mask: Vec<f32>,
}

impl Prepared {
    /// Whether the network has anything to reconstruct.
    pub fn has_hole(&self) -> bool {
        self.region.is_some()
    }
}

/// The smallest rectangle holding every hole pixel, or `None` for a mask without holes.
///
/// ```
/// use facerecon_runtime::{pipeline::hole_bbox, Region};
/// use image::{GrayImage, Luma};
/// let mut mask = GrayImage::new(10, 8);
/// mask.put_pixel(2, 3, Luma([255]));
/// mask.put_pixel(5, 4, Luma([128])); // >= 128 is a hole
/// mask.put_pixel(7, 7, Luma([127])); // below it, a known pixel
/// assert_eq!(hole_bbox(&mask), Some(Region { x: 2, y: 3, width: 4, height: 2 }));
/// assert_eq!(hole_bbox(&GrayImage::new(10, 8)), None);
/// ```
pub fn hole_bbox(mask: &GrayImage) -> Option<Region> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for (x, y, p) in mask.enumerate_pixels() {
        if p.0[0] >= HOLE_THRESHOLD {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    (x0 != u32::MAX).then(|| Region {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// The region of a `width x height` image the network should see, given the hole's bounding box.
///
/// ```
/// use facerecon_runtime::{pipeline::choose_region, FitMode, Region};
/// let square = |x, y, side| Region { x, y, width: side, height: side };
/// // A small hole in a large photo: a square around it, the model's size (never upscaled from less).
/// assert_eq!(choose_region(1000, 700, square(600, 300, 20), 128, FitMode::Auto), square(546, 246, 128));
/// // Near the edge the square slides back inside the image.
/// assert_eq!(choose_region(1000, 700, square(5, 5, 20), 128, FitMode::Auto), square(0, 0, 128));
/// // A square of more than half the shorter side would not be worth it: the whole image.
/// let whole = Region { x: 0, y: 0, width: 200, height: 150 };
/// assert_eq!(choose_region(200, 150, square(70, 50, 40), 128, FitMode::Auto), whole);
/// assert_eq!(choose_region(1000, 700, square(600, 300, 20), 128, FitMode::Whole).width, 1000);
/// ```
pub fn choose_region(width: u32, height: u32, hole: Region, size: u32, fit: FitMode) -> Region {
    let whole = Region {
        x: 0,
        y: 0,
        width,
        height,
    };
    let short = width.min(height);
    // 50% margin on each side: the square's side is twice the hole's longer side, and never smaller
    // than the model (upscaling a tiny patch would only blur it).
    let side = (2 * hole.width.max(hole.height)).max(size).min(short);
    let crop = match fit {
        FitMode::Whole => false,
        FitMode::Crop => true,
        FitMode::Auto => side * 2 <= short,
    };
    if !crop {
        return whole;
    }
    // Centre the square on the hole, then slide it back inside the image. Since side >= the hole's
    // extent (when the image allows), the whole hole stays inside.
    let place = |start: u32, extent: u32, limit: u32| -> u32 {
        let centre = start as i64 + extent as i64 / 2;
        (centre - side as i64 / 2).clamp(0, (limit - side) as i64) as u32
    };
    let region = Region {
        x: place(hole.x, hole.width, width),
        y: place(hole.y, hole.height, height),
        width: side,
        height: side,
    };
    if contains(&region, &hole) {
        region
    } else {
        // A hole longer than the image's shorter side cannot be inside any square crop.
        whole
    }
}

fn contains(outer: &Region, inner: &Region) -> bool {
    inner.x >= outer.x
        && inner.y >= outer.y
        && inner.x + inner.width <= outer.x + outer.width
        && inner.y + inner.height <= outer.y + outer.height
}

/// Fit `image` and its `mask` (same size; 255 = hole) to the network's `size x size` input.
pub fn prepare(image: &RgbImage, mask: &GrayImage, size: u32, fit: FitMode) -> Result<Prepared, RuntimeError> {
    check_mask_size(image, mask)?;
    let Some(hole) = hole_bbox(mask) else {
        return Ok(Prepared {
            region: None,
            image: Vec::new(),
            mask: Vec::new(),
        });
    };
    let region = choose_region(image.width(), image.height(), hole, size, fit);
    let cut = imageops::crop_imm(image, region.x, region.y, region.width, region.height).to_image();
    let fitted = if (region.width, region.height) == (size, size) {
        cut
    } else {
        imageops::resize(&cut, size, size, FilterType::Triangle)
    };
    let small_mask = downscale_mask_max(mask, region, size);
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

/// Resize the `region` of `mask` to `size x size` so that an output pixel is a hole when ANY source
/// pixel it covers is one: a max-pool, so that small holes never vanish at the model size.
pub fn downscale_mask_max(mask: &GrayImage, region: Region, size: u32) -> Vec<f32> {
    // Source span [start, end) of output index `i` along an axis of `extent` pixels; at least one pixel.
    let span = |i: u32, extent: u32| -> (u32, u32) {
        let start = (i as u64 * extent as u64 / size as u64) as u32;
        let end = (((i as u64 + 1) * extent as u64).div_ceil(size as u64) as u32).clamp(start + 1, extent);
        (start, end)
    };
    let mut out = vec![0.0f32; (size * size) as usize];
    for oy in 0..size {
        let (y0, y1) = span(oy, region.height);
        for ox in 0..size {
            let (x0, x1) = span(ox, region.width);
            let hole =
                (y0..y1).any(|y| (x0..x1).any(|x| mask.get_pixel(region.x + x, region.y + y).0[0] >= HOLE_THRESHOLD));
            if hole {
                out[(oy * size + ox) as usize] = 1.0;
            }
        }
    }
    out
}

/// Put the network's `[3, size, size]` reconstruction back into `original`: resized to the region it
/// came from, it replaces the hole pixels of `mask` and nothing else.
pub fn finish(
    original: &RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
) -> Result<RgbImage, RuntimeError> {
    finish_feathered(original, mask, prepared, reconstruction, size, 0)
}

/// [`finish`], then a colour-matched seam `feather` pixels wide inside the hole
/// ([`crate::feather`]); `feather == 0` is the hard replacement of [`finish`]. Either way only hole
/// pixels change.
pub fn finish_feathered(
    original: &RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
    feather: u32,
) -> Result<RgbImage, RuntimeError> {
    check_mask_size(original, mask)?;
    let Some(region) = prepared.region else {
        return Ok(original.clone());
    };
    let expected = 3 * (size * size) as usize;
    if reconstruction.len() != expected {
        return Err(RuntimeError::Inference(format!(
            "reconstruction has {} values, expected {expected} (3x{size}x{size})",
            reconstruction.len()
        )));
    }
    let small = layout::from_chw(reconstruction, size, size);
    let patch = if (region.width, region.height) == (size, size) {
        small
    } else {
        imageops::resize(&small, region.width, region.height, FilterType::CatmullRom)
    };
    let mut out = original.clone();
    for (px, py, p) in patch.enumerate_pixels() {
        let (x, y) = (region.x + px, region.y + py);
        if mask.get_pixel(x, y).0[0] >= HOLE_THRESHOLD {
            out.put_pixel(x, y, *p);
        }
    }
    crate::feather::feather_holes(&mut out, original, mask, &patch, region, feather);
    Ok(out)
}

/// [`finish_feathered`] in floating point, for originals of more than 8 bits per sample (the
/// caller writes the values back in the original's own type, e.g. 16-bit). `known(x, y)` is the
/// original's colour in `[0,1]` at a known pixel (read for the seam only); `width x height` is the
/// original's size. Returns the region the network saw and the reconstruction resized to it
/// (Catmull-Rom, in `f32`, clamped to `[0,1]`) with the seam applied at its hole pixels; `None`
/// when the mask has no hole. Only the hole pixels of the returned patch are meant to be used.
#[allow(clippy::too_many_arguments)]
pub fn finish_f32(
    known: impl Fn(u32, u32) -> [f32; 3],
    (width, height): (u32, u32),
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
    feather: u32,
) -> Result<Option<(Region, Rgb32FImage)>, RuntimeError> {
    if (width, height) != mask.dimensions() {
        return Err(RuntimeError::MaskSize {
            width,
            height,
            mask_width: mask.width(),
            mask_height: mask.height(),
        });
    }
    let Some(region) = prepared.region else {
        return Ok(None);
    };
    let expected = 3 * (size * size) as usize;
    if reconstruction.len() != expected {
        return Err(RuntimeError::Inference(format!(
            "reconstruction has {} values, expected {expected} (3x{size}x{size})",
            reconstruction.len()
        )));
    }
    let plane = (size * size) as usize;
    let small = Rgb32FImage::from_fn(size, size, |x, y| {
        let i = (y * size + x) as usize;
        image::Rgb(std::array::from_fn(|c| reconstruction[c * plane + i].clamp(0.0, 1.0)))
    });
    let mut patch = if (region.width, region.height) == (size, size) {
        small
    } else {
        imageops::resize(&small, region.width, region.height, FilterType::CatmullRom)
    };
    crate::feather::feather_holes_f32(&mut patch, known, mask, region, feather);
    Ok(Some((region, patch)))
}

fn check_mask_size(image: &RgbImage, mask: &GrayImage) -> Result<(), RuntimeError> {
    if image.dimensions() != mask.dimensions() {
        return Err(RuntimeError::MaskSize {
            width: image.width(),
            height: image.height(),
            mask_width: mask.width(),
            mask_height: mask.height(),
        });
    }
    Ok(())
}
