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
