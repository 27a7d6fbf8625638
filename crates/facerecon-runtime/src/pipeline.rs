//! Pure per-image pre- and post-processing around the network: no ONNX Runtime needed, so every
//! geometric decision is unit-tested on its own.
//!
//! The network sees a square `size x size` picture. [`prepare`] picks the part of the original that it
//! sees (a [`Region`]) and resizes it; [`finish`] resizes the reconstruction back to that region and
//! replaces the hole pixels of the original, and only those: known pixels leave bit-identical.
//!
//! This is the one implementation the CLI, the C ABI and [`crate::Runtime`] share. It is built for
//! camera frames: no pass over the frame copies or converts it, [`FitMode::Auto`] crops a large
//! frame around the hole, a region of more than 4x the model size is box-averaged by an integer
//! factor before the Triangle resize, the resizes go through `crate::resize` (a windowed,
//! vectorised twin of `image::imageops::resize`, bit-identical to it), the mask is max-pooled only
//! where the hole is, [`finish`] upsamples only the hole pixels' stretch of each row (with a seam:
//! the hole's bounding box plus the seam's reach) instead of the whole region, and
//! [`finish_in_place`] writes into the caller's frame.
//! `tests/fast_path.rs` checks every result bit for bit against a straightforward version built on
//! `imageops`.

use image::{imageops, imageops::FilterType, GrayImage, Rgb32FImage, RgbImage};

pub use crate::hole::{hole_bbox, is_hole, Region, HOLE_THRESHOLD};
use crate::{
    hole::{first_hole, hole_bbox_in, last_hole, row_has_hole},
    resize::{
        box_factor, box_reduce, prefetch, resize_rows, resize_window, resize_window_spans, unit_to_u8, Kernel, BOX_FROM,
    },
    RuntimeError,
};

/// How the network's square input is cut from the original image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FitMode {
    /// [`FitMode::Crop`] when the hole is small in a large photo (its bounding box with a 50% margin
    /// on every side fits in a square at most half the image's shorter side), or when the image is
    /// a large frame (its shorter side at least 4x the model size, e.g. a 1920x1080 camera frame
    /// for a 128 model) and the hole fits in a square crop; else [`FitMode::Whole`]. (Earlier versions
    /// resized a large frame with a hole of more than a quarter of its shorter side whole:
    /// [`FitMode::Whole`] still does that.)
    #[default]
    Auto,
    /// Resize the whole image to the model size, ignoring the aspect ratio (nothing is lost, and the
    /// mapping back is exact).
    Whole,
    /// A square around the hole (with a 50% margin), at least the model size when the image allows;
    /// a side of 4x the model size or more is rounded to the nearest multiple of it (the box
    /// pre-reduction of [`prepare`] then lands exactly on the model size). (Earlier versions kept
    /// twice the hole's longer side exactly.)
    Crop,
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
/// // ...unless the image is a large frame: squashed whole into 128x128, a face would be a few
/// // pixels (and distorted to the model's square); a square around the hole keeps it usable.
/// let hole = Region { x: 391, y: 275, width: 324, height: 158 };
/// // From 4x the model size on, the side is a multiple of it: 2 x 324 = 648 becomes 640 = 5 x 128.
/// assert_eq!(choose_region(1920, 1080, hole, 128, FitMode::Auto), square(233, 34, 640));
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
    let long = hole.width.max(hole.height);
    let mut side = (2 * long).max(size).min(short);
    // From BOX_FROM x the model size the crop is box-averaged by an integer factor before the
    // Triangle resize. A side that is a multiple of the model size (the nearest one that still fits
    // the image and holds the hole) makes that factor the whole reduction, with no Triangle pass,
    // and the upsampling back an exact integer factor: 648 -> 640 = 5 x 128 for camera_loop's hole.
    if side >= BOX_FROM * size {
        let nearest = (side + size / 2) / size * size;
        let fitting = if nearest > short { short / size * size } else { nearest };
        if fitting >= long {
            side = fitting;
        }
    }
    let crop = match fit {
        FitMode::Whole => false,
        FitMode::Crop => true,
        // A large frame resized whole would show the network its content at a tiny scale (a face
        // of a sixth of a 1920x1080 frame becomes ~20 pixels of a 128 model) and squashed to a
        // square; a crop also costs a fraction of the whole frame's resize.
        FitMode::Auto => side * 2 <= short || short >= LARGE_FRAME * size,
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
    if region.contains(&hole) {
        region
    } else {
        // A hole longer than the image's shorter side cannot be inside any square crop.
        whole
    }
}

