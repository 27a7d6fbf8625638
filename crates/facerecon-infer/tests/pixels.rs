//! Pixel-type guarantees of `facerecon-infer` (issue 15, items 6, 7, 12), on the tiny fixture model
//! of crates/facerecon-runtime/tests/data (identity.onnx reconstructs every zeroed hole pixel as
//! (0.1, 0.3, 0.5)): every colour type keeps its type, bit depth and alpha, known pixels stay
//! bit-identical in their original representation, transparency is never a hole, masks of another
//! aspect ratio are refused, and the default hole detection leaves real photos alone.
//! They need ONNX Runtime: `make test` sets ORT_DYLIB_PATH.

use std::path::{Path, PathBuf};

use facerecon_testutil::{box_mask, identity_model, stderr};
use image::{ColorType, DynamicImage, GenericImageView, GrayImage, ImageBuffer, Luma, Rgb, RgbImage};

mod common;
use common::infer;

/// A xorshift stream of u16 values.
struct Noise(u32);

impl Noise {
    fn next(&mut self) -> u16 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 >> 8) as u16
    }
}

/// A `w x h` image of colour type `color`: bright noise in the colour channels (never dark, so the
/// default detection finds nothing in it), alpha anywhere from 0 to opaque.
fn noise_image(color: ColorType, w: u32, h: u32, seed: u32) -> DynamicImage {
    let mut n = Noise(seed.wrapping_mul(2_654_435_761) | 1);
    // Colour samples in [0.25, 1) of full scale; alpha over the whole range.
    let mut c8 = || 64 + (n.next() % 192) as u8;
    let samples8: Vec<u8> = (0..w * h * 4).map(|_| c8()).collect();
    let mut n = Noise(seed.wrapping_mul(97) | 1);
    let samples16: Vec<u16> = (0..w * h * 4).map(|_| 16384 + n.next() % 49152).collect();
    let mut n = Noise(seed.wrapping_mul(31) | 1);
    let alpha: Vec<u16> = (0..w * h).map(|_| n.next()).collect();
    let a8 = |i: usize| (alpha[i] >> 8) as u8;
    let idx = |x: u32, y: u32| (y * w + x) as usize;
    match color {
        ColorType::L8 => DynamicImage::ImageLuma8(ImageBuffer::from_fn(w, h, |x, y| Luma([samples8[idx(x, y)]]))),
        ColorType::La8 => DynamicImage::ImageLumaA8(ImageBuffer::from_fn(w, h, |x, y| {
            image::LumaA([samples8[idx(x, y)], a8(idx(x, y))])
        })),
        ColorType::Rgb8 => DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
            let i = idx(x, y) * 4;
            Rgb([samples8[i], samples8[i + 1], samples8[i + 2]])
        })),
        ColorType::Rgba8 => DynamicImage::ImageRgba8(ImageBuffer::from_fn(w, h, |x, y| {
            let i = idx(x, y) * 4;
            image::Rgba([samples8[i], samples8[i + 1], samples8[i + 2], a8(idx(x, y))])
        })),
        ColorType::L16 => DynamicImage::ImageLuma16(ImageBuffer::from_fn(w, h, |x, y| Luma([samples16[idx(x, y)]]))),
        ColorType::La16 => DynamicImage::ImageLumaA16(ImageBuffer::from_fn(w, h, |x, y| {
            image::LumaA([samples16[idx(x, y)], alpha[idx(x, y)]])
        })),
        ColorType::Rgb16 => DynamicImage::ImageRgb16(ImageBuffer::from_fn(w, h, |x, y| {
            let i = idx(x, y) * 4;
            Rgb([samples16[i], samples16[i + 1], samples16[i + 2]])
        })),
        ColorType::Rgba16 => DynamicImage::ImageRgba16(ImageBuffer::from_fn(w, h, |x, y| {
            let i = idx(x, y) * 4;
            image::Rgba([samples16[i], samples16[i + 1], samples16[i + 2], alpha[idx(x, y)]])
        })),
        other => panic!("no generator for {other:?}"),
    }
}

