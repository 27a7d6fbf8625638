//! End-to-end tests of the `facerecon-infer` binary on the tiny fixture model of
//! crates/facerecon-runtime/tests/data (identity.onnx: every zeroed hole pixel comes back as RGB
//! (26, 77, 128)). They need ONNX Runtime: `make test` sets ORT_DYLIB_PATH.

use std::{path::Path, process::Command};

use image::{GrayImage, Luma, Rgb, RgbImage};

use facerecon_testutil::{box_mask, bright_noise as noise, identity_model, stderr, HOLE_COLOUR};

mod common;
use common::infer;

fn paint_black(img: &mut RgbImage, x0: u32, y0: u32, w: u32, h: u32) {
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            img.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
}

fn load(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// Every pixel outside `inside` is unchanged; every pixel `margin` or more inside the rectangle
/// has the model's colour.
fn assert_only_rect_changed(input: &RgbImage, output: &RgbImage, rect: (u32, u32, u32, u32), rim: (u32, u32)) {
    let (x0, y0, w, h) = rect;
    assert_eq!(output.dimensions(), input.dimensions());
    let mut deep = 0;
    for (x, y, p) in output.enumerate_pixels() {
        let inside = x >= x0 && x < x0 + w && y >= y0 && y < y0 + h;
        if !inside {
            assert_eq!(p, input.get_pixel(x, y), "pixel {x},{y} outside the hole changed");
        } else if x >= x0 + rim.0 && x + rim.0 < x0 + w && y >= y0 + rim.1 && y + rim.1 < y0 + h {
            assert_eq!(*p, HOLE_COLOUR, "hole pixel {x},{y}");
            deep += 1;
        }
    }
    assert!(deep > 0);
}

#[test]
fn large_photo_with_black_box_only_the_hole_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut img = noise(1000, 700, 1);
    paint_black(&mut img, 400, 300, 100, 80);
    let input = dir.path().join("in/face.png");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    img.save(&input).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        Path::new("--model"),
        &identity_model(),
        &input,
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 reconstructed"), "{}", stderr(&o));
    let result = load(&out.join("face.png"));
    // Detection grows the box by 1 pixel; the crop around it is 200 px for 32 model pixels.
    assert_only_rect_changed(&img, &result, (399, 299, 102, 82), (20, 20));
}

