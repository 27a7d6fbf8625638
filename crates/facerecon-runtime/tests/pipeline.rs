//! Pre/post-processing geometry, without ONNX Runtime.

use facerecon_runtime::contract::{is_hole, HOLE_THRESHOLD};
use facerecon_runtime::pipeline::{
    choose_region, downscale_mask_max, finish, hole_bbox, prepare, FitMode, Prepared, Region,
};
use facerecon_runtime::RuntimeError;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// Deterministic noise, so that "unchanged" means bit-identical, not "still flat".
fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    RgbImage::from_fn(w, h, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        Rgb([next(), next(), next()])
    })
}

fn rect_mask(w: u32, h: u32, r: Region) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let inside = x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height;
        Luma([if inside { 255 } else { 0 }])
    })
}

/// A `[3,S,S]` reconstruction whose red channel encodes the column and green the row (in [0,1]).
fn coordinate_recon(size: u32) -> Vec<f32> {
    let plane = (size * size) as usize;
    let mut v = vec![0.5f32; 3 * plane];
    for y in 0..size {
        for x in 0..size {
            let i = (y * size + x) as usize;
            v[i] = (x as f32 + 0.5) / size as f32;
            v[plane + i] = (y as f32 + 0.5) / size as f32;
        }
    }
    v
}

#[test]
fn bbox_of_holes() {
    let mut m = GrayImage::new(50, 40);
    assert_eq!(hole_bbox(&m), None);
    m.put_pixel(10, 5, Luma([HOLE_THRESHOLD])); // threshold is inclusive
    m.put_pixel(20, 30, Luma([255]));
    m.put_pixel(40, 35, Luma([HOLE_THRESHOLD - 1])); // below threshold: known
    assert_eq!(
        hole_bbox(&m),
        Some(Region {
            x: 10,
            y: 5,
            width: 11,
            height: 26
        })
    );
}

#[test]
fn region_choice() {
    let hole = |x, y, w, h| Region {
        x,
        y,
        width: w,
        height: h,
    };
    // The tutorial case: a 28x28 box in a 128x128 face -> the whole image.
    assert_eq!(
        choose_region(128, 128, hole(50, 50, 28, 28), 128, FitMode::Auto),
        hole(0, 0, 128, 128)
    );
    // Small hole in a large photo -> a square of at least the model size, centred on the hole.
    let r = choose_region(1000, 700, hole(600, 300, 40, 40), 128, FitMode::Auto);
    assert_eq!(r, hole(556, 256, 128, 128));
    // Larger hole: the side is twice the hole's longer side (50% margin each side).
    let r = choose_region(1000, 700, hole(100, 200, 150, 90), 128, FitMode::Auto);
    assert_eq!((r.width, r.height), (300, 300));
    assert!(r.x <= 100 && r.x + 300 >= 250 && r.y <= 200 && r.y + 300 >= 290);
    // Near a corner the square slides back inside the image.
    let r = choose_region(1000, 700, hole(990, 0, 10, 10), 128, FitMode::Auto);
    assert_eq!(r, hole(872, 0, 128, 128));
    // A hole too big for a crop "much smaller" than the image -> whole image...
    assert_eq!(
        choose_region(500, 400, hole(100, 100, 120, 120), 128, FitMode::Auto),
        hole(0, 0, 500, 400)
    );
    // ...unless the image is a large frame (shorter side >= 4x the model, a change made for camera frames): a square
    // around the hole, so that the network sees it at a usable scale and undistorted.
    assert_eq!(
        choose_region(1000, 700, hole(100, 100, 200, 200), 128, FitMode::Auto),
        hole(0, 0, 400, 400)
    );
    assert_eq!(
        choose_region(1000, 700, hole(100, 100, 200, 200), 256, FitMode::Auto),
        hole(0, 0, 1000, 700)
    );
    // camera_loop's 1920x1080 frame: a 640x640 crop (twice the hole's 324, rounded to 5 x 128) instead
    // of the whole frame squashed to 128x128.
    assert_eq!(
        choose_region(1920, 1080, hole(384, 270, 324, 158), 128, FitMode::Auto),
        hole(226, 29, 640, 640)
    );
    // From 4x the model size on, the side is the nearest multiple of it that fits the image and holds
    // the hole; below that, exactly twice the hole's longer side.
    for (long, side) in [
        (255, 510),
        (256, 512),
        (300, 640),
        (319, 640),
        (320, 640),
        (352, 768),
        (540, 1024),
    ] {
        let r = choose_region(1920, 1080, hole(100, 20, long, 10), 128, FitMode::Crop);
        assert_eq!((r.width, r.height), (side, side), "hole {long}");
    }
    // Rounded down when the nearest multiple would not fit the shorter side (1000: 1024 -> 896), kept
    // as it is when no multiple that fits holds the hole.
    let r = choose_region(1920, 1000, hole(0, 0, 600, 10), 128, FitMode::Crop);
    assert_eq!((r.width, r.height), (896, 896));
    let r = choose_region(1920, 1080, hole(0, 0, 1060, 10), 128, FitMode::Crop);
    assert_eq!((r.width, r.height), (1080, 1080));
    // A hole that fits no square crop stays a whole-image fit, large frame or not.
    assert_eq!(
        choose_region(1920, 1080, hole(0, 0, 1500, 10), 128, FitMode::Auto),
        hole(0, 0, 1920, 1080)
    );
    // Forced modes.
    assert_eq!(
        choose_region(1000, 700, hole(600, 300, 40, 40), 128, FitMode::Whole),
        hole(0, 0, 1000, 700)
    );
    let r = choose_region(1000, 700, hole(100, 100, 200, 200), 128, FitMode::Crop);
    assert_eq!((r.width, r.height), (400, 400));
    // A hole longer than the short side cannot fit any square: whole image even in Crop mode.
    assert_eq!(
        choose_region(1000, 300, hole(0, 0, 1000, 10), 128, FitMode::Crop),
        hole(0, 0, 1000, 300)
    );
}