/// [`FitMode::Auto`] crops around the hole in images whose shorter side is at least this many times
/// the model size.
pub const LARGE_FRAME: u32 = 4;

/// Fit `image` and its `mask` (same size; 255 = hole) to the network's `size x size` input.
///
/// The region is resized with a Triangle (bilinear, antialiased) filter. When it is at least 4x the
/// model size on an axis, it is first averaged over blocks of `k` pixels along that axis (area
/// averaging), `k` the largest divisor of the region's extent up to the reduction, so that the
/// Triangle only finishes the last step (none at all for a crop whose side is a multiple of the
/// model size, as [`choose_region`] makes large crops: 640 -> 128 is one 5x5 box pass): the
/// antialiasing of area averaging at a fraction of the cost of a wide Triangle. Smaller regions are
/// resized in one Triangle pass, as in earlier versions.
pub fn prepare(image: &RgbImage, mask: &GrayImage, size: u32, fit: FitMode) -> Result<Prepared, RuntimeError> {
    prepare_found(image, mask, size, fit, None).map(|(prepared, _)| prepared)
}

/// [`prepare`] when the caller knows where the hole is (a face detector's box, the area the app
/// blanked): `hole_box` is a rectangle of the image that holds every hole pixel of `mask`, with or
/// without a margin. The mask is read only inside it and on the one-pixel ring around it, instead
/// of all of it (2 MB at 1920x1080); the result is the one [`prepare`] returns for the same mask.
/// See [`check_hole_box`] for what is checked.
pub fn prepare_in_box(
    image: &RgbImage,
    mask: &GrayImage,
    hole_box: Region,
    size: u32,
    fit: FitMode,
) -> Result<Prepared, RuntimeError> {
    prepare_found(image, mask, size, fit, Some(hole_box)).map(|(prepared, _)| prepared)
}

