//! The library's pre/post-processing (`pipeline::prepare` / `finish_feathered` / `finish_in_place`:
//! windowed resizes, box pre-reduction, hole-bbox-only upsampling) against a straightforward
//! `image`-crate version, kept here as the oracle: every tensor and every pixel must be
//! bit-identical, on many sizes, aspect ratios, hole placements, fit modes, seam widths and source
//! colour types. The oracle is the version the fast path replaced, plus (since the camera-frame work) the box
//! pre-reduction of regions at least 4x the model size, written as plain loops. The known-hole-box
//! path (`prepare_in_box` / `finish_in_place_in_box`) must give the scan path's results.

use facerecon_imaging::{composite, layout};
use facerecon_runtime::feather::feather_holes;
use facerecon_runtime::pipeline::{self, choose_region, FitMode, Prepared, Region, HOLE_THRESHOLD};
use image::{imageops, imageops::FilterType, DynamicImage, GrayImage, Luma, Rgb, RgbImage, Rgba};

/// The oracle's `prepare`: crop with `imageops`, resize with `imageops::resize`, max-pool the mask
/// pixel by pixel.
fn oracle_prepare(image: &RgbImage, mask: &GrayImage, size: u32, fit: FitMode) -> Prepared {
    let Some(hole) = oracle_hole_bbox(
        mask,
        Region {
            x: 0,
            y: 0,
            width: mask.width(),
            height: mask.height(),
        },
    ) else {
        return Prepared {
            region: None,
            image: Vec::new(),
            mask: Vec::new(),
        };
    };
    let region = choose_region(image.width(), image.height(), hole, size, fit);
    let cut = imageops::crop_imm(image, region.x, region.y, region.width, region.height).to_image();
    let cut = oracle_box_reduce(&cut, size);
    let fitted = if (region.width, region.height) == (size, size) {
        cut
    } else {
        imageops::resize(&cut, size, size, FilterType::Triangle)
    };
    let span = |i: u32, extent: u32| -> (u32, u32) {
        let start = (i as u64 * extent as u64 / size as u64) as u32;
        let end = (((i as u64 + 1) * extent as u64).div_ceil(size as u64) as u32).clamp(start + 1, extent);
        (start, end)
    };
    let mut small_mask = vec![0.0f32; (size * size) as usize];
    for oy in 0..size {
        let (y0, y1) = span(oy, region.height);
        for ox in 0..size {
            let (x0, x1) = span(ox, region.width);
            if (y0..y1).any(|y| (x0..x1).any(|x| mask.get_pixel(region.x + x, region.y + y).0[0] >= HOLE_THRESHOLD)) {
                small_mask[(oy * size + ox) as usize] = 1.0;
            }
        }
    }
    let mut chw = layout::to_chw(&fitted);
    let plane = (size * size) as usize;
    for channel in chw.chunks_exact_mut(plane) {
        for (v, m) in channel.iter_mut().zip(&small_mask) {
            if *m > 0.5 {
                *v = 0.0;
            }
        }
    }
    Prepared {
        region: Some(region),
        image: chw,
        mask: small_mask,
    }
}

/// The box pre-reduction: on an axis of at least 4x the model size, the mean (rounded half up) of
/// blocks of `k` pixels, `k` the largest divisor of the extent up to extent / size (at most 63).
fn oracle_box_reduce(cut: &RgbImage, size: u32) -> RgbImage {
    let factor = |extent: u32| -> u32 {
        if extent / size < 4 {
            return 1;
        }
        (1..=(extent / size).min(63))
            .filter(|&k| extent.is_multiple_of(k))
            .max()
            .unwrap()
    };
    let (kx, ky) = (factor(cut.width()), factor(cut.height()));
    RgbImage::from_fn(cut.width() / kx, cut.height() / ky, |x, y| {
        Rgb(std::array::from_fn(|c| {
            let mut sum = 0u32;
            for dy in 0..ky {
                for dx in 0..kx {
                    sum += cut.get_pixel(x * kx + dx, y * ky + dy).0[c] as u32;
                }
            }
            ((sum + kx * ky / 2) / (kx * ky)) as u8
        }))
    })
}

