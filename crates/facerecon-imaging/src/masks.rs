//! Hole masks: sampling (boxes like the tutorial, free-form strokes), mask files, detection of
//! blacked-out regions, dilation.
//!
//! A mask is a [`GrayImage`] the size of its image: **255 = hole** (missing), 0 = known; any
//! value >= [`HOLE_THRESHOLD`] (128) counts as a hole everywhere in this crate ([`is_hole`]).

use std::collections::VecDeque;
#[cfg(feature = "io")]
use std::path::Path;

#[cfg(feature = "io")]
use image::imageops::{self, FilterType};
use image::{GrayImage, Luma, RgbImage};
#[cfg(feature = "synth")]
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::ImagingError;

pub use facerecon_contract::mask::{is_hole, HOLE, HOLE_THRESHOLD, KNOWN};

fn default_weight() -> f64 {
    1.0
}

/// One kind of mask in a weighted mixture (`masks:` in the YAML configs).
///
/// Sizes are pixels at the model size passed to `MaskSampler::sample` (feature `synth`); they are clamped to it.
/// Serialized tagged by `kind` (`box`, `boxes`, `strokes`); `weight` defaults to 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum MaskSpec {
    /// One square box (the tutorial's corruption): side uniform in `[min,max]`, position uniform
    /// such that the box lies fully inside the image.
    Box {
        /// Smallest side, pixels.
        min: u32,
        /// Largest side, pixels.
        max: u32,
        /// Relative frequency of this kind in the mixture.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// `count_min..=count_max` rectangles (they may overlap), width and height drawn
    /// independently in `[min,max]`, each fully inside the image.
    Boxes {
        /// Smallest width or height, pixels.
        min: u32,
        /// Largest width or height, pixels.
        max: u32,
        /// Fewest rectangles per mask.
        count_min: u32,
        /// Most rectangles per mask.
        count_max: u32,
        /// Relative frequency of this kind in the mixture.
        #[serde(default = "default_weight")]
        weight: f64,
    },
    /// `count_min..=count_max` free-form brush strokes (as in DeepFill v2 / LaMa): each a random
    /// walk of 4-10 line segments painted with a round brush of width in `[width_min,width_max]`.
    Strokes {
        /// Narrowest brush, pixels.
        width_min: u32,
        /// Widest brush, pixels.
        width_max: u32,
        /// Fewest strokes per mask.
        count_min: u32,
        /// Most strokes per mask.
        count_max: u32,
        /// Relative frequency of this kind in the mixture.
        #[serde(default = "default_weight")]
        weight: f64,
    },
}