/// The bounding box of the hole pixels inside the caller's `hole_box` (`None`: no hole in it),
/// after checking the box: it must be non-empty and inside the mask
/// ([`RuntimeError::HoleBox`] otherwise), and no hole pixel may lie on the ring of pixels just
/// outside it (a hole that continues past the box: [`RuntimeError::HoleBox`], instead of a hole cut
/// at the box's edge). Hole pixels farther from the box are not looked at: the caller states that
/// there are none (they would stay as they are). Reads the box and its ring only.
///
/// ```
/// use facerecon_runtime::{pipeline::check_hole_box, GrayImage, Luma, Region};
/// let mut mask = GrayImage::new(100, 80);
/// for (x, y) in [(30, 20), (40, 25)] {
///     mask.put_pixel(x, y, Luma([255]));
/// }
/// let hole = Region { x: 30, y: 20, width: 11, height: 6 };
/// // The tight box, or one with a margin: the same hole.
/// assert_eq!(check_hole_box(&mask, hole).unwrap(), Some(hole));
/// assert_eq!(check_hole_box(&mask, Region { x: 10, y: 10, width: 50, height: 40 }).unwrap(), Some(hole));
/// // A box that cuts the hole: its ring has a hole pixel.
/// assert!(check_hole_box(&mask, Region { x: 31, y: 20, width: 10, height: 6 }).is_err());
/// // Outside the image, or empty.
/// assert!(check_hole_box(&mask, Region { x: 90, y: 0, width: 20, height: 10 }).is_err());
/// assert!(check_hole_box(&mask, Region { x: 0, y: 0, width: 0, height: 10 }).is_err());
/// ```
pub fn check_hole_box(mask: &GrayImage, hole_box: Region) -> Result<Option<Region>, RuntimeError> {
    let (w, h) = mask.dimensions();
    let b = hole_box;
    if b.width == 0 || b.height == 0 {
        return Err(RuntimeError::HoleBox(format!(
            "{}x{} at ({}, {}) is empty",
            b.width, b.height, b.x, b.y
        )));
    }
    if b.x as u64 + b.width as u64 > w as u64 || b.y as u64 + b.height as u64 > h as u64 {
        return Err(RuntimeError::HoleBox(format!(
            "{}x{} at ({}, {}) is not inside the {w}x{h} image",
            b.width, b.height, b.x, b.y
        )));
    }
    // The ring: the rows above and below the box and the columns left and right of it, corners
    // included, where they lie inside the image.
    let (x0, x1) = (b.x.saturating_sub(1) as usize, (b.x + b.width).min(w - 1) as usize);
    let stride = w as usize;
    let raw = mask.as_raw();
    let mut rows = Vec::with_capacity(2);
    if b.y > 0 {
        rows.push(b.y - 1);
    }
    if b.y + b.height < h {
        rows.push(b.y + b.height);
    }
    let mut cols = Vec::with_capacity(2);
    if b.x > 0 {
        cols.push(b.x - 1);
    }
    if b.x + b.width < w {
        cols.push(b.x + b.width);
    }
    let outside = rows
        .iter()
        .find_map(|&y| {
            let row = &raw[y as usize * stride + x0..=y as usize * stride + x1];
            row_has_hole(row).then(|| (x0 + first_hole(row).expect("a hole"), y as usize))
        })
        .or_else(|| {
            (b.y..b.y + b.height).find_map(|y| {
                cols.iter()
                    .find(|&&x| is_hole(raw[y as usize * stride + x as usize]))
                    .map(|&x| (x as usize, y as usize))
            })
        });
    if let Some((x, y)) = outside {
        return Err(RuntimeError::HoleBox(format!(
            "the hole continues past the box {}x{} at ({}, {}): hole pixel at ({x}, {y}) just outside it; pass a box that holds every hole pixel",
            b.width, b.height, b.x, b.y
        )));
    }
    Ok(hole_bbox_in(mask, b))
}

/// [`prepare`] (`hole_box` `None`: the mask is scanned) or [`prepare_in_box`], plus the bounding box
/// of the mask's holes it found (`None` without a hole), which [`finish_in_place_found`] can take
/// instead of scanning the mask again.
pub(crate) fn prepare_found(
    image: &RgbImage,
    mask: &GrayImage,
    size: u32,
    fit: FitMode,
    hole_box: Option<Region>,
) -> Result<(Prepared, Option<Region>), RuntimeError> {
    check_mask_size(image, mask)?;
    let hole = match hole_box {
        None => hole_bbox(mask),
        Some(hole_box) => check_hole_box(mask, hole_box)?,
    };
    let Some(hole) = hole else {
        let none = Prepared {
            region: None,
            image: Vec::new(),
            mask: Vec::new(),
        };
        return Ok((none, None));
    };
    let region = choose_region(image.width(), image.height(), hole, size, fit);
    let source = (region.x, region.y, region.width, region.height);
    let (kx, ky) = (box_factor(region.width, size), box_factor(region.height, size));
    let fitted = if kx * ky > 1 {
        let reduced = box_reduce(image, source, (kx, ky));
        let (rw, rh) = reduced.dimensions();
        if (rw, rh) == (size, size) {
            // The box pass landed on the model size (a crop side that is a multiple of it, as
            // `choose_region` makes large crops): the Triangle resize would be a copy.
            reduced
        } else {
            resize_window(
                &reduced,
                (0, 0, rw, rh),
                (size, size),
                Kernel::Triangle,
                (0, 0, size, size),
            )
        }
    } else {
        resize_window(image, source, (size, size), Kernel::Triangle, (0, 0, size, size))
    };
    let small_mask = downscale_mask_in(mask, region, size, hole);
    let chw = to_chw_holes_zeroed(&fitted, &small_mask);
    let prepared = Prepared {
        region: Some(region),
        image: chw,
        mask: small_mask,
    };
    Ok((prepared, Some(hole)))
}

