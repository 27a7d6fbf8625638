//! `facerecon-infer --eval` end to end on the fixture model (identity.onnx, 32x32: every zeroed hole
//! pixel comes back as RGB (26, 77, 128)). Needs ONNX Runtime (ORT_DYLIB_PATH, set by `make test`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use facerecon_imaging::{composite, layout, masks, metrics, synth};
use image::GrayImage;

use facerecon_testutil::{identity_model, HOLE_COLOUR};
const SIZE: u32 = 32;

fn infer<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .arg("--model")
        .arg(identity_model())
        .arg("--eval")
        .args(args)
        .env("ORT_DYLIB_PATH", facerecon_testutil::ort_library())
        .output()
        .expect("running facerecon-infer")
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Four faces of different sizes and aspect ratios (fit_square crops and resizes them).
fn faces(dir: &Path) -> PathBuf {
    let photos = dir.join("faces");
    std::fs::create_dir_all(&photos).unwrap();
    for (i, (w, h)) in [(64, 64), (80, 50), (32, 32), (45, 70)].into_iter().enumerate() {
        let face = synth::synth_face(i as u64, w.max(h));
        let img = image::imageops::crop_imm(&face, 0, 0, w, h).to_image();
        img.save(photos.join(format!("f{i}.png"))).unwrap();
    }
    photos
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn close(a: &serde_json::Value, b: f64, what: &str) {
    let a = a.as_f64().unwrap_or_else(|| panic!("{what}: {a}"));
    assert!(
        (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        "{what}: report {a}, by hand {b}"
    );
}

#[test]
fn metrics_match_a_composite_computed_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let photos = faces(dir.path());
    let (out, saved, report) = (
        dir.path().join("out"),
        dir.path().join("masks"),
        dir.path().join("r.json"),
    );
    let stdout = ok(&infer(&[
        photos.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--save-masks".as_ref(),
        saved.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
        "--batch-size".as_ref(),
        "3".as_ref(),
    ]));
    let json = read_json(&report);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    let mut by_hand = Vec::new();
    let mut sharp_by_hand = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = format!("f{i}");
        assert_eq!(f["index"], i);
        assert!(f["input"].as_str().unwrap().ends_with(&format!("{name}.png")));
        let fitted = layout::fit_square(
            &image::open(photos.join(format!("{name}.png"))).unwrap().to_rgb8(),
            SIZE,
        );
        let mask = image::open(saved.join(format!("{name}.png"))).unwrap().to_luma8();
        assert_eq!(mask.dimensions(), (SIZE, SIZE));
        // box28 at 32x32 is one 7x7 box.
        assert_eq!(mask.pixels().filter(|p| p.0[0] == 255).count(), 49);
        assert!(mask.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        // The identity model fills every hole pixel with one colour; everything else is the fitted image.
        let mut expected = fitted.clone();
        for (x, y, m) in mask.enumerate_pixels() {
            if m.0[0] == 255 {
                expected.put_pixel(x, y, HOLE_COLOUR);
            }
        }
        let m = metrics::evaluate(&expected, &fitted, &mask);
        close(&f["psnr_full"], m.psnr_full, "psnr_full");
        close(&f["psnr_hole"], m.psnr_hole, "psnr_hole");
        close(&f["ssim"], m.ssim, "ssim");
        close(&f["l1_hole"], m.l1_hole, "l1_hole");
        close(&f["hole_fraction"], 49.0 / 1024.0, "hole_fraction");
        // A one-colour fill has no gradient inside the hole: sharpness 0 against a textured original.
        let s = metrics::sharpness(&expected, &fitted, &mask);
        assert_eq!(s.grad_energy_hole, 0.0);
        assert!(
            s.grad_energy_hole_original > 0.0,
            "{name}: the synthetic face is flat in its hole"
        );
        close(&f["sharpness"], 0.0, "sharpness");
        close(&f["grad_energy_hole"], 0.0, "grad_energy_hole");
        close(
            &f["grad_energy_hole_original"],
            s.grad_energy_hole_original,
            "grad_energy_hole_original",
        );
        sharp_by_hand.push(s);
        // Triptych: corrupted | reconstructed | original.
        let tri = image::open(out.join(format!("{name}.png"))).unwrap().to_rgb8();
        let expected_tri =
            facerecon_imaging::grid::grid(&[vec![composite::zero_holes(&fitted, &mask), expected, fitted]]);
        assert_eq!(tri, expected_tri, "{name} triptych");
        by_hand.push(m);
    }
    let mean = metrics::mean(&by_hand);
    let sets = json["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0]["images"], 4);
    close(&sets[0]["mean"]["psnr_hole"], mean.psnr_hole, "mean psnr_hole");
    close(&sets[0]["mean"]["ssim"], mean.ssim, "mean ssim");
    close(
        &sets[0]["sharpness"],
        metrics::pooled_sharpness(&sharp_by_hand),
        "set sharpness",
    );
    assert_eq!(
        (json["holes"].as_str(), json["seed"].as_u64()),
        (Some("box28"), Some(0))
    );
    // The printed table carries the same means.
    assert!(
        stdout.contains(&format!(
            "| 4 | 0 | box28 | 0 | {:.2} | {:.2} |",
            mean.psnr_full, mean.psnr_hole
        )),
        "{stdout}"
    );
    // grid.png stacks the four triptychs.
    let grid = image::open(out.join("grid.png")).unwrap().to_rgb8();
    assert_eq!(grid.dimensions(), (3 * SIZE + 2 * 2, 4 * SIZE + 3 * 2));
}

fn saved_masks(photos: &Path, dir: &Path, extra: &[&str]) -> Vec<Vec<u8>> {
    let mut args: Vec<std::ffi::OsString> = vec![photos.into(), "--save-masks".into(), dir.into()];
    args.extend(extra.iter().map(Into::into));
    ok(&infer(&args));
    (0..4)
        .map(|i| std::fs::read(dir.join(format!("f{i}.png"))).unwrap())
        .collect()
}

#[test]
fn seeds_decide_the_masks() {
    let dir = tempfile::tempdir().unwrap();
    let photos = faces(dir.path());
    let a = saved_masks(&photos, &dir.path().join("a"), &["--eval-seed", "5"]);
    let b = saved_masks(
        &photos,
        &dir.path().join("b"),
        &["--eval-seed", "5", "--batch-size", "1"],
    );
    let c = saved_masks(&photos, &dir.path().join("c"), &["--eval-seed", "6"]);
    assert_eq!(a, b, "same seed, same masks (whatever the batch size)");
    assert_ne!(a, c, "another seed, other masks");
    // Within a set, images get different holes.
    assert!(a.iter().skip(1).any(|m| m != &a[0]));
    // The other kinds: box32-64 at 32x32 has sides 8..16; mixed holes exist.
    let big = saved_masks(&photos, &dir.path().join("d"), &["--holes", "box32-64"]);
    for bytes in &big {
        let m = image::load_from_memory(bytes).unwrap().to_luma8();
        let n = m.pixels().filter(|p| p.0[0] == 255).count();
        let side = (n as f64).sqrt() as usize;
        assert!(side * side == n && (8..=16).contains(&side), "{n} hole pixels");
    }
    saved_masks(&photos, &dir.path().join("e"), &["--holes", "mixed"]);
}

#[test]
fn mask_files_override_the_seeded_holes_and_bad_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let photos = faces(dir.path());
    // Masks saved with seed 3, read back in a run with seed 9: the metrics are those of seed 3.
    let (r3, r9) = (dir.path().join("r3.json"), dir.path().join("r9.json"));
    let saved = dir.path().join("m3");
    ok(&infer(&[
        photos.as_os_str(),
        "--eval-seed".as_ref(),
        "3".as_ref(),
        "--save-masks".as_ref(),
        saved.as_os_str(),
        "--report".as_ref(),
        r3.as_os_str(),
    ]));
    let stdout = ok(&infer(&[
        photos.as_os_str(),
        "--eval-seed".as_ref(),
        "9".as_ref(),
        "--masks".as_ref(),
        saved.as_os_str(),
        "--report".as_ref(),
        r9.as_os_str(),
    ]));
    assert!(stdout.contains("| masks | - |"), "{stdout}");
    let (j3, j9) = (read_json(&r3), read_json(&r9));
    assert_eq!(j9["holes"], "masks");
    for (a, b) in j3["files"]
        .as_array()
        .unwrap()
        .iter()
        .zip(j9["files"].as_array().unwrap())
    {
        assert_eq!(a["psnr_hole"], b["psnr_hole"]);
        assert_eq!(a["ssim"], b["ssim"]);
    }

    // One mask FILE at the original size of an 80x50 image: the centre square (x 15..65) is cut
    // from it like from the image, so a hole at x 20..30 (5..15 of the square) lands at columns
    // ~3..10 of 32, full height.
    let single = dir.path().join("one");
    std::fs::create_dir_all(&single).unwrap();
    std::fs::copy(photos.join("f1.png"), single.join("f1.png")).unwrap();
    std::fs::write(single.join("broken.png"), b"not a png").unwrap();
    let mask_file = dir.path().join("hole.png");
    masks::box_mask(80, 50, 20, 0, 10, 50).save(&mask_file).unwrap();
    let (report, out) = (dir.path().join("one.json"), dir.path().join("one_out"));
    let o = infer(&[
        single.as_os_str(),
        "--masks".as_ref(),
        mask_file.as_os_str(),
        "--report".as_ref(),
        report.as_os_str(),
        "--save-masks".as_ref(),
        out.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a bad file fails the run but not the others: {err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("error:") && l.contains("broken.png")),
        "{err}"
    );
    let json = read_json(&report);
    let files = json["files"].as_array().unwrap();
    assert_eq!(files[0]["status"], "failed");
    assert_eq!(files[1]["status"], "ok");
    assert_eq!(json["sets"][0]["images"], 1);
    assert_eq!(json["sets"][0]["failed"], 1);
    let mask: GrayImage = image::open(out.join("f1.png")).unwrap().to_luma8();
    let hole_columns: Vec<u32> = (0..SIZE).filter(|&x| mask.get_pixel(x, 0).0[0] == 255).collect();
    assert!(
        (6..=7).contains(&hole_columns.len()) && hole_columns[0] >= 3 && *hole_columns.last().unwrap() <= 10,
        "{hole_columns:?}"
    );
    for (x, _, p) in mask.enumerate_pixels() {
        assert_eq!(p.0[0] == 255, hole_columns.contains(&x), "column {x}");
    }
}

#[test]
fn eval_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let photos = faces(dir.path());
    // Writing triptychs into the scored directory, or mixing --eval with --box, is refused.
    let o = infer(&[photos.as_os_str(), "--out".as_ref(), photos.join("x").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("refusing"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = infer(&[photos.as_os_str(), "--box".as_ref(), "1,1,4,4".as_ref()]);
    assert_eq!(o.status.code(), Some(2));

    // Existing outputs survive a second run without --overwrite; file INPUTs form one set.
    let out = dir.path().join("out");
    let files = [photos.join("f0.png"), photos.join("f1.png")];
    let args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = files.iter().map(|f| f.clone().into()).collect();
        v.extend(["--out".into(), out.clone().into()]);
        v.extend(extra.iter().map(Into::into));
        v
    };
    let stdout = ok(&infer(&args(&[])));
    assert!(
        stdout.contains("| files (2) | 2 | 0 |") && !stdout.contains("| all |"),
        "{stdout}"
    );
    std::fs::write(out.join("f0.png"), b"precious").unwrap();
    let o = infer(&args(&[]));
    assert_eq!(
        o.status.code(),
        Some(2),
        "grid.png exists: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_file(out.join("grid.png")).unwrap();
    let o = infer(&args(&[]));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert_eq!(std::fs::read(out.join("f0.png")).unwrap(), b"precious");
    ok(&infer(&args(&["--overwrite"])));
    assert_eq!(image::open(out.join("f0.png")).unwrap().width(), 3 * SIZE + 4);
}