#[test]
fn bad_files_are_reported_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let good = noise(64, 48, 2);
    good.save(photos.join("good.png")).unwrap();
    noise(40, 40, 3).save(photos.join("plain.png")).unwrap(); // gets a hole from --box too
    std::fs::write(photos.join("empty.png"), b"").unwrap();
    let bytes = std::fs::read(photos.join("good.png")).unwrap();
    std::fs::write(photos.join("truncated.png"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(photos.join("text.jpg"), b"hello, I am not a JPEG\n").unwrap();
    let out = dir.path().join("out");
    let report = dir.path().join("report.json");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--box".as_ref(),
        "8,8,16,16".as_ref(),
        "--report".as_ref(),
        report.as_os_str(),
        "--batch-size".as_ref(),
        "2".as_ref(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for bad in ["empty.png", "truncated.png", "text.jpg"] {
        assert!(
            err.lines().any(|l| l.starts_with("error:") && l.contains(bad)),
            "{bad} not reported in:\n{err}"
        );
        assert!(
            !out.join(bad).with_extension("png").exists(),
            "{bad} produced an output"
        );
    }
    assert!(err.contains("2 reconstructed") && err.contains("3 failed"), "{err}");
    assert_only_rect_changed(&good, &load(&out.join("good.png")), (8, 8, 16, 16), (4, 4));
    assert!(out.join("plain.png").exists());

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["summary"]["failed"], 3);
    assert_eq!(json["summary"]["reconstructed"], 2);
    assert_eq!(json["model_name"], "identity");
    let files = json["files"].as_array().unwrap();
    assert_eq!(files.len(), 5);
    let entry = |name: &str| {
        files
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .unwrap()
            .clone()
    };
    let g = entry("good.png");
    assert_eq!(g["status"], "ok");
    assert_eq!(g["output"].as_str().unwrap(), out.join("good.png").to_str().unwrap());
    let fraction = g["hole_fraction"].as_f64().unwrap();
    assert!(
        (fraction - 256.0 / (64.0 * 48.0)).abs() < 1e-6,
        "hole fraction {fraction}"
    );
    let e = entry("empty.png");
    assert_eq!(e["status"], "failed");
    assert!(e["error"].as_str().unwrap().contains("empty"), "{e}");
    assert_eq!(entry("text.jpg")["status"], "failed");
}

#[test]
fn never_overwrites_without_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.png");
    noise(50, 50, 4).save(&input).unwrap();
    let out = dir.path().join("out");
    let args = |extra: &[&str]| {
        let mut v: Vec<std::ffi::OsString> = vec![
            "--model".into(),
            identity_model().into(),
            input.clone().into(),
            "--out".into(),
            out.clone().into(),
            "--box".into(),
            "1,1,5,5".into(),
        ];
        v.extend(extra.iter().map(Into::into));
        v
    };
    assert_eq!(infer(args(&[])).status.code(), Some(0));
    // Something else now lives at the output path: it must survive a second run.
    std::fs::write(out.join("a.png"), b"precious").unwrap();
    let o = infer(args(&[]));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(std::fs::read(out.join("a.png")).unwrap(), b"precious");
    let o = infer(args(&["--overwrite"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(load(&out.join("a.png")).dimensions(), (50, 50));
}

#[test]
fn boxes_and_mask_directories() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    let masks = dir.path().join("masks");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    std::fs::create_dir_all(masks.join("sub")).unwrap();
    let (a, b, c) = (noise(60, 40, 5), noise(30, 30, 6), noise(20, 20, 7));
    a.save(photos.join("a.png")).unwrap();
    b.save(photos.join("sub/b.bmp")).unwrap();
    c.save(photos.join("c.png")).unwrap();
    box_mask(60, 40, 10, 5, 20, 20).save(masks.join("a.png")).unwrap();
    // Inverted convention (0 = hole) for b, paired by its relative path.
    let inverted = GrayImage::from_fn(30, 30, |x, y| {
        Luma([if (3..13).contains(&x) && (3..13).contains(&y) {
            0
        } else {
            255
        }])
    });
    inverted.save(masks.join("sub/b.png")).unwrap();
    // c has no mask: that image fails, the others are written.
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--masks".as_ref(),
        masks.as_os_str(),
        "--invert-mask".as_ref(),
    ]);
    // With --invert-mask, a.png's mask (255 = hole) inverts to "everything but the box": a is then
    // reconstructed almost everywhere, so check a without the flag below.
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("c.png") && stderr(&o).contains("no mask"),
        "{}",
        stderr(&o)
    );
    assert_only_rect_changed(&b, &load(&out.join("sub/b.png")), (3, 3, 10, 10), (2, 2));
    assert!(!out.join("c.png").exists());

    let out2 = dir.path().join("out2");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.join("a.png").as_os_str(),
        "--out".as_ref(),
        out2.as_os_str(),
        "--masks".as_ref(),
        masks.join("a.png").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_only_rect_changed(&a, &load(&out2.join("a.png")), (10, 5, 20, 20), (3, 3));

    // Two boxes, no mask: both rectangles change, nothing else.
    let out3 = dir.path().join("out3");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.join("a.png").as_os_str(),
        "--out".as_ref(),
        out3.as_os_str(),
        "--box".as_ref(),
        "0,0,10,10".as_ref(),
        "--box".as_ref(),
        "50,30,100,100".as_ref(), // clipped to the image
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let result = load(&out3.join("a.png"));
    for (x, y, p) in result.enumerate_pixels() {
        let hole = (x < 10 && y < 10) || (x >= 50 && y >= 30);
        if !hole {
            assert_eq!(p, a.get_pixel(x, y), "{x},{y}");
        }
    }
    assert_ne!(result.get_pixel(2, 2), a.get_pixel(2, 2));
    assert_ne!(result.get_pixel(55, 35), a.get_pixel(55, 35));
}

#[test]
fn batch_size_does_not_change_results_and_holeless_images_are_copied() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for i in 0..7u32 {
        let mut img = noise(40 + 13 * i, 50 + 7 * i, 10 + i);
        if i != 3 {
            paint_black(&mut img, 5 + i, 6, 12, 10 + i);
        }
        img.save(photos.join(format!("p{i}.png"))).unwrap();
    }
    let run = |batch: &str, out: &Path| {
        let o = infer([
            "--model".as_ref(),
            identity_model().as_os_str(),
            photos.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--batch-size".as_ref(),
            batch.as_ref(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stderr(&o).contains("6 reconstructed, 1 without hole"), "{}", stderr(&o));
    };
    let (one, many) = (dir.path().join("one"), dir.path().join("many"));
    run("1", &one);
    run("5", &many);
    for i in 0..7 {
        let name = format!("p{i}.png");
        assert_eq!(load(&one.join(&name)), load(&many.join(&name)), "{name}");
    }
    assert_eq!(
        load(&one.join("p3.png")),
        load(&photos.join("p3.png")),
        "an image without hole is copied unchanged"
    );
}

#[test]
fn usage_and_model_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    noise(20, 20, 1).save(photos.join("x.png")).unwrap();
    let not_onnx = dir.path().join("model.onnx");
    std::fs::write(&not_onnx, "definitely not protobuf").unwrap();

    let o = infer([
        "--model".as_ref(),
        not_onnx.as_os_str(),
        photos.as_os_str(),
        "--out".as_ref(),
        dir.path().join("o").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("invalid model") && stderr(&o).contains("model.onnx"),
        "{}",
        stderr(&o)
    );

    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.as_os_str(),
        "--out".as_ref(),
        photos.join("out").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refusing to write into the input directory"),
        "{}",
        stderr(&o)
    );
    assert!(!photos.join("out").exists());

    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        dir.path().join("missing").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.as_os_str(),
        "--box".as_ref(),
        "1,2,3".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    // An unloadable ONNX Runtime library: exit 2 with the setup hint.
    let o = Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .args([
            "--model".as_ref(),
            identity_model().as_os_str(),
            photos.as_os_str(),
            "--out".as_ref(),
            dir.path().join("o2").as_os_str(),
        ])
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("make setup") && stderr(&o).contains("ORT_DYLIB_PATH"),
        "{}",
        stderr(&o)
    );
}