/// `facerecon_imaging::layout::to_chw(fitted)` (`[3, h, w]`, `value / 255`) with the pixels where
/// `mask` is a hole (> 0.5) zeroed, in one pass per plane: the same values (`tests/fast_path.rs`
/// compares them), without a second pass over the 196 KB tensor.
fn to_chw_holes_zeroed(fitted: &RgbImage, mask: &[f32]) -> Vec<f32> {
    let plane = (fitted.width() * fitted.height()) as usize;
    assert_eq!(mask.len(), plane, "to_chw_holes_zeroed: mask size");
    let mut out = vec![0f32; 3 * plane];
    let raw = fitted.as_raw();
    // A row's bytes of one channel at a time, then converted with the operations `to_chw` uses
    // (`v as f32 / 255.0`) in a loop of contiguous values, which the compiler vectorises.
    const ROW: usize = 256;
    let mut bytes = [0u8; ROW];
    for (c, channel) in out.chunks_exact_mut(plane).enumerate() {
        for ((dst, m), px) in channel.chunks_mut(ROW).zip(mask.chunks(ROW)).zip(raw.chunks(3 * ROW)) {
            for (b, p) in bytes.iter_mut().zip(px.chunks_exact(3)) {
                *b = p[c];
            }
            for ((v, &m), &b) in dst.iter_mut().zip(m).zip(&bytes) {
                *v = if m > 0.5 { 0.0 } else { b as f32 / 255.0 };
            }
        }
    }
    out
}

/// Resize the `region` of `mask` to `size x size` so that an output pixel is a hole when ANY source
/// pixel it covers is one: a max-pool, so that small holes never vanish at the model size.
pub fn downscale_mask_max(mask: &GrayImage, region: Region, size: u32) -> Vec<f32> {
    match hole_bbox_in(mask, region) {
        Some(hole) => downscale_mask_in(mask, region, size, hole),
        None => vec![0.0; (size * size) as usize],
    }
}