/// The samples of pixel (x, y), widened to u16 (8-bit images: 0-255).
fn samples(img: &DynamicImage, x: u32, y: u32) -> Vec<u16> {
    let i = (y * img.width() + x) as usize;
    let n = img.color().channel_count() as usize;
    if img.color().bytes_per_pixel() as usize == n {
        img.as_bytes()[i * n..(i + 1) * n].iter().map(|&v| v as u16).collect()
    } else {
        match img {
            DynamicImage::ImageLuma16(b) => b.as_raw()[i * n..(i + 1) * n].to_vec(),
            DynamicImage::ImageLumaA16(b) => b.as_raw()[i * n..(i + 1) * n].to_vec(),
            DynamicImage::ImageRgb16(b) => b.as_raw()[i * n..(i + 1) * n].to_vec(),
            DynamicImage::ImageRgba16(b) => b.as_raw()[i * n..(i + 1) * n].to_vec(),
            other => panic!("unexpected {:?}", other.color()),
        }
    }
}

fn open(path: &Path) -> DynamicImage {
    image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_colour_type_keeps_its_depth_alpha_and_known_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let (w, h) = (72, 56);
    let (bx, by, bw, bh) = (20u32, 14u32, 24u32, 20u32);
    let kinds = [
        ColorType::L8,
        ColorType::La8,
        ColorType::Rgb8,
        ColorType::Rgba8,
        ColorType::L16,
        ColorType::La16,
        ColorType::Rgb16,
        ColorType::Rgba16,
    ];
    let mut inputs = Vec::new();
    for (k, color) in kinds.iter().enumerate() {
        let img = noise_image(*color, w, h, 5 + k as u32);
        let path = photos.join(format!("{color:?}.png"));
        img.save(&path).unwrap();
        // What the PNG decoder gives back is the reference (it is the same here).
        let reread = open(&path);
        assert_eq!(reread.color(), *color);
        inputs.push((color, path, reread));
    }
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        photos.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--box".as_ref(),
        format!("{bx},{by},{bw},{bh}").as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("8 reconstructed"), "{}", stderr(&o));
    for (color, path, input) in inputs {
        let result = open(&out.join(path.file_name().unwrap()));
        assert_eq!(result.color(), *color, "{color:?}: colour type or bit depth changed");
        assert_eq!(result.dimensions(), input.dimensions());
        let channels = color.channel_count() as usize;
        let has_alpha = color.has_alpha();
        let colour_channels = if has_alpha { channels - 1 } else { channels };
        let full = if color.bytes_per_pixel() as usize == channels {
            255.0
        } else {
            65535.0
        };
        // The model's hole colour (0.1, 0.3, 0.5), as grey for the grey types.
        let want: Vec<f64> = if colour_channels == 1 {
            vec![(0.2126 * 0.1 + 0.7152 * 0.3 + 0.0722 * 0.5) * full]
        } else {
            vec![0.1 * full, 0.3 * full, 0.5 * full]
        };
        let (mut changed, mut deep) = (0, 0);
        for y in 0..h {
            for x in 0..w {
                let (a, b) = (samples(&input, x, y), samples(&result, x, y));
                let inside = x >= bx && x < bx + bw && y >= by && y < by + bh;
                if !inside {
                    assert_eq!(a, b, "{color:?}: known pixel {x},{y} changed");
                    continue;
                }
                if has_alpha {
                    assert_eq!(
                        a[channels - 1],
                        b[channels - 1],
                        "{color:?}: alpha of hole pixel {x},{y}"
                    );
                }
                changed += (a != b) as u32;
                let margin = 8;
                if x >= bx + margin && x + margin < bx + bw && y >= by + margin && y + margin < by + bh {
                    deep += 1;
                    for c in 0..colour_channels {
                        // 16-bit holes come from the reconstruction at 16 bits (not 8-bit x 257).
                        let tolerance = full / 255.0 * 1.01;
                        assert!(
                            (b[c] as f64 - want[c]).abs() <= tolerance,
                            "{color:?}: hole pixel {x},{y} channel {c} = {}, want {}",
                            b[c],
                            want[c]
                        );
                    }
                }
            }
        }
        assert!(
            deep > 0 && changed > (bw * bh) / 2,
            "{color:?}: the hole did not change ({changed})"
        );
    }
}

