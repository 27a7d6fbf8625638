//! Runtime tests through ONNX Runtime, on the fixtures of tests/data (regenerate with make_identity.py).
//! They need the ONNX Runtime library: `make test` sets ORT_DYLIB_PATH.

use facerecon_runtime::{Device, FitMode, Provider, Runtime, RuntimeError, RuntimeOptions};
use image::{GrayImage, RgbImage};

use facerecon_testutil::{box_mask, noise, runtime_data as fixture, HOLE_COLOUR};

fn options() -> RuntimeOptions {
    RuntimeOptions {
        ort_library: Some(facerecon_testutil::ort_library().into()),
        threads: Some(1),
        batch_size: 3,
        ..Default::default()
    }
}

#[test]
fn loads_metadata_and_validates() {
    let rt = Runtime::load(fixture("identity.onnx"), &options()).unwrap();
    let info = rt.info();
    assert_eq!(info.image_size, 32);
    assert_eq!(info.channels, 3);
    assert_eq!(info.fixed_batch, None);
    assert_eq!(info.name.as_deref(), Some("identity"));
    assert_eq!(info.mask_channel, Some(false));
    assert_eq!(info.metrics.as_ref().unwrap()["psnr_hole"], 2.0);
    assert_eq!(rt.provider(), Provider::Cpu);
    assert_eq!(rt.batch_size(), 3);
}

#[test]
fn run_tensors_computes_the_graph() {
    let rt = Runtime::load(fixture("identity.onnx"), &options()).unwrap();
    let (n, plane) = (2, 32 * 32);
    let image: Vec<f32> = (0..n * 3 * plane).map(|i| (i % 97) as f32 / 97.0).collect();
    let mask: Vec<f32> = (0..n * plane).map(|i| ((i / 7) % 2) as f32).collect();
    let (rec, inp) = rt.run_tensors(&image, &mask, n).unwrap();
    let bias = [0.1, 0.3, 0.5];
    for (i, (&r, &p)) in rec.iter().zip(&inp).enumerate() {
        let (b, c, j) = (i / (3 * plane), (i / plane) % 3, i % plane);
        let m = mask[b * plane + j];
        let want_r = 0.5 * image[i] + bias[c];
        assert!(
            (r - want_r).abs() < 1e-6,
            "reconstruction[{i}] = {r}, expected {want_r}"
        );
        let want_p = m * want_r + (1.0 - m) * image[i];
        assert!((p - want_p).abs() < 1e-6, "inpainted[{i}] = {p}, expected {want_p}");
    }
    assert!(matches!(
        rt.run_tensors(&image[1..], &mask, n),
        Err(RuntimeError::Inference(_))
    ));
}

#[test]
fn large_photo_only_hole_pixels_change() {
    // (Auto crops a square around this small hole; Whole sees the whole photo, so its hole is larger
    // to keep some pixels away from the rim at 1000/32 pixels per model pixel.)
    for (fit, (hx, hy, hw, hh)) in [
        (FitMode::Auto, (420, 250, 90, 70)),
        (FitMode::Crop, (420, 250, 90, 70)),
        (FitMode::Whole, (300, 200, 400, 300)),
    ] {
        let rt = Runtime::load(fixture("identity.onnx"), &RuntimeOptions { fit, ..options() }).unwrap();
        let img = noise(1000, 700, 3);
        let mask = box_mask(1000, 700, hx, hy, hw, hh);
        let out = rt.reconstruct(&img, &mask).unwrap();
        assert_eq!(out.dimensions(), (1000, 700));
        // Upsampling blends the hole's rim with reconstructed known pixels (Catmull-Rom reaches two
        // model pixels out); deeper inside, every pixel is exactly the model's colour.
        let region = rt.prepare(&img, &mask).unwrap().region.unwrap();
        let rim = |extent: u32| (2.5 * extent as f32 / 32.0).ceil() as u32;
        let (rx, ry) = (rim(region.width), rim(region.height));
        let deep = |x: u32, y: u32| x >= hx + rx && x + rx < hx + hw && y >= hy + ry && y + ry < hy + hh;
        let mut exact = 0;
        for (x, y, p) in out.enumerate_pixels() {
            if mask.get_pixel(x, y).0[0] != 255 {
                assert_eq!(p, img.get_pixel(x, y), "{fit:?}: known pixel {x},{y} changed");
            } else if deep(x, y) {
                assert_eq!(*p, HOLE_COLOUR, "{fit:?}: hole pixel {x},{y} (region {region:?})");
                exact += 1;
            }
        }
        assert!(exact > 0, "{fit:?}: rim {rx}x{ry} leaves no deep hole pixel to check");
    }
}