#[test]
fn mask_downscale_keeps_tiny_holes() {
    let mut m = GrayImage::new(1000, 700);
    m.put_pixel(999, 699, Luma([255]));
    m.put_pixel(500, 350, Luma([255]));
    let small = downscale_mask_max(
        &m,
        Region {
            x: 0,
            y: 0,
            width: 1000,
            height: 700,
        },
        32,
    );
    assert_eq!(small.len(), 32 * 32);
    let holes: Vec<usize> = (0..small.len()).filter(|&i| small[i] == 1.0).collect();
    // 500/1000*32 = 16 and 350/700*32 = 16; the last pixel lands in the last cell.
    assert_eq!(holes, vec![16 * 32 + 16, 32 * 32 - 1]);
    // Upscaling (region smaller than the model) behaves like nearest: a 4x4 region with one hole
    // pixel gives an 8x8 block of holes out of 32x32.
    let mut m = GrayImage::new(4, 4);
    m.put_pixel(1, 2, Luma([255]));
    let up = downscale_mask_max(
        &m,
        Region {
            x: 0,
            y: 0,
            width: 4,
            height: 4,
        },
        32,
    );
    assert_eq!(up.iter().filter(|&&v| v == 1.0).count(), 64);
    assert_eq!(up[(16 * 32 + 8) as usize], 1.0);
}