fn oracle_hole_bbox(mask: &GrayImage, area: Region) -> Option<Region> {
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in area.y..area.y + area.height {
        for x in area.x..area.x + area.width {
            if mask.get_pixel(x, y).0[0] >= HOLE_THRESHOLD {
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
        }
    }
    (x0 != u32::MAX).then(|| Region {
        x: x0,
        y: y0,
        width: x1 - x0 + 1,
        height: y1 - y0 + 1,
    })
}

/// The oracle's `finish_feathered`: the whole region upsampled with `imageops::resize`, hole pixels
/// replaced one by one, then the library's seam over that full patch.
fn oracle_finish(
    original: &RgbImage,
    mask: &GrayImage,
    prepared: &Prepared,
    rec: &[f32],
    size: u32,
    feather: u32,
) -> RgbImage {
    let Some(region) = prepared.region else {
        return original.clone();
    };
    let small = layout::from_chw(rec, size, size);
    let patch = if (region.width, region.height) == (size, size) {
        small
    } else {
        imageops::resize(&small, region.width, region.height, FilterType::CatmullRom)
    };
    let mut out = original.clone();
    for (px, py, p) in patch.enumerate_pixels() {
        let (x, y) = (region.x + px, region.y + py);
        if mask.get_pixel(x, y).0[0] >= HOLE_THRESHOLD {
            out.put_pixel(x, y, *p);
        }
    }
    feather_holes(&mut out, original, mask, &patch, region, region, feather);
    out
}

/// xorshift32: deterministic cases without a `rand` dependency.
struct Rng(u32);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn rect(mask: &mut GrayImage, x: u32, y: u32, w: u32, h: u32, value: u8) {
    for yy in y..(y + h).min(mask.height()) {
        for xx in x..(x + w).min(mask.width()) {
            mask.put_pixel(xx, yy, Luma([value]));
        }
    }
}

/// One case through both implementations; `what` names it in failures.
fn compare(image: &RgbImage, mask: &GrayImage, size: u32, fit: FitMode, rng: &mut Rng, what: &str) {
    let fast = pipeline::prepare(image, mask, size, fit).unwrap();
    let slow = oracle_prepare(image, mask, size, fit);
    assert_eq!(fast.region, slow.region, "{what}: region");
    assert!(fast.image == slow.image, "{what}: prepared image differs");
    assert!(fast.mask == slow.mask, "{what}: prepared mask differs");
    // Out of range on purpose: CatmullRom overshoots and the result is clamped.
    let rec: Vec<f32> = (0..3 * size * size)
        .map(|_| rng.range(0, 1200) as f32 / 1000.0 - 0.1)
        .collect();
    for feather in [0, 1, 4] {
        let got = pipeline::finish_feathered(image, mask, &fast, &rec, size, feather).unwrap();
        let want = oracle_finish(image, mask, &slow, &rec, size, feather);
        assert!(
            got == want,
            "{what}: finished pixels differ (feather {feather}, region {:?})",
            fast.region
        );
        let mut frame = image.clone();
        pipeline::finish_in_place(&mut frame, mask, &fast, &rec, size, feather).unwrap();
        assert!(frame == want, "{what}: finish_in_place differs (feather {feather})");
    }
}

#[test]
fn fast_path_is_bit_identical_to_the_imageops_oracle() {
    let mut rng = Rng(0x2545_f491);
    let size = 32;
    // Sizes and aspect ratios: model size, portrait, landscape, thin, tiny, camera-like.
    let sizes = [
        (32, 32),
        (20, 300),
        (300, 20),
        (97, 61),
        (640, 360),
        (200, 200),
        (33, 31),
        (480, 640),
    ];
    for (case, &(w, h)) in sizes.iter().cycle().take(48).enumerate() {
        let noise: Vec<u8> = (0..w * h * 3).map(|_| (rng.next() >> 24) as u8).collect();
        let image = RgbImage::from_raw(w, h, noise).unwrap();
        let mut mask = GrayImage::new(w, h);
        // Hole placements: anywhere, at a corner, along an edge, the whole image, two distant holes
        // (the bounding box then holds known pixels), threshold values 127/128, no hole.
        let (bw, bh) = (rng.range(1, w.min(60)), rng.range(1, h.min(60)));
        let (bx, by) = (rng.range(0, w - bw), rng.range(0, h - bh));
        match case % 6 {
            0 => rect(&mut mask, bx, by, bw, bh, 255),
            1 => rect(&mut mask, 0, 0, bw, bh, 255),
            2 => rect(&mut mask, w - bw, by, bw, bh, 200),
            3 => {
                rect(&mut mask, bx, by, bw, bh, 255);
                rect(&mut mask, rng.range(0, w - 1), rng.range(0, h - 1), 1, 1, 128);
            }
            4 => {
                rect(&mut mask, bx, by, bw, bh, 127); // not a hole
                rect(&mut mask, bx / 2, by / 2, 2, 2, 128);
            }
            _ if case == 5 => {} // no hole at all
            _ => rect(&mut mask, 0, 0, w, h, 255),
        }
        let fit = [FitMode::Auto, FitMode::Whole, FitMode::Crop][case % 3];
        compare(
            &image,
            &mask,
            size,
            fit,
            &mut rng,
            &format!("case {case}: {w}x{h} {fit:?}"),
        );
    }
}

#[test]
fn a_camera_frame_with_a_face_sized_hole_is_bit_identical() {
    // What examples/camera_loop.rs runs: 1920x1080, one hole of a sixth by a seventh of the frame,
    // at the model's real size.
    let mut rng = Rng(7);
    let (w, h) = (1920, 1080);
    let image = RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (x + y) as u8])
    });
    let mut mask = GrayImage::new(w, h);
    rect(&mut mask, 391, 275, 324, 158, 255);
    for fit in [FitMode::Auto, FitMode::Crop, FitMode::Whole] {
        compare(&image, &mask, 128, fit, &mut rng, &format!("1920x1080 {fit:?}"));
    }
    // A face-shaped (elliptic) hole: without a seam only its pixels are upsampled, row by row.
    let oval = GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = ((x as f32 - 900.5) / 150.0, (y as f32 - 500.5) / 190.0);
        Luma([if dx * dx + dy * dy <= 1.0 { 255 } else { 0 }])
    });
    compare(&image, &oval, 128, FitMode::Auto, &mut rng, "1920x1080 oval");
}

