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
    let end = (area.y + area.height) as usize;
    for y in area.y as usize..end {
        let row = &raw[y * stride + ax..y * stride + ax + aw];
        // The mask is usually cold (the network ran since it was written): ask for a row a few
        // rows ahead, so that the reads of this one overlap with its transfer.
        if y + SCAN_PREFETCH_ROWS < end {
            let ahead = (y + SCAN_PREFETCH_ROWS) * stride + ax;
            crate::resize::prefetch(&raw[ahead..ahead + aw]);
        }
        // Most rows of a camera frame hold no hole: one branch-free pass, 8 bytes at a time, decides that.
        if !row_has_hole(row) {
            continue;
        }
        let first = first_hole(row).expect("the row has a hole");
        let last = last_hole(row).expect("the row has a hole");
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

/// How many rows ahead [`hole_bbox_in`] prefetches the mask.
const SCAN_PREFETCH_ROWS: usize = 4;

// `row_has_hole` tests the top bit of each byte: that is `is_hole` only while the threshold is 128.
const _: () = assert!(HOLE_THRESHOLD == 128, "row_has_hole assumes the hole threshold 128");

/// Whether any byte of `row` is a hole (>= 128, i.e. has its top bit set): the bytes are OR-ed
/// together 8 at a time (a loop the compiler vectorises), and the top bits tested once. About ten
/// times fewer operations than a per-byte test on the 2 M bytes of a 1920x1080 mask.
pub(crate) fn row_has_hole(row: &[u8]) -> bool {
    let words = row.chunks_exact(8);
    let mut acc = words.remainder().iter().fold(0u64, |acc, &v| acc | v as u64);
    for word in words {
        acc |= u64::from_ne_bytes(word.try_into().expect("8 bytes"));
    }
    acc & TOP_BITS != 0
}

/// The top bits of the bytes of an 8-byte word read little-endian, as by [`row_has_hole`].
const TOP_BITS: u64 = 0x8080_8080_8080_8080;

/// The index of the first hole byte of `row`, 8 bytes at a time.
pub(crate) fn first_hole(row: &[u8]) -> Option<usize> {
    let words = row.chunks_exact(8);
    let tail = words.remainder();
    for (i, word) in words.enumerate() {
        let top = u64::from_le_bytes(word.try_into().expect("8 bytes")) & TOP_BITS;
        if top != 0 {
            return Some(i * 8 + top.trailing_zeros() as usize / 8);
        }
    }
    let start = row.len() - tail.len();
    tail.iter().position(|&v| is_hole(v)).map(|i| start + i)
}

/// The index of the last hole byte of `row`, 8 bytes at a time from the end.
pub(crate) fn last_hole(row: &[u8]) -> Option<usize> {
    let words = row.rchunks_exact(8);
    let head = words.remainder();
    for (j, word) in words.enumerate() {
        let top = u64::from_le_bytes(word.try_into().expect("8 bytes")) & TOP_BITS;
        if top != 0 {
            return Some(row.len() - (j + 1) * 8 + 7 - top.leading_zeros() as usize / 8);
        }
    }
    head.iter().rposition(|&v| is_hole(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_test_agrees_with_is_hole_at_every_position_and_value() {
        // Every length up to three words (remainder handling), every position, the values around
        // the threshold and the extremes.
        for len in 1..=24 {
            for pos in 0..len {
                for value in [0u8, 1, 127, 128, 129, 200, 255] {
                    let mut row = vec![127u8; len];
                    row[pos] = value;
                    assert_eq!(row_has_hole(&row), is_hole(value), "len {len} pos {pos} value {value}");
                    // A second hole byte before or after it must not confuse the first/last search.
                    let hole = is_hole(value).then_some(pos);
                    assert_eq!(first_hole(&row), hole, "first: len {len} pos {pos} value {value}");
                    assert_eq!(last_hole(&row), hole, "last: len {len} pos {pos} value {value}");
                    for other in 0..len {
                        let mut two = row.clone();
                        two[other] = 200;
                        let (lo, hi) = match hole {
                            Some(p) => (p.min(other), p.max(other)),
                            None => (other, other),
                        };
                        assert_eq!(first_hole(&two), Some(lo), "first: {two:?}");
                        assert_eq!(last_hole(&two), Some(hi), "last: {two:?}");
                    }
                }
            }
            assert!(!row_has_hole(&vec![127u8; len]));
        }
        assert!(!row_has_hole(&[]));
    }
}
