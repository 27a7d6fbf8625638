//! What a mask says: which pixels are holes.
//!
//! An 8-bit mask (a mask file, a `GrayImage`, the C API's mask buffer) marks a hole with [`HOLE`] (255)
//! and a known pixel with [`KNOWN`] (0); any value at or above [`HOLE_THRESHOLD`] counts as a hole, so a
//! mask saved with anti-aliased or JPEG-blurred edges still reads as intended. A float mask (the
//! network's `mask` input, `[N,1,S,S]`) holds 1.0 for a hole and 0.0 for a known pixel (see
//! [`crate::MASK_CONVENTION`]); a value at or above [`HOLE_THRESHOLD_F32`] counts as a hole.

/// The 8-bit value written for a hole.
pub const HOLE: u8 = 255;

/// The 8-bit value written for a known pixel.
pub const KNOWN: u8 = 0;

/// 8-bit mask values at or above this are holes, the ones below are known.
pub const HOLE_THRESHOLD: u8 = 128;

/// Float mask values at or above this are holes (the network's mask is 1.0 = hole, 0.0 = known).
pub const HOLE_THRESHOLD_F32: f32 = 0.5;

/// Whether an 8-bit mask value marks a hole (`value >= HOLE_THRESHOLD`).
///
/// ```
/// use facerecon_contract::mask::{is_hole, HOLE, KNOWN};
/// assert!(is_hole(HOLE) && is_hole(128));
/// assert!(!is_hole(KNOWN) && !is_hole(127));
/// ```
#[inline]
pub fn is_hole(value: u8) -> bool {
    value >= HOLE_THRESHOLD
}

/// Whether a float mask value marks a hole (`value >= HOLE_THRESHOLD_F32`; NaN is not a hole).
///
/// ```
/// use facerecon_contract::mask::is_hole_f32;
/// assert!(is_hole_f32(1.0) && is_hole_f32(0.5));
/// assert!(!is_hole_f32(0.0) && !is_hole_f32(0.49) && !is_hole_f32(f32::NAN));
/// ```
#[inline]
pub fn is_hole_f32(value: f32) -> bool {
    value >= HOLE_THRESHOLD_F32
}

/// The float mask value of an 8-bit one: 1.0 for a hole, 0.0 for a known pixel.
///
/// ```
/// use facerecon_contract::mask::to_f32;
/// assert_eq!([0u8, 127, 128, 255].map(to_f32), [0.0, 0.0, 1.0, 1.0]);
/// ```
#[inline]
pub fn to_f32(value: u8) -> f32 {
    if is_hole(value) {
        1.0
    } else {
        0.0
    }
}

/// The 8-bit mask value of a float one: [`HOLE`] or [`KNOWN`].
///
/// ```
/// use facerecon_contract::mask::{from_f32, HOLE, KNOWN};
/// assert_eq!([0.0f32, 0.49, 0.5, 1.0].map(from_f32), [KNOWN, KNOWN, HOLE, HOLE]);
/// ```
#[inline]
pub fn from_f32(value: f32) -> u8 {
    if is_hole_f32(value) {
        HOLE
    } else {
        KNOWN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_splits_the_byte_range_in_two() {
        assert_eq!((HOLE, KNOWN, HOLE_THRESHOLD, HOLE_THRESHOLD_F32), (255, 0, 128, 0.5));
        assert_eq!((0..=255u8).filter(|&v| is_hole(v)).count(), 128);
        assert!((0..=255u8).all(|v| is_hole(from_f32(to_f32(v))) == is_hole(v)));
    }
}