#[test]
fn other_colour_types_through_their_rgb8_view_are_bit_identical() {
    // The CLI hands the pipeline `composite::network_view` of whatever it decoded.
    let mut rng = Rng(99);
    let (w, h) = (150, 90);
    let mut mask = GrayImage::new(w, h);
    rect(&mut mask, 40, 30, 25, 20, 255);
    let images = [
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| Luma([(x * 3 + y) as u8]))),
        DynamicImage::ImageRgba8(image::RgbaImage::from_fn(w, h, |x, y| {
            Rgba([x as u8, y as u8, (x ^ y) as u8, (x * 7) as u8])
        })),
        DynamicImage::ImageRgb16(image::ImageBuffer::from_fn(w, h, |x, y| {
            Rgb([(x * 400) as u16, (y * 700) as u16, ((x + y) * 123) as u16])
        })),
    ];
    for img in images {
        let view = composite::network_view(&img);
        compare(&view, &mask, 32, FitMode::Auto, &mut rng, &format!("{:?}", img.color()));
    }
}

#[test]
fn box_pre_reduction_stays_close_to_the_plain_triangle_resize() {
    // The box pass is a behaviour change (unreleased) for regions of at least 4x the model size; on
    // smooth content it must give what the single Triangle pass gave, within a couple of levels.
    let (w, h) = (1920, 1080);
    let image = RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
        Rgb([
            (255.0 * fx) as u8,
            (127.5 + 127.0 * (6.0 * fx + 4.0 * fy).sin()) as u8,
            (255.0 * fy * fy) as u8,
        ])
    });
    let mut mask = GrayImage::new(w, h);
    rect(&mut mask, 391, 275, 324, 158, 255);
    for fit in [FitMode::Auto, FitMode::Whole] {
        let p = pipeline::prepare(&image, &mask, 128, fit).unwrap();
        let r = p.region.unwrap();
        let cut = imageops::crop_imm(&image, r.x, r.y, r.width, r.height).to_image();
        let plain = layout::to_chw(&imageops::resize(&cut, 128, 128, FilterType::Triangle));
        let worst = p
            .image
            .iter()
            .zip(&plain)
            .zip(p.mask.iter().cycle())
            .filter(|(_, &m)| m == 0.0)
            .map(|((a, b), _)| (a - b).abs() * 255.0)
            .fold(0.0f32, f32::max);
        assert!(worst <= 2.5, "{fit:?}: {worst} levels from the plain Triangle resize");
    }
}

