//! The hole: which mask values count as holes, and where they are. A leaf module (no other module
//! of this crate is used here) so that [`crate::pipeline`] and [`crate::feather`] both build on it
//! without depending on each other.

use image::GrayImage;

/// Mask values at or above this count as holes, and whether a mask value marks a hole: the model-file
/// contract's one definition (`facerecon-contract`, 255 = hole). Everything in this crate that classifies
/// a mask pixel goes through [`is_hole`].
pub use facerecon_contract::{is_hole, HOLE_THRESHOLD};

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

impl Region {
    /// Whether `inner` lies entirely inside `self`.
    pub fn contains(&self, inner: &Region) -> bool {
        inner.x >= self.x
            && inner.y >= self.y
            && inner.x + inner.width <= self.x + self.width
            && inner.y + inner.height <= self.y + self.height
    }

    /// The overlap of two rectangles, `None` when they do not overlap.
    pub fn intersect(&self, other: &Region) -> Option<Region> {
        let (x0, y0) = (self.x.max(other.x), self.y.max(other.y));
        let x1 = (self.x + self.width).min(other.x + other.width);
        let y1 = (self.y + self.height).min(other.y + other.height);
        (x0 < x1 && y0 < y1).then(|| Region {
            x: x0,
            y: y0,
            width: x1 - x0,
            height: y1 - y0,
        })
    }
}

/// The smallest rectangle holding every hole pixel, or `None` for a mask without holes.
///
/// ```
/// use facerecon_runtime::{pipeline::hole_bbox, Region};
/// use facerecon_runtime::{GrayImage, Luma};
/// let mut mask = GrayImage::new(10, 8);
/// mask.put_pixel(2, 3, Luma([255]));
/// mask.put_pixel(5, 4, Luma([128])); // >= 128 is a hole
/// mask.put_pixel(7, 7, Luma([127])); // below it, a known pixel
/// assert_eq!(hole_bbox(&mask), Some(Region { x: 2, y: 3, width: 4, height: 2 }));
/// assert_eq!(hole_bbox(&GrayImage::new(10, 8)), None);
/// ```
pub fn hole_bbox(mask: &GrayImage) -> Option<Region> {
    let (width, height) = mask.dimensions();
    hole_bbox_in(
        mask,
        Region {
            x: 0,
            y: 0,
            width,
            height,
        },
    )
}

/// The smallest rectangle holding every hole pixel inside `area` (which must lie inside the mask),
/// or `None` when `area` holds none. Reads rows as byte slices: on a camera frame this runs over
/// millions of pixels per call.
pub fn hole_bbox_in(mask: &GrayImage, area: Region) -> Option<Region> {
    if area.width == 0 || area.height == 0 {
        return None;
    }
    let stride = mask.width() as usize;
    let raw = mask.as_raw();
    let (ax, aw) = (area.x as usize, area.width as usize);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in area.y as usize..(area.y + area.height) as usize {
        let row = &raw[y * stride + ax..y * stride + ax + aw];
        // Most rows of a camera frame hold no hole: one branch-free pass decides that.
        if !row.iter().fold(false, |any, &v| any | is_hole(v)) {
            continue;
        }
        let first = row.iter().position(|&v| is_hole(v)).expect("the row has a hole");
        let last = row.iter().rposition(|&v| is_hole(v)).expect("the row has a hole");
        (x0, x1) = (x0.min(first), x1.max(last));
        y0 = y0.min(y);
        y1 = y;
    }
    (x0 != usize::MAX).then(|| Region {
        x: (ax + x0) as u32,
        y: y0 as u32,
        width: (x1 - x0 + 1) as u32,
        height: (y1 - y0 + 1) as u32,
    })
}
