//! The C entry points called from Rust: argument checking (no ONNX Runtime needed) and agreement with
//! `Runtime::reconstruct` (needs ORT_DYLIB_PATH, set by `make test`).

use std::{
    ffi::{CStr, CString},
    ptr,
};

use facerecon::*;
use facerecon_runtime::{GrayImage, Luma, Rgb, RgbImage};
use facerecon_runtime::{Runtime, RuntimeOptions};

fn last_error() -> String {
    // SAFETY: `facerecon_last_error` returns a NUL-terminated string that lives until this thread's next call.
    unsafe { CStr::from_ptr(facerecon_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn fixture() -> CString {
    CString::new(
        facerecon_testutil::identity_model()
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap()
}

fn ort_options() -> (Options, CString) {
    let lib = CString::new(facerecon_testutil::ort_library()).unwrap();
    let opts = Options {
        threads: 1,
        batch_size: 2,
        ort_library: lib.as_ptr(),
        ..Options::default()
    };
    (opts, lib)
}

#[test]
fn bad_arguments_are_codes_and_messages() {
    // SAFETY: the pointers passed are NULL, NUL-terminated strings or live buffers of the sizes given; the checks
    // under test reject the bad ones before any is read, and handles are only looked up.
    unsafe {
        assert_eq!(
            CStr::from_ptr(facerecon_version()).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
        assert!(facerecon_open(ptr::null(), ptr::null()).is_null());
        assert_eq!(facerecon_last_error_code(), Status::InvalidArgument as i32);
        assert!(last_error().contains("model_path is NULL"));

        let path = fixture();
        for (opts, want) in [
            (
                Options {
                    threads: -2,
                    ..Options::default()
                },
                "options.threads = -2",
            ),
            (
                Options {
                    device_id: -7,
                    ..Options::default()
                },
                "options.device_id = -7",
            ),
            (
                Options {
                    fit: 9,
                    ..Options::default()
                },
                "options.fit = 9",
            ),
        ] {
            assert!(facerecon_open(path.as_ptr(), &opts).is_null());
            assert_eq!(facerecon_last_error_code(), Status::InvalidArgument as i32);
            assert!(last_error().contains(want), "{} vs {want}", last_error());
        }

        let pixels = [0u8; 12];
        let mut out = [0u8; 12];
        let rc = facerecon_reconstruct(
            ptr::null_mut(),
            pixels.as_ptr(),
            2,
            2,
            6,
            pixels.as_ptr(),
            2,
            out.as_mut_ptr(),
            6,
        );
        assert_eq!(
            (rc, last_error()),
            (Status::InvalidArgument as i32, "model is NULL".to_string())
        );
        assert_eq!(
            facerecon_reconstruct_batch(ptr::null_mut(), ptr::null(), 0),
            Status::InvalidArgument as i32
        );
        assert_eq!(facerecon_model_size(ptr::null()), 0);
        assert_eq!(facerecon_batch_size(ptr::null()), 0);
        facerecon_close(ptr::null_mut());
        facerecon_options_default(ptr::null_mut());
        let mut opts = Options {
            threads: 5,
            device_id: 3,
            ..Options::default()
        };
        facerecon_options_default(&mut opts);
        assert_eq!(
            (opts.threads, opts.device_id, opts.batch_size, opts.fit, opts.feather),
            (0, -1, 16, 0, 0)
        );
        assert!(opts.ort_library.is_null());
    }
}

#[test]
fn matches_the_rust_runtime_and_works_in_place() {
    let (mut opts, _lib) = ort_options();
    opts.feather = 3;
    let path = fixture();
    // SAFETY: the path is a NUL-terminated CString and the options a valid struct, both alive for the call.
    let model = unsafe { facerecon_open(path.as_ptr(), &opts) };
    assert!(!model.is_null(), "{}", last_error());
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_model_size(model) }, 32);
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_batch_size(model) }, 2);

    let (w, h) = (90u32, 70u32);
    let image = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, (x ^ y) as u8]));
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if (30..50).contains(&x) && (20..40).contains(&y) {
            200
        } else {
            0
        }])
    });
    let rt = Runtime::load(
        path.to_str().unwrap(),
        &RuntimeOptions {
            threads: Some(1),
            feather: 3,
            ..Default::default()
        },
    )
    .unwrap();
    let want = rt.reconstruct(&image, &mask).unwrap();
    // The seam option reached the runtime: it differs from the plain replacement, in the hole only.
    let plain = Runtime::load(path.to_str().unwrap(), &RuntimeOptions::default()).unwrap();
    let hard = plain.reconstruct(&image, &mask).unwrap();
    assert_ne!(want, hard);
    for (x, y, p) in want.enumerate_pixels() {
        if !facerecon_runtime::contract::is_hole(mask.get_pixel(x, y).0[0]) {
            assert_eq!(p, image.get_pixel(x, y), "known pixel {x},{y}");
        }
    }

    // In place, in a padded buffer.
    let stride = 3 * w + 5;
    let mut buf = vec![7u8; (stride * h) as usize];
    for y in 0..h {
        let row = (y * stride) as usize;
        buf[row..row + 3 * w as usize]
            .copy_from_slice(&image.as_raw()[(y * 3 * w) as usize..((y + 1) * 3 * w) as usize]);
    }
    let p = buf.as_mut_ptr();
    // SAFETY: the buffers hold `h` rows at the strides passed and outlive the call; handles are only looked up.
    let rc = unsafe { facerecon_reconstruct(model, p, w, h, stride, mask.as_ptr(), w, p, stride) };
    assert_eq!(rc, 0, "{}", last_error());
    assert_eq!(last_error(), "");
    for y in 0..h {
        let row = (y * stride) as usize;
        assert_eq!(
            &buf[row..row + 3 * w as usize],
            &want.as_raw()[(y * 3 * w) as usize..((y + 1) * 3 * w) as usize],
            "row {y}"
        );
        assert_eq!(
            &buf[row + 3 * w as usize..row + stride as usize],
            &[7; 5],
            "padding of row {y}"
        );
    }

    // A stride shorter than a row is refused and the output left alone.
    let mut out = vec![1u8; (3 * w * h) as usize];
    // SAFETY: the buffers hold `h` rows at the strides passed and outlive the call; handles are only looked up.
    let rc = unsafe {
        facerecon_reconstruct(
            model,
            image.as_ptr(),
            w,
            h,
            3 * w - 1,
            mask.as_ptr(),
            w,
            out.as_mut_ptr(),
            3 * w,
        )
    };
    assert_eq!(rc, Status::InvalidArgument as i32);
    assert!(
        last_error().contains("stride_bytes = 269 is shorter than a row (270 bytes"),
        "{}",
        last_error()
    );
    assert!(out.iter().all(|&v| v == 1));
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    unsafe { facerecon_close(model) };
}