/// `hole_box` grown by `margin` on every side, clipped to a `w x h` image.
fn grown(hole_box: Region, margin: u32, w: u32, h: u32) -> Region {
    let (x, y) = (hole_box.x.saturating_sub(margin), hole_box.y.saturating_sub(margin));
    Region {
        x,
        y,
        width: (hole_box.x + hole_box.width + margin).min(w) - x,
        height: (hole_box.y + hole_box.height + margin).min(h) - y,
    }
}

#[test]
fn a_known_hole_box_gives_the_scan_paths_result() {
    // prepare_in_box / finish_in_place_in_box read the mask only inside the caller's box: for any box
    // that holds every hole pixel (tight, with a margin, clipped at the image's edge, the whole
    // image) the tensors and the frame are the scan path's, bit for bit, with or without a seam.
    let mut rng = Rng(0x51ed_2701);
    let size = 32;
    let mut cases: Vec<(RgbImage, GrayImage)> = Vec::new();
    for (w, h) in [(97, 61), (640, 360), (300, 20), (33, 31)] {
        let noise: Vec<u8> = (0..w * h * 3).map(|_| (rng.next() >> 24) as u8).collect();
        let image = RgbImage::from_raw(w, h, noise).unwrap();
        for corner in [false, true] {
            let mut mask = GrayImage::new(w, h);
            let (bw, bh) = (rng.range(1, w.min(60)), rng.range(1, h.min(60)));
            let (bx, by) = if corner {
                (w - bw, 0)
            } else {
                (rng.range(0, w - bw), rng.range(0, h - bh))
            };
            rect(&mut mask, bx, by, bw, bh, 255);
            // A stray hole pixel inside the box's bounds, and a value just below the threshold.
            rect(&mut mask, bx + bw / 2, by + bh / 2, 1, 1, 128);
            rect(&mut mask, (bx + bw).min(w - 1), by, 1, 1, 127);
            cases.push((image.clone(), mask));
        }
    }
    // The camera frame, rectangular and oval holes.
    let (w, h) = (1920, 1080);
    let frame = RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, (x + y) as u8])
    });
    let mut mask = GrayImage::new(w, h);
    rect(&mut mask, 391, 275, 324, 158, 255);
    cases.push((frame.clone(), mask));
    let oval = GrayImage::from_fn(w, h, |x, y| {
        let (dx, dy) = ((x as f32 - 900.5) / 150.0, (y as f32 - 500.5) / 190.0);
        Luma([if dx * dx + dy * dy <= 1.0 { 255 } else { 0 }])
    });
    cases.push((frame, oval));

    for (k, (image, mask)) in cases.iter().enumerate() {
        let (w, h) = image.dimensions();
        let tight = pipeline::hole_bbox(mask).unwrap();
        let size = if w >= 1920 { 128 } else { size };
        for fit in [FitMode::Auto, FitMode::Whole, FitMode::Crop] {
            let scan = pipeline::prepare(image, mask, size, fit).unwrap();
            let rec: Vec<f32> = (0..3 * size * size)
                .map(|_| rng.range(0, 1000) as f32 / 1000.0)
                .collect();
            for margin in [0, 1, 7, 5000] {
                let hole_box = grown(tight, margin, w, h);
                let what = format!("case {k}: {w}x{h} {fit:?}, box {hole_box:?}");
                assert_eq!(pipeline::check_hole_box(mask, hole_box).unwrap(), Some(tight), "{what}");
                let boxed = pipeline::prepare_in_box(image, mask, hole_box, size, fit).unwrap();
                assert!(boxed == scan, "{what}: prepared tensors differ");
                for feather in [0, 2] {
                    let mut want = image.clone();
                    pipeline::finish_in_place(&mut want, mask, &scan, &rec, size, feather).unwrap();
                    let mut got = image.clone();
                    pipeline::finish_in_place_in_box(&mut got, mask, &boxed, &rec, size, feather, hole_box).unwrap();
                    assert!(got == want, "{what}, feather {feather}: frames differ");
                }
            }
        }
    }
}