/// The same end-to-end property on a real exported model, when one is provided.
#[test]
fn real_model_keeps_known_pixels() {
    let Some(model) = std::env::var_os("FACERECON_TEST_MODEL").filter(|m| !m.is_empty()) else {
        eprintln!("FACERECON_TEST_MODEL not set: checked with the fixture model only");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut img = noise(300, 200, 9);
    paint_black(&mut img, 100, 60, 40, 40);
    let input = dir.path().join("in.png");
    img.save(&input).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        Path::new("--model"),
        Path::new(&model),
        &input,
        Path::new("--out"),
        &out,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let result = load(&out.join("in.png"));
    assert_eq!(result.dimensions(), (300, 200));
    for (x, y, p) in result.enumerate_pixels() {
        if !(99..141).contains(&x) || !(59..101).contains(&y) {
            assert_eq!(p, img.get_pixel(x, y));
        }
    }
    assert_ne!(result.get_pixel(120, 80), &Rgb([0, 0, 0]), "the hole was filled");
}

#[test]
fn feathered_seam_changes_only_the_hole_edge() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // A flat colour the identity model gets wrong everywhere: the feather corrects the hole's edge
    // toward the known ring, the hole's centre stays the model's colour.
    let mut img = RgbImage::from_pixel(64, 64, Rgb([200, 180, 160]));
    paint_black(&mut img, 20, 20, 24, 24);
    img.save(input.join("flat.png")).unwrap();
    let (hard, soft) = (dir.path().join("hard"), dir.path().join("soft"));
    for (out, feather) in [(&hard, "0"), (&soft, "3")] {
        let o = infer([
            "--model".as_ref(),
            identity_model().as_os_str(),
            "--box".as_ref(),
            "20,20,24,24".as_ref(),
            "--fit".as_ref(),
            "whole".as_ref(),
            "--feather".as_ref(),
            feather.as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            input.as_os_str(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (h, s) = (load(&hard.join("flat.png")), load(&soft.join("flat.png")));
    let inside = |x: u32, y: u32| (20..44).contains(&x) && (20..44).contains(&y);
    let mut edge_closer = 0;
    for (x, y, p) in img.enumerate_pixels() {
        if !inside(x, y) {
            assert_eq!(s.get_pixel(x, y), p, "known pixel ({x},{y}) changed");
        } else if x == 20 || y == 20 || x == 43 || y == 43 {
            // the first pixel inside the edge moves toward the known colour
            let d = |q: &Rgb<u8>| (0..3).map(|c| (q[c] as i32 - 200 + 20 * c as i32).abs()).sum::<i32>();
            edge_closer += usize::from(d(s.get_pixel(x, y)) < d(h.get_pixel(x, y)));
        } else if (24..40).contains(&x) && (24..40).contains(&y) {
            assert_eq!(
                s.get_pixel(x, y),
                h.get_pixel(x, y),
                "deep hole pixel ({x},{y}) changed by the seam"
            );
        }
    }
    assert!(
        edge_closer >= 80,
        "edge pixels corrected toward the known ring: {edge_closer} of 92"
    );
}

#[test]
fn large_photo_small_hole_keeps_every_known_pixel() {
    // A 1000x1000 photo with a 40x40 hole comes back 1000x1000; every pixel outside the hole is
    // bit-identical (the default feathered seam works inside the hole only) and the hole is filled.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let mut img = noise(1000, 1000, 11);
    paint_black(&mut img, 610, 380, 40, 40);
    img.save(input.join("big.png")).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        input.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let res = load(&out.join("big.png"));
    assert_eq!(res.dimensions(), (1000, 1000));
    let (mut filled, mut changed_outside) = (0, 0);
    for (x, y, p) in img.enumerate_pixels() {
        let q = res.get_pixel(x, y);
        // dark-hole detection grows the hole by one pixel: the ring around the box may change
        let in_hole = (609..651).contains(&x) && (379..421).contains(&y);
        if in_hole {
            filled += usize::from((610..650).contains(&x) && (380..420).contains(&y) && q != &Rgb([0, 0, 0]));
        } else {
            changed_outside += usize::from(p != q);
        }
    }
    assert_eq!(changed_outside, 0, "known pixels changed");
    assert_eq!(filled, 1600, "every hole pixel filled");
}