/// [`downscale_mask_max`] given the bounding box of the mask's holes (clipped to `region` here):
/// only the output pixels whose source span meets it can be holes, so only those are looked at.
fn downscale_mask_in(mask: &GrayImage, region: Region, size: u32, hole: Region) -> Vec<f32> {
    let mut out = vec![0.0f32; (size * size) as usize];
    let Some(hole) = hole.intersect(&region) else {
        return out;
    };
    // Source span [start, end) of output index `i` along an axis of `extent` pixels; at least one pixel.
    let span = |i: u32, extent: u32| -> (u32, u32) {
        let start = (i as u64 * extent as u64 / size as u64) as u32;
        let end = (((i as u64 + 1) * extent as u64).div_ceil(size as u64) as u32).clamp(start + 1, extent);
        (start, end)
    };
    // The output indices whose span meets [lo, hi) (relative to the region): spans are monotonic.
    let meeting = |lo: u32, hi: u32, extent: u32| -> Vec<(u32, u32, u32)> {
        (0..size)
            .map(|i| (i, span(i, extent)))
            .filter(|&(_, (s, e))| s < hi && e > lo)
            .map(|(i, (s, e))| (i, s, e))
            .collect()
    };
    let rows = meeting(hole.y - region.y, hole.y + hole.height - region.y, region.height);
    let cols = meeting(hole.x - region.x, hole.x + hole.width - region.x, region.width);
    let stride = mask.width() as usize;
    let raw = mask.as_raw();
    for &(oy, y0, y1) in &rows {
        for &(ox, x0, x1) in &cols {
            let (xa, xb) = ((region.x + x0) as usize, (region.x + x1) as usize);
            let hole = (region.y + y0..region.y + y1).any(|y| {
                raw[y as usize * stride + xa..y as usize * stride + xb]
                    .iter()
                    .any(|&v| is_hole(v))
            });
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
    check_reconstruction(prepared, reconstruction, size)?;
    let mut out = original.clone();
    finish_in_place(&mut out, mask, prepared, reconstruction, size, feather)?;
    Ok(out)
}

/// [`finish_feathered`] into `image` itself: its hole pixels get the reconstruction (and the seam),
/// its known pixels are not written. The result is the one [`finish_feathered`] returns, without
/// the copy of the frame (6 MB at 1920x1080). On an error `image` is unchanged.
pub fn finish_in_place(
    image: &mut RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
    feather: u32,
) -> Result<(), RuntimeError> {
    finish_in_place_found(image, mask, prepared, reconstruction, size, feather, HoleSearch::Scan)
}

/// [`finish_in_place`] after [`prepare_in_box`]: the same `hole_box` ([`check_hole_box`]), so that
/// the mask is read only inside it (and, with a seam, up to `feather + 1` pixels around the holes).
/// The result is the one [`finish_in_place`] gives.
pub fn finish_in_place_in_box(
    image: &mut RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
    feather: u32,
    hole_box: Region,
) -> Result<(), RuntimeError> {
    check_mask_size(image, mask)?;
    let hole = check_hole_box(mask, hole_box)?;
    finish_in_place_found(
        image,
        mask,
        prepared,
        reconstruction,
        size,
        feather,
        HoleSearch::Known(hole),
    )
}

/// How [`finish_in_place_found`] gets the holes' bounding box.
pub(crate) enum HoleSearch {
    /// Scan the mask inside the prepared region.
    Scan,
    /// The bounding box of the mask's holes (`None`: no hole), from [`prepare_found`] or
    /// [`check_hole_box`] on this same mask: the region `prepare` chose contains it, so it is the
    /// bounding box within the region too.
    Known(Option<Region>),
}

/// [`finish_in_place`] with the holes' bounding box found as `search` says.
pub(crate) fn finish_in_place_found(
    image: &mut RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    reconstruction: &[f32],
    size: u32,
    feather: u32,
    search: HoleSearch,
) -> Result<(), RuntimeError> {
    check_mask_size(image, mask)?;
    check_reconstruction(prepared, reconstruction, size)?;
    let Some(region) = prepared.region else {
        return Ok(());
    };
    // Only the hole pixels inside the region change (plus, with a seam, the hole pixels up to
    // `feather` away from a known pixel, whose error is read up to one more pixel out): the
    // reconstruction is upsampled over that window alone.
    let hole = match search {
        HoleSearch::Known(hole) => hole.and_then(|hole| hole.intersect(&region)),
        HoleSearch::Scan => hole_bbox_in(mask, region),
    };
    let Some(hole) = hole else {
        return Ok(());
    };
    let reach = if feather > 0 { feather + 1 } else { 0 };
    let (wx, wy) = (
        hole.x.saturating_sub(reach).max(region.x),
        hole.y.saturating_sub(reach).max(region.y),
    );
    let wx1 = (hole.x + hole.width + reach).min(region.x + region.width);
    let wy1 = (hole.y + hole.height + reach).min(region.y + region.height);
    let window = Region {
        x: wx,
        y: wy,
        width: wx1 - wx,
        height: wy1 - wy,
    };
    let small = chw_to_rgb8(
        reconstruction,
        size,
        source_span(
            size,
            region.height,
            window.y - region.y..window.y - region.y + window.height,
        ),
        source_span(
            size,
            region.width,
            window.x - region.x..window.x - region.x + window.width,
        ),
    );
    let (ow, mw, ww) = (image.width() as usize, mask.width() as usize, window.width as usize);
    let raw_mask = mask.as_raw();
    let mask_row = |py: usize| &raw_mask[(window.y as usize + py) * mw + window.x as usize..][..ww];
    // Without a seam only the hole pixels are read: per row of the window, the reconstruction is
    // upsampled from its first to its last hole pixel (all of a round hole's box is not needed).
    // The seam also reads the known pixels around the hole: then the whole window.
    let spans: Option<Vec<(u32, u32)>> = (feather == 0).then(|| {
        (0..window.height as usize)
            .map(|py| match (first_hole(mask_row(py)), last_hole(mask_row(py))) {
                (Some(a), Some(b)) => (a as u32, b as u32 + 1),
                _ => (0, 0),
            })
            .collect()
    });
    let source = (0, 0, size, size);
    let target = (region.width, region.height);
    let at = (window.x - region.x, window.y - region.y, window.width, window.height);
    // Hole pixels of a stretch of `mask_seg` get `src_seg`, the others are not written. A stretch
    // that is hole from end to end (every row of a rectangular hole) is one copy.
    let paste = |mask_seg: &[u8], dst_seg: &mut [u8], src_seg: &[u8]| {
        if mask_seg.iter().all(|&m| is_hole(m)) {
            dst_seg.copy_from_slice(src_seg);
            return;
        }
        for ((&m, d), s) in mask_seg
            .iter()
            .zip(dst_seg.chunks_exact_mut(3))
            .zip(src_seg.chunks_exact(3))
        {
            if is_hole(m) {
                d.copy_from_slice(s);
            }
        }
    };
    let Some(spans) = spans else {
        // The seam reads the upsampled window at known pixels too: it is made whole first.
        let patch = resize_window_spans(&small, source, target, Kernel::CatmullRom, at, None);
        let (dst, src) = (&mut **image, patch.as_raw());
        for py in 0..window.height as usize {
            let y = window.y as usize + py;
            paste(
                mask_row(py),
                &mut dst[(y * ow + window.x as usize) * 3..][..3 * ww],
                &src[py * ww * 3..][..3 * ww],
            );
        }
        // The seam reads the original only at known pixels, which `image` still holds unchanged.
        // Its work area is this same window (the holes' box grown by its reach, clipped to the
        // region): handing it the window instead of the region spares it a scan of the region's mask.
        crate::feather::feather_in_place(image, mask, &patch, window, window, feather);
        return Ok(());
    };
    // Without a seam each row's stretch goes straight from the resize into the frame: no window-sized
    // patch in between.
    let dst = &mut **image;
    resize_rows(
        &small,
        source,
        target,
        Kernel::CatmullRom,
        at,
        Some(&spans),
        |py, a, bytes| {
            // The frame's and the mask's rows come from memory: fetch a later row's stretch
            // while this one is written.
            if let Some(&(pa, pb)) = spans.get(py + PREFETCH_ROWS).filter(|(pa, pb)| pa < pb) {
                let (pa, pb) = (pa as usize, pb as usize);
                let y = window.y as usize + py + PREFETCH_ROWS;
                prefetch(&dst[(y * ow + window.x as usize + pa) * 3..][..3 * (pb - pa)]);
                prefetch(&mask_row(py + PREFETCH_ROWS)[pa..pb]);
            }
            let y = window.y as usize + py;
            let n = bytes.len() / 3;
            paste(
                &mask_row(py)[a..a + n],
                &mut dst[(y * ow + window.x as usize + a) * 3..][..3 * n],
                bytes,
            );
        },
    );
    Ok(())
}

/// How many rows ahead [`finish_in_place`] prefetches the frame and the mask.
const PREFETCH_ROWS: usize = 2;

/// `facerecon_imaging::layout::from_chw` (`[0,1]` to 8 bits, clamped, rounded half away from
/// zero, NaN to 0) with the rounding of `crate::resize` instead of a `roundf` call per value: the
/// same bytes (`tests/fast_path.rs` compares them), a fraction of the time. Only the pixels in
/// `rows` x `cols` are converted (the rest stay 0): the resize back reads the reconstruction only
/// around the hole's window ([`source_span`]).
fn chw_to_rgb8(chw: &[f32], size: u32, rows: std::ops::Range<u32>, cols: std::ops::Range<u32>) -> RgbImage {
    let (plane, side) = ((size * size) as usize, size as usize);
    let (x0, x1) = (cols.start as usize, cols.end as usize);
    let mut out = RgbImage::new(size, size);
    // Each plane's stretch of a row to bytes in vectors, then interleaved.
    let mut bytes = vec![0u8; 3 * (x1 - x0)];
    for y in rows.start as usize..rows.end as usize {
        let (r, rest) = bytes.split_at_mut(x1 - x0);
        let (g, b) = rest.split_at_mut(x1 - x0);
        for (c, dst) in [r, g, b].into_iter().enumerate() {
            unit_to_u8(&chw[c * plane + y * side + x0..c * plane + y * side + x1], dst);
        }
        let (r, rest) = bytes.split_at(x1 - x0);
        let (g, b) = rest.split_at(x1 - x0);
        let row = &mut (*out)[(y * side + x0) * 3..(y * side + x1) * 3];
        for (((px, &r), &g), &b) in row.chunks_exact_mut(3).zip(r).zip(g).zip(b) {
            px.copy_from_slice(&[r, g, b]);
        }
    }
    out
}

/// The source pixels (of `size`) that a resize to `target` reads for the outputs `out` (a
/// range of `target`), with a margin: a superset of the taps of `crate::resize` (support 2 for
/// Catmull-Rom, scaled when reducing), clamped to the source.
fn source_span(size: u32, target: u32, out: std::ops::Range<u32>) -> std::ops::Range<u32> {
    let ratio = size as f64 / target as f64;
    let support = 2.0 * ratio.max(1.0);
    let lo = ((out.start as f64 + 0.5) * ratio - support).floor() - 2.0;
    let hi = ((out.end as f64 - 0.5) * ratio + support).ceil() + 2.0;
    (lo.max(0.0) as u32)..(hi.clamp(0.0, size as f64) as u32)
}

/// A reconstruction of the right length for `prepared` (none needed without a hole).
fn check_reconstruction(prepared: &Prepared, reconstruction: &[f32], size: u32) -> Result<(), RuntimeError> {
    let expected = 3 * (size * size) as usize;
    if prepared.region.is_some() && reconstruction.len() != expected {
        return Err(RuntimeError::Inference(format!(
            "reconstruction has {} values, expected {expected} (3x{size}x{size})",
            reconstruction.len()
        )));
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_with_holes_zeroed_is_to_chw_then_zeroing() {
        // Every byte value in every channel, holes at scattered pixels; sizes that are and are not
        // a multiple of the conversion's 256-pixel rows.
        for (w, h) in [(16, 16), (20, 13), (128, 128), (3, 1)] {
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = (y * w + x) as u8;
                image::Rgb([v, v.wrapping_mul(7), 255 - v])
            });
            let plane = (w * h) as usize;
            let mask: Vec<f32> = (0..plane)
                .map(|i| if i % 5 == 0 || i % 7 == 3 { 1.0 } else { 0.0 })
                .collect();
            let mut want = facerecon_imaging::layout::to_chw(&img);
            for channel in want.chunks_exact_mut(plane) {
                for (v, m) in channel.iter_mut().zip(&mask) {
                    if *m > 0.5 {
                        *v = 0.0;
                    }
                }
            }
            let got = to_chw_holes_zeroed(&img, &mask);
            assert_eq!(got.len(), want.len());
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), e.to_bits(), "{w}x{h}: value {i}");
            }
        }
    }
}