#[test]
fn bad_hole_boxes_are_errors() {
    let (w, h) = (80, 60);
    let image = RgbImage::from_fn(w, h, |x, y| Rgb([x as u8, y as u8, 7]));
    let mut mask = GrayImage::new(w, h);
    rect(&mut mask, 20, 10, 15, 12, 255); // x 20..35, y 10..22
    let r = |x, y, width, height| Region { x, y, width, height };
    for (bad, want) in [
        (r(0, 0, 0, 10), "is empty"),
        (r(0, 0, 10, 0), "is empty"),
        (r(70, 0, 11, 10), "not inside the 80x60 image"),
        (r(0, 55, 10, 6), "not inside"),
        (r(u32::MAX, 0, 2, 2), "not inside"),
        // Each side of the hole cut by one pixel: the ring of the box has hole pixels.
        (r(21, 10, 14, 12), "continues past the box"),
        (r(20, 11, 15, 11), "continues past the box"),
        (r(20, 10, 14, 12), "continues past the box"),
        (r(20, 10, 15, 11), "continues past the box"),
        // A box inside the hole.
        (r(25, 12, 3, 3), "continues past the box"),
    ] {
        let err = pipeline::check_hole_box(&mask, bad).unwrap_err();
        assert!(err.to_string().contains(want), "{bad:?}: {err}");
        assert!(pipeline::prepare_in_box(&image, &mask, bad, 32, FitMode::Auto).is_err());
        let prepared = pipeline::prepare(&image, &mask, 32, FitMode::Auto).unwrap();
        let rec = vec![0.5; 3 * 32 * 32];
        let mut frame = image.clone();
        assert!(pipeline::finish_in_place_in_box(&mut frame, &mask, &prepared, &rec, 32, 0, bad).is_err());
        assert!(frame == image, "{bad:?}: the frame changed on an error");
    }
    // A box without any hole pixel (and none on its ring): nothing to do, as for an empty mask.
    let empty = r(50, 30, 10, 10);
    assert_eq!(pipeline::check_hole_box(&mask, empty).unwrap(), None);
    let prepared = pipeline::prepare_in_box(&image, &mask, empty, 32, FitMode::Auto).unwrap();
    assert!(!prepared.has_hole());
    // Holes touching the image's edge: a box at the edge has no ring there.
    let mut edge = GrayImage::new(w, h);
    rect(&mut edge, 0, 0, 5, 4, 255);
    rect(&mut edge, 70, 50, 10, 10, 255);
    assert_eq!(
        pipeline::check_hole_box(&edge, r(0, 0, 5, 4)).unwrap(),
        Some(r(0, 0, 5, 4))
    );
    assert_eq!(
        pipeline::check_hole_box(&edge, r(70, 50, 10, 10)).unwrap(),
        Some(r(70, 50, 10, 10))
    );
    // The documented limit: a hole elsewhere, not touching the box, is not looked at. The result is
    // the scan path's for a mask holding only the box's hole.
    let (a, b) = (r(0, 0, 5, 4), r(70, 50, 10, 10));
    let prepared = pipeline::prepare_in_box(&image, &edge, b, 32, FitMode::Crop).unwrap();
    let mut only_b = GrayImage::new(w, h);
    rect(&mut only_b, 70, 50, 10, 10, 255);
    assert!(prepared == pipeline::prepare(&image, &only_b, 32, FitMode::Crop).unwrap());
    let rec = vec![0.5; 3 * 32 * 32];
    let mut frame = image.clone();
    pipeline::finish_in_place_in_box(&mut frame, &edge, &prepared, &rec, 32, 0, b).unwrap();
    assert_eq!(frame.get_pixel(a.x, a.y), image.get_pixel(a.x, a.y));
    assert_ne!(frame.get_pixel(b.x, b.y), image.get_pixel(b.x, b.y));
}