#[test]
fn sixteen_bit_holes_have_sixteen_bit_values() {
    // The model's 0.1 is 6554 in 16 bits; an 8-bit value widened (26 * 257 = 6682) is not.
    let dir = tempfile::tempdir().unwrap();
    let img = noise_image(ColorType::Rgb16, 64, 64, 3);
    let input = dir.path().join("deep.png");
    img.save(&input).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--box".as_ref(),
        "16,16,32,32".as_ref(),
        "--feather".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let result = open(&out.join("deep.png"));
    assert_eq!(samples(&result, 32, 32), vec![6554, 19661, 32768]);
}

#[test]
fn transparency_is_never_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (200, 200);
    // Opaque bright noise, a fully transparent (0,0,0,0) square, and a band of nearly opaque black.
    let mut img = noise_image(ColorType::Rgba8, w, h, 9).to_rgba8();
    for (x, y, p) in img.enumerate_pixels_mut() {
        p.0[3] = 255;
        if (20..120).contains(&x) && (30..130).contains(&y) {
            p.0 = [0, 0, 0, 0];
        } else if (150..190).contains(&x) {
            p.0 = [0, 0, 0, 250];
        }
    }
    let transparent = dir.path().join("cutout.png");
    img.save(&transparent).unwrap();
    // The same with an opaque black box: that one is a hole; its alpha (255) is kept.
    let mut boxed = img.clone();
    for y in 150..180 {
        for x in 40..80 {
            boxed.put_pixel(x, y, image::Rgba([0, 0, 0, 255]));
        }
    }
    let boxed_path = dir.path().join("boxed.png");
    boxed.save(&boxed_path).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        transparent.as_os_str(),
        boxed_path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 reconstructed, 1 without hole"), "{}", stderr(&o));
    let result = open(&out.join("cutout.png"));
    assert_eq!(result.color(), ColorType::Rgba8);
    assert!(result.to_rgba8() == img, "a transparent region changed");
    let result = open(&out.join("boxed.png")).to_rgba8();
    let mut changed = 0;
    for (x, y, p) in result.enumerate_pixels() {
        let q = boxed.get_pixel(x, y);
        let in_box = (39..81).contains(&x) && (149..181).contains(&y);
        if !in_box {
            assert_eq!(p, q, "known pixel {x},{y} changed");
        } else {
            assert_eq!(p.0[3], 255, "alpha of {x},{y}");
            changed += (p != q) as u32;
        }
    }
    assert!(changed >= 30 * 40, "the box was not filled ({changed})");
}

#[test]
fn float_images_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let img = ImageBuffer::<Rgb<f32>, Vec<f32>>::from_fn(40, 40, |x, y| {
        Rgb([
            x as f32 / 40.0,
            y as f32 / 40.0,
            if (10..20).contains(&x) { 0.0 } else { 0.7 },
        ])
    });
    let input = dir.path().join("float.tiff");
    DynamicImage::ImageRgb32F(img).save(&input).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--box".as_ref(),
        "5,5,10,10".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("float.tiff") && err.contains("32-bit float"), "{err}");
    assert!(
        !out.join("float.png").exists(),
        "nothing is written for a refused image"
    );
}

/// Noise photos and masks for the aspect-ratio tests.
fn mask_case(dir: &Path, photo_size: (u32, u32), mask: &GrayImage) -> (PathBuf, PathBuf) {
    let photos = dir.join("photos");
    let masks = dir.join("masks");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    let photo = photos.join("face.png");
    noise_image(ColorType::Rgb8, photo_size.0, photo_size.1, 4)
        .save(&photo)
        .unwrap();
    mask.save(masks.join("face.png")).unwrap();
    (photos, masks)
}

