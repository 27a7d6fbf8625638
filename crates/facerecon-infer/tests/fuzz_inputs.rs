//! Property / fuzz tests of facerecon-infer's own input surfaces (issue 15, systematic part): `--box`
//! values and mask files (garbage, truncated, any size, bit depth or colour type). Whatever they
//! hold, the binary never panics or dies on a signal: it reconstructs, or reports an error naming the
//! bad argument or file. Run through the binary, as a user would (the parsers live in the bin crate).
//!
//! Cases: FACERECON_FUZZ_CASES (default small: each case is one process); `make fuzz` runs many.
//! Needs ONNX Runtime (ORT_DYLIB_PATH).

use std::{path::Path, process::Command};

use facerecon_testutil::fuzz_cases as cases;
use image::{DynamicImage, ImageBuffer, Luma, LumaA, Rgb, RgbImage, Rgba};
use proptest::prelude::*;

/// Run the binary on one 24x20 photo with extra `args`; (exit code, stderr).
fn run(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let photo = dir.join("photo.png");
    if !photo.exists() {
        RgbImage::from_fn(24, 20, |x, y| Rgb([100 + x as u8, 90 + y as u8, 120]))
            .save(&photo)
            .unwrap();
    }
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../facerecon-runtime/tests/data/identity.onnx");
    let out = Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(dir.join("out"))
        .args(["--overwrite", "--quiet", "--threads", "1"])
        .args(args)
        .arg(&photo)
        .env("ORT_DYLIB_PATH", facerecon_testutil::ort_library())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn no_crash(code: Option<i32>, stderr: &str) -> Result<(), TestCaseError> {
    prop_assert!(code.is_some(), "killed by a signal: {}", stderr);
    prop_assert!(code != Some(101) && !stderr.contains("panicked"), "panic: {}", stderr);
    Ok(())
}

fn box_value() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        (0u32..40).prop_map(|n| n.to_string()),
        Just("4294967295".to_string()),
        Just("4294967296".to_string()),
        Just("-1".to_string()),
        Just("".to_string()),
        Just(" 3 ".to_string()),
        Just("1e3".to_string()),
        "[0-9a-z+.-]{0,4}",
    ];
    prop_oneof![
        prop::collection::vec(number, 0..7).prop_map(|v| v.join(",")),
        "[ -~]{0,16}",
    ]
}

/// Bytes of a mask file: an image of any size and colour type, possibly truncated or garbled.
fn mask_bytes() -> impl Strategy<Value = Vec<u8>> {
    let image = (1u32..60, 1u32..60, 0usize..5, any::<u64>()).prop_map(|(w, h, kind, seed)| {
        let v = move |x: u32, y: u32| (seed.wrapping_mul(x as u64 * 31 + y as u64 * 17 + 1) >> 13) as u8;
        let img = match kind {
            0 => DynamicImage::ImageLuma8(ImageBuffer::from_fn(w, h, |x, y| Luma([v(x, y)]))),
            1 => DynamicImage::ImageLuma16(ImageBuffer::from_fn(w, h, |x, y| Luma([v(x, y) as u16 * 257]))),
            2 => DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| Rgb([v(x, y), 0, v(y, x)]))),
            3 => DynamicImage::ImageRgba8(ImageBuffer::from_fn(w, h, |x, y| Rgba([v(x, y), 9, 9, v(y, x)]))),
            _ => DynamicImage::ImageLumaA8(ImageBuffer::from_fn(w, h, |x, y| LumaA([v(x, y), v(y, x)]))),
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        img.write_to(&mut bytes, image::ImageFormat::Png).unwrap();
        bytes.into_inner()
    });
    prop_oneof![
        image.clone(),
        (image.clone(), any::<prop::sample::Index>()).prop_map(|(b, i)| b[..i.index(b.len())].to_vec()),
        (image, any::<prop::sample::Index>(), any::<u8>()).prop_map(|(mut b, i, x)| {
            let k = i.index(b.len());
            b[k] ^= x | 1;
            b
        }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// Regression cases the fuzzer found: a value that starts with '-' was taken for an option and the
/// error did not name `--box`.
#[test]
fn a_negative_box_value_is_named() {
    for value in ["-1", "-1,0,5,5", "-"] {
        let dir = tempfile::tempdir().unwrap();
        let (code, stderr) = run(dir.path(), &["--box".as_ref(), value.as_ref()]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(&format!("--box {value:?}")), "{stderr}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(8), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_box_value_is_used_or_refused(boxes in prop::collection::vec(box_value(), 1..3)) {
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        for b in &boxes {
            args.push("--box".into());
            args.push(b.into());
        }
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let (code, stderr) = run(dir.path(), &refs);
        no_crash(code, &stderr)?;
        if code != Some(0) {
            prop_assert!(stderr.contains("--box") || stderr.contains("box"), "{}", stderr);
        }
    }

    #[test]
    fn any_mask_file_is_used_or_named(bytes in mask_bytes()) {
        let dir = tempfile::tempdir().unwrap();
        let mask = dir.path().join("fuzzmask.png");
        std::fs::write(&mask, &bytes).unwrap();
        let (code, stderr) = run(dir.path(), &["--masks".as_ref(), mask.as_os_str()]);
        no_crash(code, &stderr)?;
        if code != Some(0) {
            prop_assert!(stderr.contains("fuzzmask.png"), "{}", stderr);
        }
    }
}