#[test]
fn batches_equal_one_by_one() {
    let rt = Runtime::load(fixture("identity.onnx"), &options()).unwrap();
    let items: Vec<(RgbImage, GrayImage)> = (0..7u32)
        .map(|i| {
            let (w, h) = (40 + 30 * i, 60 + 11 * i);
            // Item 4 has no hole: it must come back unchanged, without upsetting the others.
            let mask = if i == 4 {
                GrayImage::new(w, h)
            } else {
                box_mask(w, h, 5 + i, 7, 10 + 3 * i, 12)
            };
            (noise(w, h, i), mask)
        })
        .collect();
    let batched = rt.reconstruct_batch(&items).unwrap();
    assert_eq!(batched.len(), items.len());
    for (i, ((img, mask), out)) in items.iter().zip(&batched).enumerate() {
        assert_eq!(out, &rt.reconstruct(img, mask).unwrap(), "item {i}");
        assert_eq!(out.dimensions(), img.dimensions());
    }
    assert_eq!(batched[4], items[4].0);
    assert_ne!(batched[0], items[0].0);
    // In place (7 items in batches of 3: a short last batch), the same images.
    let mut in_place = items.clone();
    rt.reconstruct_batch_in_place(&mut in_place).unwrap();
    for (i, ((img, mask), want)) in in_place.iter().zip(&batched).enumerate() {
        assert_eq!(img, want, "in place, item {i}");
        assert_eq!(mask, &items[i].1);
    }
    rt.reconstruct_batch_in_place(&mut []).unwrap();
    // A mask of the wrong size fails the call, naming both sizes.
    let bad = vec![(noise(10, 10, 1), GrayImage::new(9, 10))];
    let err = rt.reconstruct_batch(&bad).unwrap_err();
    assert!(err.to_string().contains("9x10"), "{err}");
    let mut bad = bad;
    let err = rt.reconstruct_batch_in_place(&mut bad).unwrap_err();
    assert!(err.to_string().contains("9x10"), "{err}");
}

#[test]
fn fixed_batch_model_without_metadata() {
    let rt = Runtime::load(fixture("nometa.onnx"), &options()).unwrap();
    assert_eq!(rt.info().image_size, 32, "size from the input shape");
    assert_eq!(rt.info().fixed_batch, Some(2));
    assert_eq!(rt.batch_size(), 2);
    let items: Vec<(RgbImage, GrayImage)> = (0..3)
        .map(|i| (noise(50, 50, i), box_mask(50, 50, 10, 10, 8, 8)))
        .collect();
    let batched = rt.reconstruct_batch(&items).unwrap();
    for ((img, mask), out) in items.iter().zip(&batched) {
        assert_eq!(out, &rt.reconstruct(img, mask).unwrap());
        assert_eq!(*out.get_pixel(14, 14), HOLE_COLOUR);
    }
}

#[test]
fn rejects_bad_model_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    let cases = [
        (fixture("wrong_io.onnx"), "no input named `image`"),
        // Refused by the runtime's own check before ONNX Runtime parses it (tests/hostile.rs has more).
        (text, "malformed protobuf"),
        (dir.path().join("missing.onnx"), "no such file"),
        (dir.path().to_path_buf(), "not a file"),
    ];
    for (path, want) in cases {
        match Runtime::load(&path, &options()) {
            Err(e @ RuntimeError::InvalidModel { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(&path.display().to_string()) && msg.contains(want),
                    "{msg:?} should name the file and say {want:?}"
                );
            }
            other => panic!("{}: expected InvalidModel, got {other:?}", path.display()),
        }
    }
}

#[test]
fn cuda_never_falls_back_silently() {
    let opts = RuntimeOptions {
        device: Device::Cuda(0),
        ..options()
    };
    match Runtime::load(fixture("identity.onnx"), &opts) {
        // The CPU build of ONNX Runtime (what `make setup` fetches by default) has no CUDA provider.
        Err(RuntimeError::Provider { provider, msg }) => {
            assert!(provider.contains("CUDA") && !msg.is_empty())
        }
        // A GPU build on a GPU machine: the provider must say so.
        Ok(rt) => assert_eq!(rt.provider(), Provider::Cuda(0)),
        Err(other) => panic!("expected a provider error, got {other}"),
    }
}