impl MaskSpec {
    /// The mixture weight of this spec.
    pub fn weight(&self) -> f64 {
        match self {
            MaskSpec::Box { weight, .. } | MaskSpec::Boxes { weight, .. } | MaskSpec::Strokes { weight, .. } => *weight,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let w = self.weight();
        if !(w.is_finite() && w >= 0.0) {
            return Err(format!("mask weight must be finite and >= 0, got {w}"));
        }
        let (lo, hi, what) = match *self {
            MaskSpec::Box { min, max, .. } | MaskSpec::Boxes { min, max, .. } => (min, max, "box side"),
            MaskSpec::Strokes {
                width_min, width_max, ..
            } => (width_min, width_max, "stroke width"),
        };
        if lo == 0 || lo > hi {
            return Err(format!("{what} range must satisfy 1 <= min <= max, got [{lo}, {hi}]"));
        }
        if let MaskSpec::Boxes {
            count_min, count_max, ..
        }
        | MaskSpec::Strokes {
            count_min, count_max, ..
        } = *self
        {
            if count_min == 0 || count_min > count_max {
                return Err(format!(
                    "count range must satisfy 1 <= count_min <= count_max, got [{count_min}, {count_max}]"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(feature = "synth")]
impl MaskSpec {
    /// Draws one `size x size` mask of this kind.
    pub fn draw(&self, size: u32, rng: &mut impl Rng) -> GrayImage {
        let mut mask = GrayImage::new(size, size);
        if size == 0 {
            return mask;
        }
        match *self {
            MaskSpec::Box { min, max, .. } => {
                let s = uniform(rng, min, max).min(size);
                let (x, y) = (rng.gen_range(0..=size - s), rng.gen_range(0..=size - s));
                fill_rect(&mut mask, x, y, s, s);
            }
            MaskSpec::Boxes {
                min,
                max,
                count_min,
                count_max,
                ..
            } => {
                for _ in 0..uniform(rng, count_min, count_max) {
                    let w = uniform(rng, min, max).min(size);
                    let h = uniform(rng, min, max).min(size);
                    let (x, y) = (rng.gen_range(0..=size - w), rng.gen_range(0..=size - h));
                    fill_rect(&mut mask, x, y, w, h);
                }
            }
            MaskSpec::Strokes {
                width_min,
                width_max,
                count_min,
                count_max,
                ..
            } => {
                for _ in 0..uniform(rng, count_min, count_max) {
                    let width = uniform(rng, width_min, width_max) as f32;
                    draw_stroke(&mut mask, width, rng);
                }
            }
        }
        mask
    }
}

#[cfg(feature = "synth")]
fn uniform(rng: &mut impl Rng, lo: u32, hi: u32) -> u32 {
    rng.gen_range(lo..=hi.max(lo))
}

fn fill_rect(mask: &mut GrayImage, x: u32, y: u32, w: u32, h: u32) {
    let (mw, mh) = mask.dimensions();
    for yy in y..(y + h).min(mh) {
        for xx in x..(x + w).min(mw) {
            mask.put_pixel(xx, yy, Luma([HOLE]));
        }
    }
}

/// One DeepFill-style free-form stroke: start anywhere, then 4-10 segments whose direction
/// turns by up to ±72° (alternating sides, so strokes meander instead of spiralling) and whose
/// length is up to a quarter of the image; strokes bounce off the borders. Each segment is
/// painted as a capsule (round brush, round joints).
#[cfg(feature = "synth")]
fn draw_stroke(mask: &mut GrayImage, width: f32, rng: &mut impl Rng) {
    use std::f32::consts::PI;
    let size = mask.width() as f32;
    let radius = width / 2.0;
    let mut p = (rng.gen_range(0.0..size), rng.gen_range(0.0..size));
    let mut angle = rng.gen_range(0.0..2.0 * PI);
    let vertices = rng.gen_range(4..=10);
    let max_len = (size / 4.0).max(2.0);
    for i in 0..vertices {
        let turn = rng.gen_range(0.0..0.4 * PI);
        angle += if i % 2 == 0 { turn } else { -turn };
        // Occasionally reverse course, as hand-drawn scribbles do.
        if rng.gen_bool(0.15) {
            angle += PI;
        }
        let len = rng.gen_range(max_len / 4.0..=max_len);
        let mut q = (p.0 + len * angle.cos(), p.1 + len * angle.sin());
        // Bounce off the borders (mirror the point and the heading) instead of clamping, which
        // would make strokes crawl along the image edges.
        let hi = size - 1.0;
        if q.0 < 0.0 || q.0 > hi {
            q.0 = if q.0 < 0.0 { -q.0 } else { 2.0 * hi - q.0 };
            angle = PI - angle;
        }
        if q.1 < 0.0 || q.1 > hi {
            q.1 = if q.1 < 0.0 { -q.1 } else { 2.0 * hi - q.1 };
            angle = -angle;
        }
        let q = (q.0.clamp(0.0, hi), q.1.clamp(0.0, hi));
        paint_capsule(mask, p, q, radius);
        p = q;
    }
}

/// Marks every pixel whose center lies within `radius` of the segment `a`-`b`.
#[cfg(feature = "synth")]
fn paint_capsule(mask: &mut GrayImage, a: (f32, f32), b: (f32, f32), radius: f32) {
    let (w, h) = mask.dimensions();
    let x0 = (a.0.min(b.0) - radius).floor().max(0.0) as u32;
    let y0 = (a.1.min(b.1) - radius).floor().max(0.0) as u32;
    let x1 = ((a.0.max(b.0) + radius).ceil() as u32).min(w - 1);
    let y1 = ((a.1.max(b.1) + radius).ceil() as u32).min(h - 1);
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let r2 = radius * radius;
    for y in y0..=y1 {
        for x in x0..=x1 {
            // Pixel centers are at +0.5.
            let (px, py) = (x as f32 + 0.5 - a.0, y as f32 + 0.5 - a.1);
            let t = if len2 > 0.0 {
                ((px * dx + py * dy) / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (ex, ey) = (px - t * dx, py - t * dy);
            if ex * ex + ey * ey <= r2 {
                mask.put_pixel(x, y, Luma([HOLE]));
            }
        }
    }
}

/// Samples masks from a weighted mixture of [`MaskSpec`]s.
#[derive(Debug, Clone)]
pub struct MaskSampler {
    specs: Vec<MaskSpec>,
    // Read by `sample` (feature `synth`); the validation in `new` is useful without it.
    #[cfg_attr(not(feature = "synth"), allow(dead_code))]
    total_weight: f64,
}

impl MaskSampler {
    /// Validates the specs (non-empty, `1 <= min <= max`, `1 <= count_min <= count_max`,
    /// weights finite, >= 0, and not all zero).
    pub fn new(specs: &[MaskSpec]) -> Result<Self, ImagingError> {
        if specs.is_empty() {
            return Err(ImagingError::Invalid("mask list is empty".into()));
        }
        for (i, s) in specs.iter().enumerate() {
            s.validate()
                .map_err(|m| ImagingError::Invalid(format!("masks[{i}]: {m}")))?;
        }
        let total_weight: f64 = specs.iter().map(MaskSpec::weight).sum();
        if total_weight <= 0.0 {
            return Err(ImagingError::Invalid("mask weights sum to zero".into()));
        }
        Ok(Self {
            specs: specs.to_vec(),
            total_weight,
        })
    }

    /// The specs of the mixture.
    pub fn specs(&self) -> &[MaskSpec] {
        &self.specs
    }

    /// Picks a spec with probability proportional to its weight, then draws a
    /// `size x size` mask from it. Deterministic for a given RNG state.
    #[cfg(feature = "synth")]
    pub fn sample(&self, size: u32, rng: &mut impl Rng) -> GrayImage {
        let mut t = rng.gen_range(0.0..self.total_weight);
        let mut chosen = self.specs.last().expect("non-empty");
        for s in &self.specs {
            if t < s.weight() {
                chosen = s;
                break;
            }
            t -= s.weight();
        }
        chosen.draw(size, rng)
    }
}

/// A `width x height` mask with one hole: the rectangle at `(x, y)` of size `w x h`
/// (clipped to the image).
pub fn box_mask(width: u32, height: u32, x: u32, y: u32, w: u32, h: u32) -> GrayImage {
    let mut mask = GrayImage::new(width, height);
    fill_rect(&mut mask, x, y, w, h);
    mask
}

#[cfg(feature = "io")]
/// How [`load_mask_fit`] fits a mask file of another size than its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskFit {
    /// Only a scaled copy of the image's shape is resized (its sides are the image's times one
    /// factor, each rounded): a mask of another aspect ratio is an [`ImagingError::MaskAspect`].
    Scale,
    /// Any size is resized to the image, stretching a mask of another aspect ratio.
    Stretch,
}

/// Loads a mask file (any image format [`crate::io::load_rgb`] reads, colour or gray; alpha is
/// composited over black, so transparent = known), converts it to luma, thresholds it
/// ([`is_hole`] becomes 255 = hole, the rest 0) and, if its size differs from `width x height`,
/// resizes it with nearest-neighbour sampling (which keeps it binary) — only when it has the
/// image's aspect ratio ([`MaskFit::Scale`]): a mask of another shape would put the holes in the
/// wrong place, so it is an error naming both sizes.
#[cfg(feature = "io")]
pub fn load_mask(path: &Path, width: u32, height: u32) -> Result<GrayImage, ImagingError> {
    load_mask_fit(path, width, height, MaskFit::Scale)
}

#[cfg(feature = "io")]
/// [`load_mask`] with an explicit policy for a mask of another size ([`MaskFit`]).
pub fn load_mask_fit(path: &Path, width: u32, height: u32, fit: MaskFit) -> Result<GrayImage, ImagingError> {
    let rgb = crate::io::load_rgb(path)?;
    let mut mask = image::DynamicImage::ImageRgb8(rgb).to_luma8();
    for p in mask.pixels_mut() {
        p[0] = if is_hole(p[0]) { HOLE } else { KNOWN };
    }
    let (mw, mh) = mask.dimensions();
    if (mw, mh) != (width, height) {
        if fit == MaskFit::Scale && !same_shape((mw, mh), (width, height)) {
            return Err(ImagingError::MaskAspect {
                path: path.to_owned(),
                mask_width: mw,
                mask_height: mh,
                width,
                height,
            });
        }
        mask = imageops::resize(&mask, width, height, FilterType::Nearest);
    }
    Ok(mask)
}

/// Whether one of the sizes is the other times a single factor, each side rounded: some `s` with
/// `|a.w - b.w * s| < 1` and `|a.h - b.h * s| < 1` (or the same from `b` to `a`).
#[cfg(feature = "io")]
fn same_shape(a: (u32, u32), b: (u32, u32)) -> bool {
    let scaled = |(aw, ah): (u32, u32), (bw, bh): (u32, u32)| {
        let (aw, ah, bw, bh) = (aw as u64, ah as u64, bw as u64, bh as u64);
        // The intervals ((aw-1)/bw, (aw+1)/bw) and ((ah-1)/bh, (ah+1)/bh) of `s` overlap.
        (aw.saturating_sub(1)) * bh < (ah + 1) * bw && (ah.saturating_sub(1)) * bw < (aw + 1) * bh
    };
    scaled(a, b) || scaled(b, a)
}

/// Brightest channel value at which a pixel still counts as "dark" in [`detect_dark_holes`].
pub const DARK_MAX: u8 = 16;
/// Shortest side (pixels) of a blacked-out rectangle that [`detect_dark_holes`] reports as a hole:
/// smaller near-black patches in real photos are pupils, lashes, nostrils and shadows.
pub const MIN_SIDE: usize = 10;
/// Least mean brightness (`max(R,G,B)`) of the ring 2-3 pixels outside a box: a blacked-out box
/// stands out from the photo around it, while the near-black shapes of real photos (eyes,
/// eyebrows, shadows, clothing) fade into dark surroundings.
pub const RING_MIN: f64 = 50.0;
/// Radius of the opening in [`detect_dark_holes`]: dark structures thinner than `2r+1` pixels
/// (hair strands, lines, small features) are never part of a hole.
pub const OPEN_RADIUS: u32 = 3;
/// Share of its rectangle that a dark region must fill to count as a box.
pub const BOX_FILL: f64 = 0.9;
/// Share of each row and column of a box that must be dark.
pub const LINE_FILL: f64 = 0.65;
/// Share of each corner triangle of a box (legs a quarter of its shorter side) that must be dark or
/// opened region: JPEG damages a box's corners most (>= 70 % is left), a disc's dominant
/// rectangle has about half of each corner triangle outside it.
pub const CORNER_FILL: f64 = 0.65;
/// Brightest channel value of a *near-black* pixel.
pub const NEAR_BLACK: u8 = 8;
/// Share of a box's pixels that must be near-black ([`NEAR_BLACK`]). JPEG keeps the inside of a
/// black box at or next to 0 (its blocks decode to 0 and ringing below 0 is clipped: >= 80 % of
/// nearly every box of side 16-60 pasted on real faces at quality 75, more at 90); a flat
/// dark-grey area is not blacked out.
pub const BLACK_SHARE: f64 = 0.8;

/// Finds blacked-out rectangles, the way the tutorial's corrupted images mark their holes, and
/// nothing else: a default that runs on every photo must never repaint a real one.
///
/// The rule:
/// 1. A pixel is *dark* if `max(R,G,B) <= 16` ([`DARK_MAX`]; pure black drifts to near-black
///    under JPEG).
/// 2. The dark pixels are opened with a 7x7 square ([`OPEN_RADIUS`]): a pixel stays only if it lies
///    in a 7x7 window of dark pixels, so hair strands, lines and small dark features vanish.
/// 3. Each 4-connected region left is reduced to its dominant rectangle (the rows and columns
///    holding at least half as many of its pixels as its fullest row / column), which drops dark
///    texture that merely touches a box. The rectangle is a hole only if
///    - it is box-like: the region and the dark pixels fill >= 90 % of it ([`BOX_FILL`]), at
///      least 65 % of each of its rows and columns are dark ([`LINE_FILL`]) but for one outer line
///      per side (JPEG bleeds colour into a box's edge), and its corners are square (each corner
///      triangle, legs a quarter of its shorter side, is >= 65 % dark or opened region,
///      [`CORNER_FILL`]: the opening keeps a box's corners and rounds a disc's);
///    - it is black: >= 80 % of its pixels have `max(R,G,B) <= 8` ([`BLACK_SHARE`],
///      [`NEAR_BLACK`]; a flat dark-grey area is not);
///    - it stands out: the ring 2-3 pixels around it has a mean `max(R,G,B)` >= 50
///      ([`RING_MIN`]; eyes, eyebrows and shadows fade into dark surroundings; a box painted over
///      dark hair is not found either);
///    - both its sides are >= 10 pixels ([`MIN_SIDE`]; pupils, lashes, nostrils), and its region
///      does not touch the image's edge: black borders, letterbox bars, alignment padding (face
///      crops such as UTKFace's), dark backgrounds and clothing do; a box at the edge needs a mask
///      or `--box`.
/// 4. The hole is that rectangle grown by 1 pixel (JPEG ringing at its edge), and no more: dark
///    pixels of the photo next to a box (a pupil, hair) are known pixels.
///
/// Strong JPEG compression next to strong texture can brighten a box's outer lines past 16; they
/// then stay out of the hole (`facerecon-infer --dilate N` grows it): growing into dark neighbours
/// by default would repaint dark hair next to a box.
///
/// Dark hair, dark backgrounds and night shots are irregular, textured or reach the image's edge,
/// so they are left alone; a box touching dark hair takes at most a few pixels of it along its edge. A
/// black, axis-aligned rectangle inside a photo is always taken for a hole: give an explicit mask
/// (or `--box`) for such an image.
pub fn detect_dark_holes(img: &RgbImage) -> GrayImage {
    detect_dark_holes_where(img, |_, _| true)
}

/// [`detect_dark_holes`] considering only the pixels where `eligible(x, y)` holds (e.g. only
/// opaque pixels of an image with alpha: transparency is never a hole).
pub fn detect_dark_holes_where(img: &RgbImage, eligible: impl Fn(u32, u32) -> bool) -> GrayImage {
    let (w, h) = img.dimensions();
    let (wu, hu) = (w as usize, h as usize);
    let mut mask = GrayImage::new(w, h);
    if wu == 0 || hu == 0 {
        return mask;
    }
    let dark: Vec<bool> = img
        .enumerate_pixels()
        .map(|(x, y, p)| p[0].max(p[1]).max(p[2]) <= DARK_MAX && eligible(x, y))
        .collect();
    let r = OPEN_RADIUS as usize;
    // Opening: erode (every pixel of the window, clipped to the image, is dark), then dilate back.
    let core = window_all(&window_all(&dark, wu, hu, r, true), wu, hu, r, false);
    let opened = window_any(&window_any(&core, wu, hu, r, true), wu, hu, r, false);
    let brightest = |i: usize| {
        let p = &img.as_raw()[3 * i..3 * i + 3];
        p[0].max(p[1]).max(p[2])
    };
    // Mean brightest channel of the pixels 2-3 away (chessboard) from the rectangle, in the image.
    let ring_brightness = |x0: usize, y0: usize, x1: usize, y1: usize| {
        let (mut sum, mut n) = (0usize, 0usize);
        for y in y0.saturating_sub(3)..=(y1 + 3).min(hu - 1) {
            for x in x0.saturating_sub(3)..=(x1 + 3).min(wu - 1) {
                if y + 2 <= y0 || y >= y1 + 2 || x + 2 <= x0 || x >= x1 + 2 {
                    sum += brightest(y * wu + x) as usize;
                    n += 1;
                }
            }
        }
        sum as f64 / n.max(1) as f64
    };

    let mut seen = vec![false; wu * hu];
    let mut component = Vec::new();
    let mut queue = VecDeque::new();
    for start in 0..wu * hu {
        if !opened[start] || seen[start] {
            continue;
        }
        component.clear();
        seen[start] = true;
        queue.push_back(start);
        while let Some(i) = queue.pop_front() {
            component.push(i);
            let (x, y) = (i % wu, i / wu);
            let mut visit = |j: usize| {
                if opened[j] && !seen[j] {
                    seen[j] = true;
                    queue.push_back(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < wu {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - wu);
            }
            if y + 1 < hu {
                visit(i + wu);
            }
        }
        if component.len() < MIN_SIDE * MIN_SIDE {
            continue;
        }
        let Some((x0, y0, x1, y1)) = dominant_rect(&component, wu) else {
            continue;
        };
        let area = (x1 - x0 + 1) * (y1 - y0 + 1);
        // A dark region at the image's edge is a black border, alignment padding, a dark background
        // or clothing far more often than a painted box: never a hole by default.
        let touches_edge = component.iter().any(|&i| {
            let (x, y) = (i % wu, i / wu);
            x == 0 || y == 0 || x + 1 == wu || y + 1 == hu
        });
        if x1 - x0 + 1 < MIN_SIDE || y1 - y0 + 1 < MIN_SIDE || touches_edge {
            continue;
        }
        // Box-like: the region (with the dark pixels the opening cut off) fills the rectangle;
        // every row and column of it is mostly dark, but for one outer line per side (JPEG's
        // chroma bleeds into a box's edge line); and its corners are square (a disc fills >= 90 %
        // of its dominant rectangle, but its outer rows only 58 % and its corners not at all).
        let (mut inside, mut near_black) = (0, 0);
        for y in y0..=y1 {
            for x in x0..=x1 {
                let i = y * wu + x;
                inside += (dark[i] || opened[i]) as usize;
                near_black += (brightest(i) <= NEAR_BLACK) as usize;
            }
        }
        let dark_in = |xa: usize, ya: usize, xb: usize, yb: usize| {
            (ya..=yb)
                .map(|y| (xa..=xb).filter(|&x| dark[y * wu + x]).count())
                .sum::<usize>()
        };
        let thin_row =
            |y: usize, xa: usize, xb: usize| (dark_in(xa, y, xb, y) as f64) < LINE_FILL * (xb - xa + 1) as f64;
        let thin_col =
            |x: usize, ya: usize, yb: usize| (dark_in(x, ya, x, yb) as f64) < LINE_FILL * (yb - ya + 1) as f64;
        let (mut tx0, mut ty0, mut tx1, mut ty1) = (x0, y0, x1, y1);
        if thin_row(y0, x0, x1) {
            ty0 += 1;
        }
        if thin_row(y1, x0, x1) {
            ty1 -= 1;
        }
        if thin_col(x0, y0, y1) {
            tx0 += 1;
        }
        if thin_col(x1, y0, y1) {
            tx1 -= 1;
        }
        let lines_full = (ty0..=ty1).all(|y| !thin_row(y, tx0, tx1)) && (tx0..=tx1).all(|x| !thin_col(x, ty0, ty1));
        // Each corner triangle of the rectangle (legs a quarter of its shorter side) is >= 65 %
        // region or dark: the opening keeps a box's square corners, and rounds a disc's.
        let k = ((x1 - x0 + 1).min(y1 - y0 + 1) / 4).max(3);
        let corners_square = [(x0, y0, 1i64, 1i64), (x1, y0, -1, 1), (x0, y1, 1, -1), (x1, y1, -1, -1)]
            .iter()
            .all(|&(cx, cy, sx, sy)| {
                let (mut n, mut d) = (0usize, 0usize);
                for j in 0..k {
                    for i in 0..k - j {
                        let x = (cx as i64 + sx * i as i64) as usize;
                        let y = (cy as i64 + sy * j as i64) as usize;
                        n += 1;
                        d += (dark[y * wu + x] || opened[y * wu + x]) as usize;
                    }
                }
                d as f64 >= CORNER_FILL * n as f64
            });
        if (inside as f64) < BOX_FILL * area as f64
            || !lines_full
            || !corners_square
            || (near_black as f64) < BLACK_SHARE * area as f64
            || ring_brightness(x0, y0, x1, y1) < RING_MIN
        {
            continue;
        }
        // The hole: the rectangle grown by 1 pixel (JPEG ringing at the box's edge). Not more:
        // the photo's own dark pixels next to a box (a pupil, hair) are known pixels.
        fill_rect(
            &mut mask,
            x0.saturating_sub(1) as u32,
            y0.saturating_sub(1) as u32,
            (x1 + 2).min(wu) as u32 - x0.saturating_sub(1) as u32,
            (y1 + 2).min(hu) as u32 - y0.saturating_sub(1) as u32,
        );
    }
    mask
}

/// The rectangle (inclusive corners) of the rows and columns of `component` that hold at least half
/// as many of its pixels as its fullest row / column.
fn dominant_rect(component: &[usize], wu: usize) -> Option<(usize, usize, usize, usize)> {
    let mut rows = std::collections::BTreeMap::<usize, usize>::new();
    let mut cols = std::collections::BTreeMap::<usize, usize>::new();
    for &i in component {
        *rows.entry(i / wu).or_default() += 1;
        *cols.entry(i % wu).or_default() += 1;
    }
    let span = |counts: &std::collections::BTreeMap<usize, usize>| {
        let max = *counts.values().max()?;
        let mut keep = counts.iter().filter(|(_, &n)| 2 * n >= max).map(|(&k, _)| k);
        let first = keep.next()?;
        Some((first, keep.next_back().unwrap_or(first)))
    };
    let (y0, y1) = span(&rows)?;
    let (x0, x1) = span(&cols)?;
    Some((x0, y0, x1, y1))
}

/// For each pixel, whether all (`all`) or any (`!all`) of `set` holds in the `2r+1` window along one
/// axis (rows if `horizontal`), clipped to the image: one pass of a separable erosion / dilation.
fn window_pass(set: &[bool], wu: usize, hu: usize, r: usize, horizontal: bool, all: bool) -> Vec<bool> {
    let (lines, len) = if horizontal { (hu, wu) } else { (wu, hu) };
    let at = |line: usize, k: usize| if horizontal { line * wu + k } else { k * wu + line };
    let mut out = vec![false; wu * hu];
    let mut prefix = vec![0usize; len + 1];
    for line in 0..lines {
        for k in 0..len {
            prefix[k + 1] = prefix[k] + set[at(line, k)] as usize;
        }
        for k in 0..len {
            let (a, b) = (k.saturating_sub(r), (k + r + 1).min(len));
            let n = prefix[b] - prefix[a];
            out[at(line, k)] = if all { n == b - a } else { n > 0 };
        }
    }
    out
}

fn window_all(set: &[bool], wu: usize, hu: usize, r: usize, horizontal: bool) -> Vec<bool> {
    window_pass(set, wu, hu, r, horizontal, true)
}

fn window_any(set: &[bool], wu: usize, hu: usize, r: usize, horizontal: bool) -> Vec<bool> {
    window_pass(set, wu, hu, r, horizontal, false)
}

/// Fraction of pixels that are holes ([`is_hole`]); 0 for an empty mask.
pub fn hole_fraction(mask: &GrayImage) -> f32 {
    let n = mask.len();
    if n == 0 {
        return 0.0;
    }
    mask.pixels().filter(|p| is_hole(p[0])).count() as f32 / n as f32
}

/// Grows the holes by `radius` pixels with a square (Chebyshev) structuring element of side
/// `2*radius+1`. The output is binary (0 / 255). Square rather than disc: it is separable
/// (two 1-D passes) and for the small radii used here (1-3 px) the difference is immaterial.
pub fn dilate(mask: &GrayImage, radius: u32) -> GrayImage {
    let (w, h) = mask.dimensions();
    let binary = |v: u8| if is_hole(v) { HOLE } else { KNOWN };
    if radius == 0 {
        return GrayImage::from_fn(w, h, |x, y| Luma([binary(mask.get_pixel(x, y)[0])]));
    }
    let r = radius as i64;
    let get_max = |line: &dyn Fn(i64) -> u8, i: i64, n: i64| -> u8 {
        let mut m = 0;
        for j in (i - r).max(0)..=(i + r).min(n - 1) {
            m = m.max(line(j));
        }
        m
    };
    let horizontal = GrayImage::from_fn(w, h, |x, y| {
        Luma([get_max(&|j| binary(mask.get_pixel(j as u32, y)[0]), x as i64, w as i64)])
    });
    GrayImage::from_fn(w, h, |x, y| {
        Luma([get_max(&|j| horizontal.get_pixel(x, j as u32)[0], y as i64, h as i64)])
    })
}

/// Mix several numbers into one RNG seed (a splitmix64 step per word): decorrelated seeds from small
/// integers such as (run seed, epoch, image index). The trainer's masks and `facerecon-infer --eval`'s
/// seeded holes both draw from it, so the same (seed, index) always means the same hole.
pub fn mix_seed(words: &[u64]) -> u64 {
    let mut h = 0x9e37_79b9_7f4a_7c15u64;
    for w in words {
        h ^= *w;
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
    }
    h
}

// The tests draw random masks and round-trip files: `cargo test -p facerecon-imaging --all-features`
// (the workspace's test run has both features on through the tools).
#[cfg(all(test, feature = "io", feature = "synth"))]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn holes(m: &GrayImage) -> usize {
        m.pixels().filter(|p| is_hole(p[0])).count()
    }

    /// Bounding box (x0, y0, x1, y1) inclusive of the holes.
    fn bbox(m: &GrayImage) -> (u32, u32, u32, u32) {
        let mut b = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in m.enumerate_pixels() {
            if is_hole(p[0]) {
                b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
            }
        }
        b
    }

    #[test]
    fn specs_parse_with_default_weight_and_reject_unknowns() {
        let s: MaskSpec = serde_json::from_str(r#"{"kind":"box","min":28,"max":28}"#).unwrap();
        assert_eq!(
            s,
            MaskSpec::Box {
                min: 28,
                max: 28,
                weight: 1.0
            }
        );
        let s: MaskSpec = serde_json::from_str(
            r#"{"kind":"strokes","width_min":6,"width_max":16,"count_min":1,"count_max":4,"weight":2.5}"#,
        )
        .unwrap();
        assert_eq!(s.weight(), 2.5);
        assert!(serde_json::from_str::<MaskSpec>(r#"{"kind":"circle","min":1,"max":2}"#).is_err());
        assert!(serde_json::from_str::<MaskSpec>(r#"{"kind":"box","min":1,"max":2,"colour":3}"#).is_err());
        let json = serde_json::to_string(&MaskSpec::Boxes {
            min: 1,
            max: 2,
            count_min: 1,
            count_max: 3,
            weight: 1.0,
        })
        .unwrap();
        assert!(json.contains(r#""kind":"boxes""#), "{json}");
    }

    #[test]
    fn sampler_validates() {
        assert!(MaskSampler::new(&[]).is_err());
        assert!(MaskSampler::new(&[MaskSpec::Box {
            min: 30,
            max: 20,
            weight: 1.0
        }])
        .is_err());
        assert!(MaskSampler::new(&[MaskSpec::Box {
            min: 0,
            max: 20,
            weight: 1.0
        }])
        .is_err());
        assert!(MaskSampler::new(&[MaskSpec::Box {
            min: 1,
            max: 2,
            weight: 0.0
        }])
        .is_err());
        assert!(MaskSampler::new(&[MaskSpec::Box {
            min: 1,
            max: 2,
            weight: f64::NAN
        }])
        .is_err());
        let bad = MaskSpec::Strokes {
            width_min: 2,
            width_max: 3,
            count_min: 3,
            count_max: 1,
            weight: 1.0,
        };
        let e = MaskSampler::new(&[
            MaskSpec::Box {
                min: 1,
                max: 2,
                weight: 1.0,
            },
            bad,
        ])
        .unwrap_err();
        assert!(e.to_string().contains("masks[1]"), "{e}");
    }

    #[test]
    fn box_spec_gives_one_inside_square() {
        let sampler = MaskSampler::new(&[MaskSpec::Box {
            min: 28,
            max: 28,
            weight: 1.0,
        }])
        .unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let mut corners = std::collections::HashSet::new();
        for _ in 0..200 {
            let m = sampler.sample(128, &mut rng);
            assert_eq!(m.dimensions(), (128, 128));
            assert_eq!(holes(&m), 28 * 28);
            let (x0, y0, x1, y1) = bbox(&m);
            assert_eq!((x1 - x0 + 1, y1 - y0 + 1), (28, 28));
            corners.insert((x0, y0));
        }
        assert!(corners.len() > 150, "positions should vary");
        // Side range and determinism.
        let sampler = MaskSampler::new(&[MaskSpec::Box {
            min: 6,
            max: 12,
            weight: 1.0,
        }])
        .unwrap();
        let sides: std::collections::HashSet<u32> = (0..200)
            .map(|_| {
                let (x0, _, x1, _) = bbox(&sampler.sample(32, &mut rng));
                x1 - x0 + 1
            })
            .collect();
        assert_eq!(sides, (6..=12).collect());
        let a = sampler.sample(32, &mut StdRng::seed_from_u64(1));
        assert_eq!(a, sampler.sample(32, &mut StdRng::seed_from_u64(1)));
        // A box larger than the image is clamped to it.
        let m = MaskSpec::Box {
            min: 50,
            max: 50,
            weight: 1.0,
        }
        .draw(20, &mut rng);
        assert_eq!(holes(&m), 400);
    }

    #[test]
    fn boxes_and_strokes_stay_in_plausible_ranges() {
        let mut rng = StdRng::seed_from_u64(3);
        let boxes = MaskSpec::Boxes {
            min: 8,
            max: 16,
            count_min: 2,
            count_max: 3,
            weight: 1.0,
        };
        for _ in 0..50 {
            let n = holes(&boxes.draw(64, &mut rng));
            assert!((64..=3 * 256).contains(&n), "{n}");
        }
        let strokes = MaskSpec::Strokes {
            width_min: 4,
            width_max: 8,
            count_min: 1,
            count_max: 3,
            weight: 1.0,
        };
        let mut fractions = Vec::new();
        for _ in 0..50 {
            let m = strokes.draw(64, &mut rng);
            let f = hole_fraction(&m);
            assert!(f > 0.0 && f < 0.9, "{f}");
            fractions.push(f);
            // Strokes are thin: never a single filled rectangle.
            let (x0, y0, x1, y1) = bbox(&m);
            assert!(holes(&m) < ((x1 - x0 + 1) * (y1 - y0 + 1)) as usize || holes(&m) < 100);
        }
        let mean = fractions.iter().sum::<f32>() / 50.0;
        assert!((0.03..0.5).contains(&mean), "mean hole fraction {mean}");
    }

    #[test]
    fn sampler_respects_weights() {
        let sampler = MaskSampler::new(&[
            MaskSpec::Box {
                min: 4,
                max: 4,
                weight: 0.0,
            },
            MaskSpec::Box {
                min: 8,
                max: 8,
                weight: 3.0,
            },
            MaskSpec::Box {
                min: 2,
                max: 2,
                weight: 1.0,
            },
        ])
        .unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        let (mut n8, mut n2) = (0, 0);
        for _ in 0..2000 {
            match holes(&sampler.sample(32, &mut rng)) {
                64 => n8 += 1,
                4 => n2 += 1,
                n => panic!("weight-0 spec or unexpected size drawn: {n}"),
            }
        }
        let share = n8 as f64 / 2000.0;
        assert!(
            (0.72..0.78).contains(&share),
            "share of the weight-3 spec: {share} ({n2} small)"
        );
    }

    #[test]
    fn box_mask_dilate_and_fraction() {
        let m = box_mask(10, 8, 8, 6, 5, 5); // clipped to 2x2
        assert_eq!(holes(&m), 4);
        assert_eq!(hole_fraction(&m), 4.0 / 80.0);
        let mut dot = GrayImage::new(9, 9);
        dot.put_pixel(4, 4, Luma([200]));
        assert_eq!(holes(&dilate(&dot, 0)), 1);
        assert_eq!(dilate(&dot, 0).get_pixel(4, 4)[0], 255, "dilate binarises");
        assert_eq!(holes(&dilate(&dot, 1)), 9);
        assert_eq!(holes(&dilate(&dot, 2)), 25);
        let mut corner = GrayImage::new(9, 9);
        corner.put_pixel(0, 0, Luma([255]));
        assert_eq!(holes(&dilate(&corner, 2)), 9);
        assert_eq!(hole_fraction(&GrayImage::new(0, 0)), 0.0);
    }

    #[test]
    fn load_mask_thresholds_and_resizes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.png");
        // 4x2 gray mask: left half 100 (known), right half 200 (hole).
        let g = GrayImage::from_fn(4, 2, |x, _| Luma([if x < 2 { 100 } else { 200 }]));
        g.save(&p).unwrap();
        let m = load_mask(&p, 4, 2).unwrap();
        assert_eq!(m.as_raw(), &vec![0, 0, 255, 255, 0, 0, 255, 255]);
        let m = load_mask(&p, 8, 4).unwrap();
        assert_eq!(m.dimensions(), (8, 4));
        assert_eq!(holes(&m), 16);
        assert_eq!(m.get_pixel(3, 3)[0], 0);
        assert_eq!(m.get_pixel(4, 0)[0], 255);
        // Colour masks work too; errors name the file.
        let c = RgbImage::from_fn(2, 1, |x, _| if x == 0 { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
        let pc = dir.path().join("c.bmp");
        c.save(&pc).unwrap();
        assert_eq!(load_mask(&pc, 2, 1).unwrap().as_raw(), &vec![255, 0]);
        let e = load_mask(&dir.path().join("none.png"), 2, 2).unwrap_err();
        assert!(e.to_string().contains("none.png"));
        // Another aspect ratio: an error naming the file and both sizes, unless stretching is asked.
        let e = load_mask(&p, 4, 4).unwrap_err();
        assert!(matches!(e, ImagingError::MaskAspect { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("m.png") && msg.contains("4x2") && msg.contains("4x4"),
            "{msg}"
        );
        assert_eq!(load_mask_fit(&p, 4, 4, MaskFit::Stretch).unwrap().dimensions(), (4, 4));
    }

    #[test]
    fn same_shape_allows_rounding_only() {
        assert!(same_shape((60, 40), (120, 80)));
        assert!(same_shape((61, 40), (120, 80)));
        assert!(same_shape((500, 333), (1000, 667)));
        assert!(same_shape((1000, 667), (500, 333)));
        assert!(same_shape((128, 128), (1024, 1024)));
        assert!(!same_shape((64, 64), (120, 80)));
        assert!(!same_shape((63, 40), (120, 80)));
        assert!(!same_shape((100, 100), (100, 98)));
    }

    fn jpeg_round_trip(img: &RgbImage, quality: u8) -> RgbImage {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
            .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
            .unwrap();
        image::load_from_memory(&buf).unwrap().to_rgb8()
    }

    #[test]
    fn dark_box_is_detected_before_and_after_jpeg() {
        for seed in [0u64, 1, 2, 5] {
            let face = crate::synth::synth_face(seed, 128);
            let bx = box_mask(128, 128, 50, 40, 28, 28);
            let corrupted = crate::composite::zero_holes(&face, &bx);
            for (label, img) in [
                ("png", corrupted.clone()),
                ("jpeg q75", jpeg_round_trip(&corrupted, 75)),
            ] {
                let found = detect_dark_holes(&img);
                let grown = dilate(&bx, 2);
                for (x, y, p) in bx.enumerate_pixels() {
                    if p[0] == 255 {
                        assert_eq!(
                            found.get_pixel(x, y)[0],
                            255,
                            "seed {seed} {label}: box pixel ({x},{y}) missed"
                        );
                    }
                }
                for (x, y, p) in found.enumerate_pixels() {
                    if p[0] == 255 {
                        assert_eq!(
                            grown.get_pixel(x, y)[0],
                            255,
                            "seed {seed} {label}: false hole at ({x},{y})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn small_dark_features_are_not_holes() {
        // Synthetic faces have black pupils, dark lids and nostrils: none may become a hole.
        for seed in 0..24 {
            let face = crate::synth::synth_face(seed, 128);
            assert_eq!(holes(&detect_dark_holes(&face)), 0, "seed {seed}");
        }
        // Pure-black eyes of 9x9 (a side < 10) on a plain face; a 10x10 box is a hole.
        let mut face = RgbImage::from_pixel(64, 64, Rgb([200, 160, 140]));
        for (x0, side) in [(16u32, 9u32), (40, 9)] {
            for y in 20..20 + side {
                for x in x0..x0 + side {
                    face.put_pixel(x, y, Rgb([0, 0, 0]));
                }
            }
        }
        assert_eq!(holes(&detect_dark_holes(&face)), 0);
        // A flat dark-grey box is not blacked out; a black one is (grown by 1 pixel).
        for y in 40..50 {
            for x in 10..20 {
                face.put_pixel(x, y, Rgb([5, 10, 16]));
            }
        }
        assert_eq!(holes(&detect_dark_holes(&face)), 0, "10x10 dark grey box");
        for y in 40..50 {
            for x in 10..20 {
                face.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
        assert_eq!(
            holes(&detect_dark_holes(&face)),
            12 * 12,
            "10x10 black box dilated by 1"
        );
        // The same box on a dark surface does not stand out: not a hole.
        let mut dim = RgbImage::from_pixel(64, 64, Rgb([30, 25, 20]));
        paint_box(&mut dim, (20, 20, 16, 16));
        assert_eq!(holes(&detect_dark_holes(&dim)), 0, "black box on a dark surface");
    }

    // --- The default detection must never repaint a real photo (issue 15, item 12). ---

    /// A plain face (skin with mild noise) on a `size x size` canvas, with `paint` applied to the
    /// pixels outside the face ellipse (hair, background, night).
    fn portrait(size: u32, seed: u64, paint: impl Fn(u32, u32, &mut StdRng) -> Rgb<u8>) -> RgbImage {
        let mut rng = StdRng::seed_from_u64(seed);
        RgbImage::from_fn(size, size, |x, y| {
            let (fx, fy) = (x as f32 / size as f32 - 0.5, y as f32 / size as f32 - 0.6);
            if fx * fx / 0.07 + fy * fy / 0.1 < 1.0 {
                let v = rng.gen_range(0..10u8);
                Rgb([190 + v, 150 + v, 130 + v])
            } else {
                paint(x, y, &mut rng)
            }
        })
    }

    /// Near-black hair: diagonal strands of 0-6 between darker-than-16 and lighter texture.
    fn hair(x: u32, y: u32, rng: &mut StdRng) -> Rgb<u8> {
        let v = if ((2 * x + y) / 4).is_multiple_of(3) {
            rng.gen_range(0..7u8)
        } else {
            rng.gen_range(2..30u8)
        };
        Rgb([v, v, v.saturating_add(rng.gen_range(0..3))])
    }

    fn dark_textures() -> Vec<(&'static str, RgbImage)> {
        let mut cases = Vec::new();
        for seed in 0..3 {
            cases.push(("dark hair", portrait(160, seed, hair)));
            // A dark, noisy background (a dim room) around the face.
            cases.push((
                "dark background",
                portrait(160, 10 + seed, |_, y, rng| {
                    let v = 3 + (y / 40) as u8 + rng.gen_range(0..9u8);
                    Rgb([v, v + 1, v])
                }),
            ));
        }
        // A night shot: a low-key gradient with noise, crushed-black round shapes (exactly 0) and
        // a few lights; no face.
        let mut rng = StdRng::seed_from_u64(5);
        let blobs: Vec<(f32, f32, f32)> = (0..6)
            .map(|_| {
                (
                    rng.gen_range(20.0..180.0),
                    rng.gen_range(20.0..180.0),
                    rng.gen_range(12.0..30.0),
                )
            })
            .collect();
        let night = RgbImage::from_fn(200, 200, |x, y| {
            let (xf, yf) = (x as f32, y as f32);
            if blobs
                .iter()
                .any(|&(cx, cy, r)| (xf - cx).powi(2) + (yf - cy).powi(2) < r * r)
            {
                return Rgb([0, 0, 0]);
            }
            if (x % 50 == 7) && (y % 60 == 9) {
                return Rgb([255, 230, 160]);
            }
            let v = (2.0 + 14.0 * yf / 200.0) as u8 + rng.gen_range(0..5u8);
            Rgb([v / 2, v / 2, v])
        });
        cases.push(("night shot", night));
        // Exactly black studio background and letterbox bars: dark areas that touch the borders
        // across the whole image.
        cases.push(("black studio background", portrait(128, 4, |_, _, _| Rgb([0, 0, 0]))));
        let mut letterbox = crate::synth::synth_face(3, 128);
        for (_, y, p) in letterbox.enumerate_pixels_mut() {
            if !(16..112).contains(&y) {
                *p = Rgb([0, 0, 0]);
            }
        }
        cases.push(("letterbox", letterbox));
        cases.push(("all black", RgbImage::new(64, 48)));
        cases
    }

    #[test]
    fn dark_hair_backgrounds_and_night_shots_are_not_holes() {
        for (label, img) in dark_textures() {
            for (format, decoded) in [("png", img.clone()), ("jpeg q90", jpeg_round_trip(&img, 90))] {
                let n = holes(&detect_dark_holes(&decoded));
                assert_eq!(n, 0, "{label} ({format}): {n} pixels taken for a hole");
            }
        }
    }

    fn noise_rgb(w: u32, h: u32, seed: u64) -> RgbImage {
        let mut rng = StdRng::seed_from_u64(seed);
        RgbImage::from_fn(w, h, |_, _| {
            Rgb([rng.gen_range(40..240), rng.gen_range(40..240), rng.gen_range(40..240)])
        })
    }

    fn paint_box(img: &mut RgbImage, (x0, y0, w, h): (u32, u32, u32, u32)) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                img.put_pixel(x, y, Rgb([0, 0, 0]));
            }
        }
    }

    /// `found` holds every pixel of the box and nothing farther than `slack` pixels from it.
    fn assert_finds_box(found: &GrayImage, rect: (u32, u32, u32, u32), slack: u32, label: &str) {
        let (w, h) = found.dimensions();
        let bx = box_mask(w, h, rect.0, rect.1, rect.2, rect.3);
        let grown = dilate(&bx, slack);
        for (x, y, p) in bx.enumerate_pixels() {
            if p[0] == HOLE {
                assert_eq!(found.get_pixel(x, y)[0], HOLE, "{label}: box pixel ({x},{y}) missed");
            }
        }
        for (x, y, p) in found.enumerate_pixels() {
            if p[0] == HOLE {
                assert_eq!(grown.get_pixel(x, y)[0], HOLE, "{label}: false hole at ({x},{y})");
            }
        }
    }

    #[test]
    fn black_boxes_are_found_in_png_and_jpeg_even_next_to_dark_hair() {
        // Next to bright pixels the hole is the box grown by 1 pixel (and its dark JPEG fringe);
        // where the box touches other dark pixels (hair), the dark lines along its edge may join it
        // (a few pixels: JPEG smooths the hair next to the box), the rest of the hair may not.
        let faces = [
            ("synthetic face", crate::synth::synth_face(2, 128), (50, 60, 28, 28), 2),
            (
                "face on dark background",
                dark_textures()[1].1.clone(),
                (60, 80, 30, 24),
                2,
            ),
            // JPEG rings hardest next to white noise: at quality 75 it brightens the box's outer 4
            // lines past 16, and the hole misses them (`--dilate 3` covers them; growing into dark
            // neighbours by default would repaint hair); at 90 they are found.
            ("white noise", noise_rgb(100, 80, 3), (30, 20, 20, 20), 2),
            // The box's top rows lie in the dark hair above the face.
            ("box touching dark hair", portrait(160, 1, hair), (64, 40, 32, 30), 4),
        ];
        for (label, face, rect, slack) in faces {
            let mut img = face.clone();
            paint_box(&mut img, rect);
            for (format, decoded) in [
                ("png", img.clone()),
                ("jpeg q90", jpeg_round_trip(&img, 90)),
                ("jpeg q75", jpeg_round_trip(&img, 75)),
            ] {
                if label == "white noise" && format == "jpeg q75" {
                    continue;
                }
                let found = detect_dark_holes(&decoded);
                assert_finds_box(&found, rect, slack, &format!("{label} ({format})"));
            }
        }
    }

    #[test]
    fn a_box_inside_dark_hair_does_not_stand_out_and_is_left_alone() {
        let mut img = portrait(160, 2, hair);
        paint_box(&mut img, (6, 100, 20, 40));
        for (format, decoded) in [("png", img.clone()), ("jpeg q90", jpeg_round_trip(&img, 90))] {
            assert_eq!(holes(&detect_dark_holes(&decoded)), 0, "{format}");
        }
    }

    #[test]
    fn round_black_shapes_are_not_boxes() {
        // Exactly black discs and ellipses (a black button, a ball, a pupil in close-up) on a
        // bright surface: they stand out like a box, but their corners are round.
        for (rx, ry) in [
            (6.0f32, 6.0f32),
            (9.0, 9.0),
            (14.0, 14.0),
            (24.0, 24.0),
            (30.0, 18.0),
            (12.0, 28.0),
        ] {
            let img = RgbImage::from_fn(100, 100, |x, y| {
                let (dx, dy) = ((x as f32 + 0.5 - 50.0) / rx, (y as f32 + 0.5 - 50.0) / ry);
                if dx * dx + dy * dy <= 1.0 {
                    Rgb([0, 0, 0])
                } else {
                    Rgb([210, 190, 170])
                }
            });
            for (format, decoded) in [("png", img.clone()), ("jpeg q90", jpeg_round_trip(&img, 90))] {
                assert_eq!(holes(&detect_dark_holes(&decoded)), 0, "ellipse {rx}x{ry} ({format})");
            }
        }
    }

    #[test]
    fn black_regions_at_the_edge_are_not_holes() {
        // Alignment padding (a black wedge), a black bar along one side, a box in a corner.
        let face = crate::synth::synth_face(6, 128);
        let mut wedge = face.clone();
        let mut bar = face.clone();
        let mut corner = face.clone();
        for (x, y, p) in wedge.enumerate_pixels_mut() {
            if y > 100 && x < (y - 100) * 3 {
                *p = Rgb([0, 0, 0]);
            }
        }
        paint_box(&mut bar, (116, 30, 12, 98));
        paint_box(&mut corner, (0, 0, 30, 24));
        for (label, img) in [("wedge", wedge), ("bar", bar), ("corner box", corner)] {
            assert_eq!(holes(&detect_dark_holes(&img)), 0, "{label}");
        }
        // One pixel in from the edge, a box is a hole again.
        let mut inside = face;
        paint_box(&mut inside, (1, 1, 30, 24));
        assert_finds_box(
            &detect_dark_holes(&inside),
            (1, 1, 30, 24),
            2,
            "box 1 pixel from the edge",
        );
    }

    #[test]
    fn detection_skips_ineligible_pixels() {
        let mut img = RgbImage::from_pixel(64, 64, Rgb([200, 180, 160]));
        paint_box(&mut img, (10, 10, 20, 20));
        assert_eq!(holes(&detect_dark_holes(&img)), 22 * 22);
        assert_eq!(holes(&detect_dark_holes_where(&img, |x, _| x >= 40)), 0);
    }
}
