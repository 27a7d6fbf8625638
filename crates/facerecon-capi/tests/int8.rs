//! The shipped int8 model (exported/unet-int8.onnx, QDQ) through the C ABI: it opens, reconstructs,
//! keeps known pixels and gives what the Rust runtime gives. Needs ORT_DYLIB_PATH (set by `make test`).

use std::ffi::{CStr, CString};

use facerecon::*;
use facerecon_runtime::{GrayImage, Luma, Rgb, RgbImage};
use facerecon_runtime::{Runtime, RuntimeOptions};

#[test]
fn int8_model_opens_and_matches_the_rust_runtime() {
    let lib = CString::new(facerecon_testutil::ort_library()).unwrap();
    let opts = Options {
        threads: 1,
        batch_size: 1,
        ort_library: lib.as_ptr(),
        ..Options::default()
    };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../exported/unet-int8.onnx");
    let cpath = CString::new(path).unwrap();
    // SAFETY: the path is a NUL-terminated CString and the options a valid struct, both alive for the call.
    let model = unsafe { facerecon_open(cpath.as_ptr(), &opts) };
    assert!(
        !model.is_null(),
        "{}",
        // SAFETY: `facerecon_last_error` returns a NUL-terminated string that lives until this thread's next call.
        unsafe { CStr::from_ptr(facerecon_last_error()) }.to_string_lossy()
    );
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_model_size(model) }, 128);

    let (w, h) = (150u32, 170u32);
    let image = RgbImage::from_fn(w, h, |x, y| {
        Rgb([(90 + x / 3) as u8, (70 + y / 4) as u8, (60 + (x + y) / 8) as u8])
    });
    let mask = GrayImage::from_fn(w, h, |x, y| {
        Luma([if (50..90).contains(&x) && (60..95).contains(&y) {
            255
        } else {
            0
        }])
    });
    let mut out = vec![0u8; (3 * w * h) as usize];
    // SAFETY: the buffers hold `h` rows at the strides passed and outlive the call; handles are only looked up.
    let rc = unsafe {
        facerecon_reconstruct(
            model,
            image.as_ptr(),
            w,
            h,
            3 * w,
            mask.as_ptr(),
            w,
            out.as_mut_ptr(),
            3 * w,
        )
    };
    assert_eq!(
        rc,
        0,
        "{}",
        // SAFETY: `facerecon_last_error` returns a NUL-terminated string that lives until this thread's next call.
        unsafe { CStr::from_ptr(facerecon_last_error()) }.to_string_lossy()
    );
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    unsafe { facerecon_close(model) };

    let rt = Runtime::load(
        path,
        &RuntimeOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let want = rt.reconstruct(&image, &mask).unwrap();
    assert_eq!(out, want.as_raw().as_slice(), "C ABI and Rust runtime differ");
    let out = RgbImage::from_raw(w, h, out).unwrap();
    let mut changed = 0;
    for (x, y, p) in out.enumerate_pixels() {
        if mask.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, image.get_pixel(x, y), "known pixel {x},{y}");
        } else if p != image.get_pixel(x, y) {
            changed += 1;
        }
    }
    assert!(changed > 1000, "the hole was not filled ({changed} pixels changed)");
}