#[test]
fn infer_matches_run_tensors_and_checks_lengths() {
    // `infer` fetches only `reconstruction` and splits it per item; it must agree with the full run.
    let rt = Runtime::load(fixture("identity.onnx"), &options()).unwrap();
    let plane = 32 * 32;
    let prepared: Vec<facerecon_runtime::Prepared> = (0..5)
        .map(|k| facerecon_runtime::Prepared {
            region: Some(facerecon_runtime::Region {
                x: 0,
                y: 0,
                width: 32,
                height: 32,
            }),
            image: (0..3 * plane).map(|i| ((i * (k + 3)) % 89) as f32 / 89.0).collect(),
            mask: (0..plane).map(|i| ((i / (k + 2)) % 2) as f32).collect(),
        })
        .collect();
    let refs: Vec<&facerecon_runtime::Prepared> = prepared.iter().collect();
    let recs = rt.infer(&refs).unwrap();
    let image: Vec<f32> = prepared.iter().flat_map(|p| p.image.iter().copied()).collect();
    let mask: Vec<f32> = prepared.iter().flat_map(|p| p.mask.iter().copied()).collect();
    let (rec, _) = rt.run_tensors(&image, &mask, prepared.len()).unwrap();
    for (k, r) in recs.iter().enumerate() {
        assert_eq!(r.as_slice(), &rec[k * 3 * plane..(k + 1) * 3 * plane], "item {k}");
    }
    // Twice more, so the reused batch buffers are exercised with leftovers from a larger call.
    assert_eq!(rt.infer(&refs[..1]).unwrap()[0], recs[0]);
    assert_eq!(rt.infer(&refs[3..]).unwrap(), recs[3..].to_vec());
    let short = facerecon_runtime::Prepared {
        region: Some(facerecon_runtime::Region {
            x: 0,
            y: 0,
            width: 32,
            height: 32,
        }),
        image: vec![0.0; 3 * plane - 1],
        mask: vec![1.0; plane],
    };
    let err = rt.infer(&[&short]).unwrap_err();
    assert!(err.to_string().contains("the model needs"), "{err}");
}

#[test]
fn reconstruct_in_place_writes_what_prepare_infer_finish_return() {
    // Camera software updates its own frame buffer: the result must be the composed steps' image,
    // with and without a seam, and a failed call must leave the buffer as it was.
    for feather in [0, 3] {
        let rt = Runtime::load(fixture("identity.onnx"), &RuntimeOptions { feather, ..options() }).unwrap();
        for (w, h) in [(90, 70), (700, 560)] {
            let (img, mask) = (noise(w, h, 5), box_mask(w, h, w / 3, h / 4, w / 5, h / 6));
            let prepared = rt.prepare(&img, &mask).unwrap();
            let rec = rt.infer(&[&prepared]).unwrap();
            let want = rt.finish(&img, &mask, &prepared, &rec[0]).unwrap();
            let mut frame = img.clone();
            rt.reconstruct_in_place(&mut frame, &mask).unwrap();
            assert!(frame == want, "{w}x{h}, feather {feather}");
            assert!(frame != img, "{w}x{h}: nothing reconstructed");
        }
    }
    let rt = Runtime::load(fixture("identity.onnx"), &options()).unwrap();
    let mut frame = noise(20, 20, 1);
    let before = frame.clone();
    assert!(matches!(
        rt.reconstruct_in_place(&mut frame, &GrayImage::new(19, 20)),
        Err(RuntimeError::MaskSize { .. })
    ));
    assert!(frame == before);
}

#[test]
fn reconstruct_in_place_in_box_equals_the_scan_and_refuses_bad_boxes() {
    // Camera software that knows where the hole is (a face detector's box) passes it: the mask is
    // then read only there, and the frame must come out exactly as with the whole-mask scan.
    use facerecon_runtime::Region;
    for feather in [0, 3] {
        let rt = Runtime::load(fixture("identity.onnx"), &RuntimeOptions { feather, ..options() }).unwrap();
        for (w, h) in [(90, 70), (700, 560)] {
            let hole = Region {
                x: w / 3,
                y: h / 4,
                width: w / 5,
                height: h / 6,
            };
            let (img, mask) = (noise(w, h, 5), box_mask(w, h, hole.x, hole.y, hole.width, hole.height));
            let mut want = img.clone();
            rt.reconstruct_in_place(&mut want, &mask).unwrap();
            let margin = Region {
                x: hole.x - 5,
                y: hole.y - 3,
                width: hole.width + 20,
                height: hole.height + 7,
            };
            let whole = Region {
                x: 0,
                y: 0,
                width: w,
                height: h,
            };
            for hole_box in [hole, margin, whole] {
                let mut frame = img.clone();
                rt.reconstruct_in_place_in_box(&mut frame, &mask, hole_box).unwrap();
                assert!(frame == want, "{w}x{h}, feather {feather}, box {hole_box:?}");
            }
            // A box that cuts the hole: an error, and the frame untouched.
            let cut = Region {
                width: hole.width - 1,
                ..hole
            };
            let mut frame = img.clone();
            let err = rt.reconstruct_in_place_in_box(&mut frame, &mask, cut).unwrap_err();
            assert!(matches!(err, RuntimeError::HoleBox(_)), "{err}");
            assert!(err.to_string().contains("continues past the box"), "{err}");
            assert!(frame == img);
        }
    }
}