#[test]
fn prepare_zeroes_holes_and_checks_sizes() {
    let img = RgbImage::from_pixel(64, 64, Rgb([200, 100, 50]));
    let mask = rect_mask(
        64,
        64,
        Region {
            x: 16,
            y: 16,
            width: 16,
            height: 16,
        },
    );
    // (Auto would crop a 32x32 square here: the hole with its margin is half the image.)
    let p = prepare(&img, &mask, 32, FitMode::Whole).unwrap();
    assert_eq!(
        p.region,
        Some(Region {
            x: 0,
            y: 0,
            width: 64,
            height: 64
        })
    );
    assert_eq!((p.image.len(), p.mask.len()), (3 * 32 * 32, 32 * 32));
    let plane = 32 * 32;
    for i in 0..plane {
        let (x, y) = (i % 32, i / 32);
        let hole = (8..16).contains(&x) && (8..16).contains(&y);
        assert_eq!(p.mask[i], if hole { 1.0 } else { 0.0 }, "mask at {x},{y}");
        let expected = if hole {
            [0.0; 3]
        } else {
            [200.0 / 255.0, 100.0 / 255.0, 50.0 / 255.0]
        };
        for (c, want) in expected.iter().enumerate() {
            assert!((p.image[c * plane + i] - want).abs() < 1e-6, "channel {c} at {x},{y}");
        }
    }
    // No hole: nothing to run.
    let p = prepare(&img, &GrayImage::new(64, 64), 32, FitMode::Auto).unwrap();
    assert!(!p.has_hole() && p.image.is_empty());
    // Mask of the wrong size.
    match prepare(&img, &GrayImage::new(63, 64), 32, FitMode::Auto) {
        Err(RuntimeError::MaskSize {
            width: 64,
            height: 64,
            mask_width: 63,
            mask_height: 64,
        }) => {}
        other => panic!("expected MaskSize, got {other:?}"),
    }
}

/// Only hole pixels change, and the reconstruction lands where it came from, for both fits.
fn check_finish(fit: FitMode, hole: Region) -> Region {
    let (w, h, s) = (1000, 700, 32);
    let img = noise(w, h, 7);
    let mask = rect_mask(w, h, hole);
    let prepared = prepare(&img, &mask, s, fit).unwrap();
    let region = prepared.region.unwrap();
    let out = finish(&img, &mask, &prepared, &coordinate_recon(s), s).unwrap();
    assert_eq!(out.dimensions(), (w, h));
    let mut changed = 0;
    for (x, y, p) in out.enumerate_pixels() {
        let in_hole = is_hole(mask.get_pixel(x, y).0[0]);
        if !in_hole {
            assert_eq!(p, img.get_pixel(x, y), "known pixel {x},{y} changed");
            continue;
        }
        changed += (p != img.get_pixel(x, y)) as usize;
        // Red encodes the column within the region, green the row (tolerance: resampling + rounding).
        let fx = (x - region.x) as f32 / region.width as f32 * 255.0;
        let fy = (y - region.y) as f32 / region.height as f32 * 255.0;
        assert!(
            (p.0[0] as f32 - fx).abs() <= 10.0,
            "red {} vs {fx} at {x},{y} (region {region:?})",
            p.0[0]
        );
        assert!(
            (p.0[1] as f32 - fy).abs() <= 10.0,
            "green {} vs {fy} at {x},{y} (region {region:?})",
            p.0[1]
        );
    }
    assert!(
        changed as u32 > hole.width * hole.height * 9 / 10,
        "only {changed} hole pixels changed"
    );
    region
}

#[test]
fn finish_whole_image_changes_only_holes() {
    let region = check_finish(
        FitMode::Whole,
        Region {
            x: 300,
            y: 200,
            width: 400,
            height: 300,
        },
    );
    assert_eq!(
        region,
        Region {
            x: 0,
            y: 0,
            width: 1000,
            height: 700
        }
    );
}

#[test]
fn finish_crop_changes_only_holes() {
    let region = check_finish(
        FitMode::Auto,
        Region {
            x: 700,
            y: 100,
            width: 60,
            height: 40,
        },
    );
    assert_eq!((region.width, region.height), (120, 120));
}

#[test]
fn finish_without_hole_is_a_copy_and_rejects_bad_lengths() {
    let img = noise(40, 30, 1);
    let empty = GrayImage::new(40, 30);
    let none = Prepared {
        region: None,
        image: vec![],
        mask: vec![],
    };
    assert_eq!(finish(&img, &empty, &none, &[], 32).unwrap(), img);
    let mask = rect_mask(
        40,
        30,
        Region {
            x: 1,
            y: 1,
            width: 5,
            height: 5,
        },
    );
    let p = prepare(&img, &mask, 32, FitMode::Auto).unwrap();
    assert!(matches!(
        finish(&img, &mask, &p, &[0.5; 10], 32),
        Err(RuntimeError::Inference(_))
    ));
}
