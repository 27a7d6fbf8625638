//! Helpers shared by the integration tests: small generated images and the tiny config.
#![allow(dead_code)]

use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// The repository's tiny config.
pub fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml")
}

/// Write `n` smooth, face-ish test images (not square, so fitting is exercised) into `dir`.
pub fn write_images(dir: &Path, n: usize, w: u32, h: u32) {
    std::fs::create_dir_all(dir.join("nested")).unwrap();
    for i in 0..n {
        let img = RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
            let d = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)).sqrt();
            let skin = if d < 0.35 { 1.0 } else { 0.3 };
            let t = (i as f32 * 0.37).sin() * 0.5 + 0.5;
            Rgb([
                (255.0 * skin * (0.6 + 0.3 * t)) as u8,
                (255.0 * skin * (0.4 + 0.3 * fy)) as u8,
                (255.0 * (0.3 + 0.4 * fx * (1.0 - t))) as u8,
            ])
        });
        // Half of them one level down: the scan is recursive.
        let sub = if i % 2 == 0 {
            dir.to_path_buf()
        } else {
            dir.join("nested")
        };
        img.save(sub.join(format!("face_{i:04}.png"))).unwrap();
    }
}

/// A file with an image extension that is not an image.
pub fn write_corrupt(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is not really a png").unwrap();
    p
}
