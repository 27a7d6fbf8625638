//! Model handles after `facerecon_close` (issue 15, item 11): use after close and double close are
//! the error FACERECON_INVALID_HANDLE, never a crash, and the registry behind it keeps calls
//! concurrent. Needs ONNX Runtime (`make test` sets ORT_DYLIB_PATH).

use std::{
    ffi::{CStr, CString},
    ptr,
    sync::{Arc, Barrier},
};

use facerecon::*;

fn last_error() -> String {
    // SAFETY: `facerecon_last_error` returns a NUL-terminated string that lives until this thread's next call.
    unsafe { CStr::from_ptr(facerecon_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn open() -> *mut Model {
    let lib = CString::new(facerecon_testutil::ort_library()).unwrap();
    let path = CString::new(
        facerecon_testutil::identity_model()
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    let opts = Options {
        threads: 1,
        ort_library: lib.as_ptr(),
        ..Options::default()
    };
    // SAFETY: the path is a NUL-terminated CString and the options a valid struct, both alive for the call.
    let model = unsafe { facerecon_open(path.as_ptr(), &opts) };
    assert!(!model.is_null(), "{}", last_error());
    model
}

/// One 8x8 frame with a 4x4 hole, reconstructed in place; returns the status.
fn reconstruct(model: *mut Model, px: &mut [u8; 192]) -> i32 {
    let mask: Vec<u8> = (0..64)
        .map(|i| {
            if (i % 8) >= 2 && (i % 8) < 6 && (2..6).contains(&(i / 8)) {
                255
            } else {
                0
            }
        })
        .collect();
    let p = px.as_mut_ptr();
    // SAFETY: the buffers hold `h` rows at the strides passed and outlive the call; handles are only looked up.
    unsafe { facerecon_reconstruct(model, p, 8, 8, 24, mask.as_ptr(), 8, p, 24) }
}

#[test]
fn use_after_close_and_double_close_are_errors() {
    let model = open();
    let mut px = [40u8; 192];
    assert_eq!(reconstruct(model, &mut px), 0, "{}", last_error());
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(model) }, Status::Ok as i32);

    // Before the registry, each of these dereferenced freed memory (abort / segfault).
    let mut px = [40u8; 192];
    assert_eq!(reconstruct(model, &mut px), Status::InvalidHandle as i32);
    assert!(
        last_error().contains("is not open") && last_error().contains("closed already"),
        "{}",
        last_error()
    );
    assert_eq!(facerecon_last_error_code(), 8);
    assert!(px.iter().all(|&v| v == 40), "the output was touched");
    let frame = Frame {
        rgb: px.as_ptr(),
        width: 8,
        height: 8,
        stride_bytes: 24,
        mask: px.as_ptr(),
        mask_stride: 8,
        out_rgb: px.as_mut_ptr(),
        out_stride: 24,
    };
    assert_eq!(
        // SAFETY: `frame` describes live buffers of its height and strides; handles are only looked up.
        unsafe { facerecon_reconstruct_batch(model, &frame, 1) },
        Status::InvalidHandle as i32
    );
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_model_size(model) }, 0);
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_batch_size(model) }, 0);
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(model) }, Status::InvalidHandle as i32);
    assert!(last_error().contains("is not open"), "{}", last_error());
    // NULL stays a no-op that succeeds; a made-up handle is refused like a closed one.
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(ptr::null_mut()) }, 0);
    assert_eq!(last_error(), "");
    let made_up = 0xdead_bee0usize as *mut Model;
    assert_eq!(reconstruct(made_up, &mut px), Status::InvalidHandle as i32);
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(made_up) }, Status::InvalidHandle as i32);

    // A new model never gets the old handle back.
    let again = open();
    assert_ne!(again, model);
    assert_eq!(reconstruct(model, &mut px), Status::InvalidHandle as i32);
    assert_eq!(reconstruct(again, &mut px), 0, "{}", last_error());
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(again) }, 0);
}

#[test]
fn handles_are_thread_safe_and_close_may_race_with_calls() {
    // Four threads on two models, while a fifth closes one of them halfway: every call either
    // succeeds or reports InvalidHandle, nothing crashes, and the other model is unaffected.
    let (a, b) = (open() as usize, open() as usize);
    let start = Arc::new(Barrier::new(5));
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let model = if i % 2 == 0 { a } else { b } as *mut Model;
                let mut codes = Vec::new();
                for _ in 0..30 {
                    let mut px = [40u8; 192];
                    let rc = reconstruct(model, &mut px);
                    if rc == 0 {
                        // The model's hole colour (26, 77, 128), give or take the resize to 32x32 and back.
                        let hole = &px[3 * (3 * 8 + 3)..3 * (3 * 8 + 3) + 3];
                        assert!(
                            hole.iter().zip([26u8, 77, 128]).all(|(a, b)| a.abs_diff(b) <= 2),
                            "hole {hole:?}"
                        );
                        assert_eq!(px[0], 40, "known pixel kept");
                    } else {
                        assert!(last_error().contains("is not open"), "{}", last_error());
                    }
                    codes.push(rc);
                }
                (i, codes)
            })
        })
        .collect();
    start.wait();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(a as *mut Model) }, 0);
    for w in workers {
        let (i, codes) = w.join().expect("no panic");
        for rc in &codes {
            assert!(
                *rc == 0 || (i % 2 == 0 && *rc == Status::InvalidHandle as i32),
                "thread {i}: {codes:?}"
            );
        }
        if i % 2 == 0 {
            // Once closed, always closed.
            let first_bad = codes.iter().position(|&rc| rc != 0).unwrap_or(codes.len());
            assert!(codes[first_bad..].iter().all(|&rc| rc != 0), "thread {i}: {codes:?}");
        }
    }
    // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
    assert_eq!(unsafe { facerecon_close(b as *mut Model) }, 0);
    assert_eq!(
        // SAFETY: a handle is looked up in the library's table, never dereferenced: any value is allowed.
        unsafe { facerecon_close(a as *mut Model) },
        Status::InvalidHandle as i32
    );
}
