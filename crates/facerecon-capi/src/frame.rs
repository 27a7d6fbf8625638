//! Caller-owned pixel buffers: checking their description, copying them in, writing results out.
//!
//! Inputs are copied into owned images before anything is written, and outputs are written row by
//! row with raw copies, never through a `&mut [u8]` that could alias an input: this is what makes
//! `out_rgb == rgb` (in-place) sound.

use facerecon_runtime::{GrayImage, Region, RgbImage};

use crate::status::Failure;

/// Largest frame accepted, in pixels (2^28, e.g. 16384 x 16384): catches garbage sizes before they
/// turn into huge allocations.
pub const MAX_PIXELS: u64 = 1 << 28;

/// One frame as the C caller described it (`facerecon_frame` of include/facerecon.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    /// RGB pixels, 3 bytes each.
    pub rgb: *const u8,
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Bytes from one row of `rgb` to the next (>= 3 * width).
    pub stride_bytes: u32,
    /// One byte per pixel, >= 128 = hole (`facerecon_contract::HOLE_THRESHOLD`).
    pub mask: *const u8,
    /// Bytes from one row of `mask` to the next (>= width).
    pub mask_stride: u32,
    /// Where the result goes (may equal `rgb`).
    pub out_rgb: *mut u8,
    /// Bytes from one row of `out_rgb` to the next (>= 3 * width).
    pub out_stride: u32,
}

impl Frame {
    /// Check everything that can be checked without dereferencing; `what` names the frame in errors.
    pub fn check(&self, what: &str) -> Result<(), Failure> {
        let bad = |msg: String| Err(Failure::invalid(format!("{what}: {msg}")));
        if self.rgb.is_null() {
            return bad("rgb is NULL".into());
        }
        if self.mask.is_null() {
            return bad("mask is NULL".into());
        }
        if self.out_rgb.is_null() {
            return bad("out_rgb is NULL".into());
        }
        let (w, h) = (self.width as u64, self.height as u64);
        if w == 0 || h == 0 {
            return bad(format!("frame is {w}x{h}; both sides must be > 0"));
        }
        if w * h > MAX_PIXELS {
            return bad(format!("frame is {w}x{h}, more than the {MAX_PIXELS} pixels accepted"));
        }
        for (name, stride, row) in [
            ("stride_bytes", self.stride_bytes, 3 * w),
            ("mask_stride", self.mask_stride, w),
            ("out_stride", self.out_stride, 3 * w),
        ] {
            if (stride as u64) < row {
                return bad(format!(
                    "{name} = {stride} is shorter than a row ({row} bytes for width {w})"
                ));
            }
            // The last byte touched must be addressable (pointer offsets are isize).
            if (h - 1) * stride as u64 + row > isize::MAX as u64 {
                return bad(format!("{name} = {stride} x {h} rows overflows the address space"));
            }
        }
        Ok(())
    }

    /// Copy the frame and its mask into owned images.
    ///
    /// # Safety
    /// [`Self::check`] passed, and `rgb` / `mask` point to `height` readable rows as described.
    pub unsafe fn read(&self) -> (RgbImage, GrayImage) {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut rgb = Vec::with_capacity(3 * w * h);
        let mut mask = Vec::with_capacity(w * h);
        for y in 0..h {
            // Shared slices of the caller's memory live only for this copy.
            // SAFETY: `check` passed (non-null pointers, stride >= row length, no overflow) and the
            // caller guarantees `height` readable rows of `stride_bytes`, so row `y`'s `3 * w` bytes
            // lie inside the caller's RGB buffer.
            let rgb_row = unsafe { std::slice::from_raw_parts(self.rgb.add(y * self.stride_bytes as usize), 3 * w) };
            rgb.extend_from_slice(rgb_row);
            // SAFETY: as above, for the mask's `height` rows of `mask_stride` bytes, `w` of them read.
            let mask_row = unsafe { std::slice::from_raw_parts(self.mask.add(y * self.mask_stride as usize), w) };
            mask.extend_from_slice(mask_row);
        }
        let rgb = RgbImage::from_raw(self.width, self.height, rgb).expect("3*w*h bytes");
        let mask = GrayImage::from_raw(self.width, self.height, mask).expect("w*h bytes");
        (rgb, mask)
    }

