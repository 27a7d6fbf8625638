//! Property / fuzz test of the C ABI's argument checks (issue 15, systematic part): random sizes,
//! strides and NULLs. A description the library promises to check (NULL pointers, zero sizes,
//! strides shorter than a row, frames too large) is refused with FACERECON_INVALID_ARGUMENT before any
//! byte is read or written; a valid one — with buffers really as large as it says — succeeds, keeps
//! every known pixel and every padding byte, and fills the hole.
//!
//! Cases: FACERECON_FUZZ_CASES (default small, for `make test`); `make fuzz` runs many.
//! Needs ONNX Runtime (ORT_DYLIB_PATH).

use std::{
    ffi::{CStr, CString},
    ptr,
    sync::OnceLock,
};

use facerecon::*;
use facerecon_testutil::fuzz_cases as cases;
use proptest::prelude::*;

/// One model for the whole test binary (handles are plain ids: safe to share between test threads).
fn model() -> *mut Model {
    static MODEL: OnceLock<usize> = OnceLock::new();
    *MODEL.get_or_init(|| {
        let lib = CString::new(facerecon_testutil::ort_library()).unwrap();
        let path = CString::new(
            facerecon_testutil::identity_model()
                .into_os_string()
                .into_encoded_bytes(),
        )
        .unwrap();
        let opts = Options {
            threads: 1,
            batch_size: 2,
            ort_library: lib.as_ptr(),
            ..Options::default()
        };
        // SAFETY: the path is a NUL-terminated CString and the options a valid struct, both alive for the call.
        let m = unsafe { facerecon_open(path.as_ptr(), &opts) };
        assert!(!m.is_null());
        m as usize
    }) as *mut Model
}

fn last_error() -> String {
    // SAFETY: `facerecon_last_error` returns a NUL-terminated string that lives until this thread's next call.
    unsafe { CStr::from_ptr(facerecon_last_error()) }
        .to_string_lossy()
        .into_owned()
}

#[derive(Debug, Clone)]
struct Desc {
    width: u32,
    height: u32,
    /// Extra bytes per row beyond the minimum; negative = shorter than a row.
    pad: [i64; 3],
    null: [bool; 3],
    hole: (u32, u32, u32, u32),
}

fn desc() -> impl Strategy<Value = Desc> {
    let side = prop_oneof![Just(0u32), 1u32..48, Just(1 << 15), Just(u32::MAX)];
    let pad = prop_oneof![4 => 0i64..9, 1 => -4i64..0, 1 => Just(i64::from(u32::MAX))];
    (
        side.clone(),
        side,
        prop::array::uniform3(pad),
        prop::array::uniform3(prop::bool::weighted(0.1)),
        (0u32..48, 0u32..48, 1u32..20, 1u32..20),
    )
        .prop_map(|(width, height, pad, null, hole)| Desc {
            width,
            height,
            pad,
            null,
            hole,
        })
}

/// Whether the library promises to refuse this description (what `Frame::check` documents).
fn should_refuse(d: &Desc, strides: [u64; 3], rows: [u64; 3]) -> bool {
    let (w, h) = (d.width as u64, d.height as u64);
    d.null.iter().any(|&n| n)
        || w == 0
        || h == 0
        || w * h > frame::MAX_PIXELS
        || strides.iter().zip(rows).any(|(&s, r)| s < r)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn argument_checks_hold(d in desc(), batch in any::<bool>()) {
        let (w, h) = (d.width as u64, d.height as u64);
        let rows = [3 * w, w, 3 * w];
        // u32 strides, as C passes them (a pad of u32::MAX saturates).
        let strides: [u64; 3] = std::array::from_fn(|i| (rows[i] as i64 + d.pad[i]).clamp(0, u32::MAX as i64) as u64);
        let refuse = should_refuse(&d, strides, rows);
        // Valid descriptions whose buffers would be huge (a 4 GiB stride over several rows) are skipped.
        prop_assume!(refuse || (h - 1) * strides.iter().max().unwrap() <= 64 << 20);
        // Buffers as large as the description says when it is valid; tiny ones otherwise (the call
        // must not touch them, and with a too-short stride a full-size buffer would hide overreads).
        let size = |i: usize| if refuse { 16 } else { ((h - 1) * strides[i] + rows[i]) as usize };
        let rgb: Vec<u8> = (0..size(0)).map(|k| (k % 251) as u8).collect();
        let mask: Vec<u8> = (0..size(1)).map(|k| {
            let (x, y) = ((k as u64 % strides[1].max(1)) as u32, (k as u64 / strides[1].max(1)) as u32);
            let (hx, hy, hw, hh) = d.hole;
            if x >= hx && x < hx + hw && y >= hy && y < hy + hh { 255 } else { 0 }
        }).collect();
        let mut out = vec![7u8; size(2)];
        let pick = |null: bool, p: *const u8| if null { ptr::null() } else { p };
        let frame = Frame {
            rgb: pick(d.null[0], rgb.as_ptr()),
            width: d.width,
            height: d.height,
            stride_bytes: strides[0] as u32,
            mask: pick(d.null[1], mask.as_ptr()),
            mask_stride: strides[1] as u32,
            out_rgb: if d.null[2] { ptr::null_mut() } else { out.as_mut_ptr() },
            out_stride: strides[2] as u32,
        };

        // SAFETY: a valid description's buffers are as large as it says; an invalid one (the property under
        // test) must be refused before any buffer is read, and its buffers are small but live.
        let rc = unsafe {
            if batch {
                facerecon_reconstruct_batch(model(), &frame, 1)
            } else {
                facerecon_reconstruct(model(), frame.rgb, frame.width, frame.height, frame.stride_bytes, frame.mask, frame.mask_stride, frame.out_rgb, frame.out_stride)
            }
        };
        if refuse {
            prop_assert_eq!(rc, Status::InvalidArgument as i32, "{:?}: {}", d, last_error());
            prop_assert!(!last_error().is_empty());
            prop_assert!(out.iter().all(|&v| v == 7), "output touched on a refused call");
        } else {
            prop_assert_eq!(rc, 0, "{:?}: {}", d, last_error());
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let m = mask[y * strides[1] as usize + x];
                    let src = &rgb[y * strides[0] as usize + 3 * x..][..3];
                    let dst = &out[y * strides[2] as usize + 3 * x..][..3];
                    if !facerecon_runtime::contract::is_hole(m) {
                        prop_assert_eq!(src, dst, "known pixel {},{} changed", x, y);
                    }
                }
                // Row padding is never written.
                let row_end = y * strides[2] as usize + 3 * w as usize;
                let next = if y + 1 < h as usize { (y + 1) * strides[2] as usize } else { row_end };
                prop_assert!(out[row_end..next].iter().all(|&v| v == 7), "padding of row {} written", y);
            }
        }
    }
}