#[test]
fn a_mask_of_another_aspect_ratio_is_an_error_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, masks) = mask_case(dir.path(), (120, 80), &box_mask(64, 64, 10, 10, 20, 20));
    let run = |extra: &[&str], out: &Path| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "--model".into(),
            identity_model().into(),
            photos.clone().into(),
            "--out".into(),
            out.into(),
            "--masks".into(),
            masks.clone().into(),
        ];
        args.extend(extra.iter().map(Into::into));
        infer(args)
    };
    let out = dir.path().join("out");
    let o = run(&[], &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    for needle in ["photos/face.png", "masks/face.png", "64x64", "120x80", "--resize-masks"] {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
    assert!(!out.join("face.png").exists());
    // Asked for: stretched to the photo (the old behaviour).
    let o = run(&["--resize-masks"], &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 reconstructed"), "{}", stderr(&o));
}

#[test]
fn a_mask_of_the_same_aspect_ratio_is_scaled() {
    let dir = tempfile::tempdir().unwrap();
    // A half-size mask (60x40 for 120x80; also 61x40 = a rounding of the same scale): the hole
    // lands at twice its coordinates.
    for (k, mw) in [60u32, 61].into_iter().enumerate() {
        let case = dir.path().join(format!("case{k}"));
        let (photos, masks) = mask_case(&case, (120, 80), &box_mask(mw, 40, 20, 10, 10, 10));
        let out = case.join("out");
        let o = infer([
            "--model".as_ref(),
            identity_model().as_os_str(),
            photos.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "--masks".as_ref(),
            masks.as_os_str(),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let input = open(&photos.join("face.png")).to_rgb8();
        let result = open(&out.join("face.png")).to_rgb8();
        for (x, y, p) in result.enumerate_pixels() {
            if !((38..62).contains(&x) && (18..42).contains(&y)) {
                assert_eq!(
                    p,
                    input.get_pixel(x, y),
                    "mask width {mw}: pixel {x},{y} outside the hole"
                );
            }
        }
        assert_ne!(
            result.get_pixel(50, 30),
            input.get_pixel(50, 30),
            "mask width {mw}: hole not filled"
        );
    }
}

/// A portrait-like picture: skin-coloured face, and near-black hair strands over a dark background
/// (values 0-30 with noise), like the CelebA-HQ photo of the report.
fn dark_haired_portrait(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut n = Noise(seed | 1);
    RgbImage::from_fn(w, h, |x, y| {
        let (fx, fy) = (x as f32 / w as f32 - 0.5, y as f32 / h as f32 - 0.55);
        let r = n.next() % 24;
        if fx * fx / 0.09 + fy * fy / 0.16 < 1.0 {
            let v = (r % 12) as u8;
            Rgb([190 + v, 150 + v, 130 + v])
        } else {
            // Strands: dark diagonal stripes of exact black next to slightly lighter hair.
            let strand = ((x + y / 3) / 3) % 2 == 0;
            let v = if strand { (r / 4) as u8 } else { 4 + (r % 20) as u8 };
            Rgb([v, v, v + (r % 3) as u8])
        }
    })
}

#[test]
fn a_dark_portrait_without_a_box_is_copied_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let img = dark_haired_portrait(256, 256, 7);
    let input = dir.path().join("portrait.png");
    img.save(&input).unwrap();
    let mut boxed = img.clone();
    for y in 100..130 {
        for x in 140..170 {
            boxed.put_pixel(x, y, Rgb([0, 0, 0]));
        }
    }
    let boxed_path = dir.path().join("boxed.png");
    boxed.save(&boxed_path).unwrap();
    let out = dir.path().join("out");
    let o = infer([
        "--model".as_ref(),
        identity_model().as_os_str(),
        input.as_os_str(),
        boxed_path.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 reconstructed, 1 without hole"), "{}", stderr(&o));
    assert!(
        open(&out.join("portrait.png")).to_rgb8() == img,
        "a photo without a box changed"
    );
    let result = open(&out.join("boxed.png")).to_rgb8();
    for (x, y, p) in result.enumerate_pixels() {
        if !((139..171).contains(&x) && (99..131).contains(&y)) {
            assert_eq!(p, boxed.get_pixel(x, y), "pixel {x},{y} outside the box changed");
        }
    }
    assert_ne!(result.get_pixel(155, 115), &Rgb([0, 0, 0]), "the box was not filled");
}