#[test]
fn reconstruct_in_box_matches_reconstruct_and_refuses_bad_boxes() {
    // facerecon_reconstruct_in_box copies in only the part the network sees and, in place, writes
    // back only the hole's box: the output must still be facerecon_reconstruct's, in place and into
    // another padded buffer, over several calls of different sizes (the model's kept buffers hold the
    // previous frame's pixels, which must never leak into the result).
    let (mut opts, _lib) = ort_options();
    opts.feather = 2;
    let path = fixture();
    // SAFETY: the path is a NUL-terminated CString and the options a valid struct, both alive for the call.
    let model = unsafe { facerecon_open(path.as_ptr(), &opts) };
    assert!(!model.is_null(), "{}", last_error());
    let cases = [
        (90u32, 70u32, (30u32, 20u32, 20u32, 20u32), (25u32, 15u32, 40u32, 30u32)),
        (90, 70, (60, 40, 12, 9), (60, 40, 12, 9)), // a tight box
        // 300x200 is a large frame for the 32 model: the network sees a crop around the hole.
        (300, 200, (10, 150, 50, 50), (0, 140, 80, 60)), // at the frame's edge
        (300, 200, (200, 30, 30, 25), (190, 20, 60, 50)), // the kept buffers hold the last frame
        (90, 70, (0, 0, 5, 5), (0, 0, 90, 70)),          // the whole frame as the box
    ];
    for (k, &(w, h, (hx, hy, hw, hh), (bx, by, bw, bh))) in cases.iter().enumerate() {
        let image = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 2 + k as u32) as u8, (y * 3) as u8, (x ^ y) as u8])
        });
        let in_hole = |x: u32, y: u32| (hx..hx + hw).contains(&x) && (hy..hy + hh).contains(&y);
        let mask = GrayImage::from_fn(w, h, |x, y| Luma([if in_hole(x, y) { 255 } else { 0 }]));
        let hole_box = HoleBox {
            x: bx,
            y: by,
            width: bw,
            height: bh,
        };
        let stride = 3 * w + 4;
        let padded = |img: &RgbImage| -> Vec<u8> {
            let mut buf = vec![9u8; (stride * h) as usize];
            for (y, row) in img.as_raw().chunks_exact(3 * w as usize).enumerate() {
                buf[y * stride as usize..][..row.len()].copy_from_slice(row);
            }
            buf
        };
        let mut want = padded(&image);
        let p = want.as_mut_ptr();
        // SAFETY: the buffers hold `h` rows at the strides passed and outlive the call; handles are only looked up.
        let rc = unsafe { facerecon_reconstruct(model, p, w, h, stride, mask.as_ptr(), w, p, stride) };
        assert_eq!(rc, 0, "{}", last_error());
        // In place.
        let mut got = padded(&image);
        let p = got.as_mut_ptr();
        // SAFETY: as above, and `hole_box` is a live facerecon_box.
        let rc =
            unsafe { facerecon_reconstruct_in_box(model, p, w, h, stride, mask.as_ptr(), w, p, stride, &hole_box) };
        assert_eq!(rc, 0, "case {k}: {}", last_error());
        assert!(got == want, "case {k}: in place");
        // Into another buffer (its padding untouched).
        let input = padded(&image);
        let mut out = vec![9u8; (stride * h) as usize];
        // SAFETY: as above; `input` and `out` do not overlap.
        let rc = unsafe {
            facerecon_reconstruct_in_box(
                model,
                input.as_ptr(),
                w,
                h,
                stride,
                mask.as_ptr(),
                w,
                out.as_mut_ptr(),
                stride,
                &hole_box,
            )
        };
        assert_eq!(rc, 0, "case {k}: {}", last_error());
        assert!(out == want, "case {k}: out of place");
    }

    // Bad boxes: FACERECON_INVALID_ARGUMENT, a message, the output untouched.
    let (w, h) = (90u32, 70u32);
    let image = RgbImage::from_pixel(w, h, Rgb([10, 20, 30]));
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if (30..50).contains(&x) && (20..40).contains(&y) {
            255
        } else {
            0
        }])
    });
    let b = |x, y, width, height| HoleBox { x, y, width, height };
    for (bad, want) in [
        (Some(b(31, 20, 19, 20)), "continues past the box"),
        (Some(b(30, 20, 20, 0)), "is empty"),
        (Some(b(80, 20, 20, 20)), "not inside"),
        (None, "hole_box is NULL"),
    ] {
        let mut out = vec![1u8; (3 * w * h) as usize];
        let ptr = bad.as_ref().map_or(ptr::null(), |b| b as *const HoleBox);
        // SAFETY: the buffers hold `h` rows at the strides passed; `ptr` is NULL or a live facerecon_box.
        let rc = unsafe {
            facerecon_reconstruct_in_box(
                model,
                image.as_ptr(),
                w,
                h,
                3 * w,
                mask.as_ptr(),
                w,
                out.as_mut_ptr(),
                3 * w,
                ptr,
            )
        };
        assert_eq!(rc, Status::InvalidArgument as i32, "{bad:?}");
        assert!(last_error().contains(want), "{bad:?}: {}", last_error());
        assert!(out.iter().all(|&v| v == 1), "{bad:?}: output written");
    }
    // SAFETY: the handle came from facerecon_open and is closed once.
    assert_eq!(unsafe { facerecon_close(model) }, 0);
}
