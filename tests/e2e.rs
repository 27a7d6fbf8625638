//! End to end, through the three command-line tools, as a user runs them:
//! generated faces -> `facerecon-train` (tiny config) -> checkpoint -> `facerecon-export` (verified against
//! candle through ONNX Runtime) -> `facerecon-infer` on corrupted photos of another size -> outputs checked.
//!
//! The binaries are the release ones next to this test (`make test` builds them first).

use facerecon_contract::{checkpoint, is_hole, MetricsRecord};
use image::{GrayImage, Rgb, RgbImage};
use std::path::PathBuf;
use std::process::{Command, Output};

fn bin(name: &str) -> PathBuf {
    // target/<profile>/deps/e2e-HASH -> target/<profile>/NAME
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `make test` (it builds the binaries before the tests)",
        p.display()
    );
    p
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    eprintln!(
        "$ {:?}\n--- stdout\n{}\n--- stderr\n{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ort_env() -> String {
    std::env::var("ORT_DYLIB_PATH").expect("ORT_DYLIB_PATH is not set: run the tests with `make test`")
}

/// A face of the given size with a black rectangle (the tutorial's corruption) at (x, y, w, h).
fn corrupted_face(seed: u64, w: u32, h: u32, hole: (u32, u32, u32, u32)) -> (RgbImage, GrayImage) {
    let face = facerecon_imaging::synth::synth_face(seed, w.max(h));
    let mut img = image::imageops::resize(&face, w, h, image::imageops::FilterType::Triangle);
    let mut mask = GrayImage::new(w, h);
    for y in hole.1..hole.1 + hole.3 {
        for x in hole.0..hole.0 + hole.2 {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
            mask.put_pixel(x, y, image::Luma([255]));
        }
    }
    (img, mask)
}

#[test]
fn train_export_infer_end_to_end() {
    let ort = ort_env();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // 1. data: 40 generated faces
    let data = t.join("faces");
    facerecon_imaging::synth::write_dataset(&data, 40, 48).unwrap();

    // 2. train the tiny config for 2 epochs
    let runs = t.join("runs/tiny");
    let out = run(Command::new(bin("facerecon-train"))
        .args(["--config", repo().join("configs/tiny.yaml").to_str().unwrap()])
        .args([
            "--data",
            data.to_str().unwrap(),
            "--out",
            runs.to_str().unwrap(),
            "--epochs",
            "2",
            "--seed",
            "7",
        ]));
    assert!(out.status.success(), "training failed");
    for f in checkpoint::FILES.into_iter().chain([checkpoint::VAL_FILES]) {
        assert!(runs.join(f).is_file(), "checkpoint file {f} missing");
    }
    let metrics = std::fs::read_to_string(runs.join(checkpoint::METRICS_FILE)).unwrap();
    let lines = MetricsRecord::parse_all(&metrics).unwrap();
    assert_eq!(lines.len(), 2, "one metrics line per epoch");
    let last = &lines[1];
    for (key, v) in [
        ("psnr_full", last.psnr_full),
        ("psnr_hole", last.psnr_hole),
        ("ssim", last.ssim),
    ] {
        let v = v.unwrap_or(f64::NAN);
        assert!(v.is_finite(), "{key} = {v}");
    }
    // composited metrics: psnr_full must exceed psnr_hole (known pixels are exact)
    assert!(last.psnr_full.unwrap() > last.psnr_hole.unwrap());

    // 3. export, verified against candle through ONNX Runtime
    let onnx = t.join("exported/tiny.onnx");
    let out = run(Command::new(bin("facerecon-export"))
        .env("ORT_DYLIB_PATH", &ort)
        .args(["--checkpoint", runs.to_str().unwrap(), "--out", onnx.to_str().unwrap()])
        .args(["--reference", t.join("reference.npz").to_str().unwrap()]));
    assert!(out.status.success(), "export failed");
    assert!(std::fs::metadata(&onnx).unwrap().len() > 1000);

    // 3b. the official checker (full check) and Python's onnxruntime agree with candle's outputs
    let python = std::env::var("FACERECON_PYTHON").expect(
        "FACERECON_PYTHON is not set: run the tests with `make test` (it makes a venv with onnx + onnxruntime)",
    );
    let out = run(Command::new(python)
        .arg(repo().join("scripts/check_onnx.py"))
        .arg(&onnx)
        .args([
            "--reference",
            t.join("reference.npz").to_str().unwrap(),
            "--tolerance",
            "1e-4",
        ]));
    assert!(out.status.success(), "onnx.checker / onnxruntime check failed");
    assert!(String::from_utf8_lossy(&out.stdout).contains("passes onnx.checker full_check"));

    // 4. infer on photos of other sizes with black holes, plus one broken file
    let inputs = t.join("photos");
    std::fs::create_dir_all(&inputs).unwrap();
    let cases = [
        (1u64, 64u32, 64u32, (20u32, 24u32, 12u32, 12u32)),
        (2, 90, 70, (30, 20, 20, 16)),
        (3, 200, 200, (80, 90, 40, 40)),
    ];
    let mut originals = Vec::new();
    for (seed, w, h, hole) in cases {
        let (img, mask) = corrupted_face(seed, w, h, hole);
        let path = inputs.join(format!("face{seed}.png"));
        img.save(&path).unwrap();
        originals.push((path, img, mask));
    }
    std::fs::write(inputs.join("broken.png"), b"this is not a png").unwrap();
    let before: Vec<Vec<u8>> = originals.iter().map(|(p, ..)| std::fs::read(p).unwrap()).collect();

    let outdir = t.join("reconstructed");
    let out = run(Command::new(bin("facerecon-infer"))
        .env("ORT_DYLIB_PATH", &ort)
        .args([
            "--model",
            onnx.to_str().unwrap(),
            "--out",
            outdir.to_str().unwrap(),
            "--batch-size",
            "2",
        ])
        .arg(&inputs));
    assert_eq!(
        out.status.code(),
        Some(1),
        "one input is broken: exit code must say a file failed"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(stderr.contains("broken.png"), "the failing file is named");

    for ((path, img, mask), bytes) in originals.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(path).unwrap(),
            bytes,
            "input {} was modified",
            path.display()
        );
        let res = image::open(outdir.join(path.file_name().unwrap())).unwrap().to_rgb8();
        assert_eq!(res.dimensions(), img.dimensions(), "output keeps the input size");
        let mut changed = 0usize;
        let mut holes = 0usize;
        for (x, y, p) in img.enumerate_pixels() {
            let q = res.get_pixel(x, y);
            if is_hole(mask.get_pixel(x, y)[0]) {
                holes += 1;
                changed += usize::from(p != q);
            } else {
                // the hole detector dilates by a pixel: allow a 1-pixel ring around the hole to change
                let near_hole = (x.saturating_sub(1)..=x + 1).any(|xx| {
                    (y.saturating_sub(1)..=y + 1)
                        .any(|yy| xx < img.width() && yy < img.height() && is_hole(mask.get_pixel(xx, yy)[0]))
                });
                if !near_hole {
                    assert_eq!(p, q, "known pixel ({x},{y}) of {} changed", path.display());
                }
            }
        }
        assert!(
            changed * 10 > holes * 9,
            "holes were filled: {changed}/{holes} hole pixels changed"
        );
    }
    assert!(!outdir.join("broken.png").exists());
}