    /// Write `image` (the frame's size) to `out_rgb`.
    ///
    /// # Safety
    /// [`Self::check`] passed, `out_rgb` points to `height` writable rows as described, and nothing
    /// else reads or writes them during the call.
    pub unsafe fn write(&self, image: &RgbImage) {
        debug_assert_eq!(image.dimensions(), (self.width, self.height));
        let row = 3 * self.width as usize;
        for (y, src) in image.as_raw().chunks_exact(row).enumerate() {
            // `src` is ours, so it cannot overlap the caller's buffer, even when out_rgb == rgb.
            // SAFETY: `check` passed and the caller guarantees `height` writable rows of `out_stride`
            // bytes that nothing else touches during the call, so row `y`'s `row` bytes are ours to write.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.out_rgb.add(y * self.out_stride as usize), row) };
        }
    }
}

/// `facerecon_box` of include/facerecon.h: a rectangle of a frame, in pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoleBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

impl From<HoleBox> for Region {
    fn from(b: HoleBox) -> Region {
        Region {
            x: b.x,
            y: b.y,
            width: b.width,
            height: b.height,
        }
    }
}

impl Frame {
    /// Copy the `rect` of the caller's mask (and, if `rgb`, of its pixels) into `mask` / `image`,
    /// images of the frame's size; the rest of them is left as it is.
    ///
    /// # Safety
    /// [`Self::check`] passed, `rgb` / `mask` point to `height` readable rows as described, `rect`
    /// lies inside the frame, and `image` / `mask` have the frame's size.
    pub unsafe fn read_rect(&self, image: &mut RgbImage, mask: &mut GrayImage, rect: Region, rgb: bool) {
        debug_assert_eq!(image.dimensions(), (self.width, self.height));
        debug_assert_eq!(mask.dimensions(), (self.width, self.height));
        debug_assert!(rect.x + rect.width <= self.width && rect.y + rect.height <= self.height);
        let (w, x, rw) = (self.width as usize, rect.x as usize, rect.width as usize);
        for y in rect.y as usize..(rect.y + rect.height) as usize {
            // SAFETY: `check` passed and the caller guarantees `height` readable rows of `mask_stride`
            // bytes; row `y`'s bytes `x..x + rw` lie inside its first `width`.
            let src = unsafe { std::slice::from_raw_parts(self.mask.add(y * self.mask_stride as usize + x), rw) };
            mask.as_mut()[y * w + x..][..rw].copy_from_slice(src);
            if rgb {
                // SAFETY: as above, for the RGB rows of `stride_bytes` bytes, 3 bytes per pixel.
                let src =
                    unsafe { std::slice::from_raw_parts(self.rgb.add(y * self.stride_bytes as usize + 3 * x), 3 * rw) };
                image.as_mut()[3 * (y * w + x)..][..3 * rw].copy_from_slice(src);
            }
        }
    }

