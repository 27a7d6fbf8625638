//! A model whose weights overflow (finite in the file, infinite outputs on bright pixels) must fail
//! each affected image with a clear error — not write black or saturated holes with exit 0 — while the
//! other images of the same run go through (issue 15, item 9). Needs ONNX Runtime (ORT_DYLIB_PATH).

#[path = "../../facerecon-runtime/tests/common/mod.rs"]
mod common;

use std::process::Command;

use image::{GrayImage, Luma, Rgb, RgbImage};

#[test]
fn non_finite_outputs_fail_only_their_image() {
    let ort = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (run `make test`)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // rec = 3e38 * image + 3e38: finite on a black image, infinite wherever the image is bright.
    let model = common::Spec::identity(3e38, [3e38; 3]).write(d, "overflow.onnx");
    std::fs::create_dir(d.join("in")).unwrap();
    RgbImage::new(32, 32).save(d.join("in/dark.png")).unwrap();
    RgbImage::from_pixel(32, 32, Rgb([200, 180, 160]))
        .save(d.join("in/bright.png"))
        .unwrap();
    GrayImage::from_fn(32, 32, |x, y| {
        Luma([if (8..16).contains(&x) && (8..16).contains(&y) {
            255
        } else {
            0
        }])
    })
    .save(d.join("mask.png"))
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .arg("--model")
        .arg(&model)
        .arg("--masks")
        .arg(d.join("mask.png"))
        .arg("--out")
        .arg(d.join("out"))
        .args(["--feather", "0", "--batch-size", "2"])
        .arg(d.join("in"))
        .env("ORT_DYLIB_PATH", ort)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0 with a broken model:\n{stderr}");
    assert!(
        stderr.contains("bright.png") && stderr.contains("non-finite values (NaN or infinity)"),
        "{stderr}"
    );
    assert!(stderr.contains("overflow.onnx"), "{stderr}");
    assert!(
        !d.join("out/bright.png").exists(),
        "an output was written for the failed image"
    );
    // The finite image of the same batch was reconstructed.
    let dark = image::open(d.join("out/dark.png")).unwrap().to_rgb8();
    assert_eq!(dark.get_pixel(10, 10), &Rgb([255, 255, 255]));
    assert_eq!(dark.get_pixel(0, 0), &Rgb([0, 0, 0]));
}

#[test]
fn eval_fails_the_images_whose_outputs_are_not_finite() {
    // `--eval` scores the raw network output: NaN metrics (written as JSON null) must not pass as a
    // score. The bright image overflows to infinity; the black one stays finite.
    let ort = std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH (run `make test`)");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = common::Spec::identity(3e38, [3e38; 3]).write(d, "overflow.onnx");
    std::fs::create_dir(d.join("in")).unwrap();
    RgbImage::new(32, 32).save(d.join("in/dark.png")).unwrap();
    RgbImage::from_pixel(32, 32, Rgb([200, 180, 160]))
        .save(d.join("in/bright.png"))
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .arg("--model")
        .arg(&model)
        .arg("--eval")
        .arg(d.join("in"))
        .env("ORT_DYLIB_PATH", ort)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0 with a broken model:\n{stderr}");
    assert!(
        stderr.contains("bright.png") && stderr.contains("non-finite"),
        "{stderr}"
    );
    assert!(!stderr.contains("dark.png"), "the finite image failed too:\n{stderr}");
}