    /// Write the `rect` of `image` (the frame's size) to `out_rgb`; when `out_rgb` is not the
    /// input in place (`rgb` with the same stride), every other pixel of the output is first copied
    /// from the input.
    ///
    /// # Safety
    /// [`Self::check`] passed, `rgb` / `out_rgb` point to `height` readable / writable rows as
    /// described, nothing else writes them during the call, and `rect` lies inside the frame.
    pub unsafe fn write_rect(&self, image: &RgbImage, rect: Region) {
        debug_assert_eq!(image.dimensions(), (self.width, self.height));
        let in_place = self.out_rgb.cast_const() == self.rgb && self.out_stride == self.stride_bytes;
        let row = 3 * self.width as usize;
        if !in_place {
            for y in 0..self.height as usize {
                // `copy`, not `copy_nonoverlapping`: a caller may pass overlapping rows by mistake.
                // SAFETY: `check` passed; the caller guarantees `height` readable rows of `rgb` and
                // writable rows of `out_rgb`, `row` bytes each.
                unsafe {
                    std::ptr::copy(
                        self.rgb.add(y * self.stride_bytes as usize),
                        self.out_rgb.add(y * self.out_stride as usize),
                        row,
                    )
                };
            }
        }
        let (x, rw) = (rect.x as usize, rect.width as usize);
        for y in rect.y as usize..(rect.y + rect.height) as usize {
            let src = &image.as_raw()[y * row + 3 * x..][..3 * rw];
            // `src` is ours, so it cannot overlap the caller's buffer.
            // SAFETY: `check` passed, `rect` lies inside the frame, and the caller guarantees row `y`
            // of `out_rgb` is ours to write during the call.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.as_ptr(),
                    self.out_rgb.add(y * self.out_stride as usize + 3 * x),
                    3 * rw,
                )
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &mut [u8], mask: &[u8], w: u32, h: u32, stride: u32) -> Frame {
        // One pointer for both, as a C caller doing in-place work would pass.
        let p = buf.as_mut_ptr();
        Frame {
            rgb: p,
            width: w,
            height: h,
            stride_bytes: stride,
            mask: mask.as_ptr(),
            mask_stride: w,
            out_rgb: p,
            out_stride: stride,
        }
    }

    #[test]
    fn strided_round_trip_in_place() {
        let (w, h, stride) = (3u32, 2u32, 11u32);
        let mut buf: Vec<u8> = (0..stride as u8 * 2).collect();
        let mask = vec![0u8, 255, 0, 128, 0, 0];
        let f = frame(&mut buf, &mask, w, h, stride);
        f.check("frame").unwrap();
        // SAFETY: `check` passed and `buf` / `mask` hold the 2 rows of `stride` / `w` bytes described.
        let (img, m) = unsafe { f.read() };
        assert_eq!(img.get_pixel(0, 1).0, [11, 12, 13]);
        assert_eq!(m.get_pixel(0, 1).0, [128]);
        let mut inverted = img.clone();
        inverted.iter_mut().for_each(|v| *v = 255 - *v);
        // SAFETY: as for `read`; `buf` is not otherwise borrowed during the call.
        unsafe { f.write(&inverted) };
        // Row padding (bytes 9, 10, 20, 21) is untouched.
        assert_eq!(&buf[..11], &[255, 254, 253, 252, 251, 250, 249, 248, 247, 9, 10]);
        assert_eq!(&buf[20..22], &[20, 21]);
        assert_eq!(buf[11], 255 - 11);
    }

    #[test]
    fn rejects_bad_descriptions() {
        let mut buf = vec![0u8; 64];
        let mask = vec![0u8; 16];
        let cases = [
            (
                Frame {
                    rgb: std::ptr::null(),
                    ..frame(&mut buf, &mask, 2, 2, 6)
                },
                "rgb is NULL",
            ),
            (
                Frame {
                    mask: std::ptr::null(),
                    ..frame(&mut buf, &mask, 2, 2, 6)
                },
                "mask is NULL",
            ),
            (
                Frame {
                    out_rgb: std::ptr::null_mut(),
                    ..frame(&mut buf, &mask, 2, 2, 6)
                },
                "out_rgb is NULL",
            ),
            (frame(&mut buf, &mask, 0, 2, 6), "both sides"),
            (frame(&mut buf, &mask, 2, 2, 5), "stride_bytes = 5 is shorter"),
            (
                Frame {
                    mask_stride: 1,
                    ..frame(&mut buf, &mask, 2, 2, 6)
                },
                "mask_stride = 1",
            ),
            (
                Frame {
                    out_stride: 0,
                    ..frame(&mut buf, &mask, 2, 2, 6)
                },
                "out_stride = 0",
            ),
            (frame(&mut buf, &mask, 1 << 15, 1 << 14, 3 << 15), "more than"),
        ];
        for (f, want) in cases {
            let err = f.check("frame 3").unwrap_err();
            assert!(
                err.message.starts_with("frame 3: ") && err.message.contains(want),
                "{err:?} vs {want}"
            );
        }
    }
}
