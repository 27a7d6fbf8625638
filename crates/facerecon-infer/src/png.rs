//! PNG output tuned for throughput: fast deflate with adaptive filtering, encoded in memory and
//! written atomically (temp file in the same directory, then rename).

use std::path::Path;

use image::{
    codecs::png::{CompressionType, FilterType, PngEncoder},
    DynamicImage, ExtendedColorType, GrayImage, ImageEncoder, RgbImage,
};

/// Encode pixels as PNG into memory (8-bit, or 16-bit samples in native byte order).
fn encode(pixels: &[u8], width: u32, height: u32, color: ExtendedColorType) -> Result<Vec<u8>, String> {
    // ~1.4 bytes per pixel is typical for photos at fast settings; avoids most regrowth.
    let mut bytes = Vec::with_capacity(pixels.len() / 2 + 1024);
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
        .write_image(pixels, width, height, color)
        .map_err(|e| format!("encoding PNG: {e}"))?;
    Ok(bytes)
}

/// Write `bytes` to `path` atomically, creating parent directories. Errors name the file.
///
/// No fsync: a crash may lose the newest outputs, but a rename never exposes a partial file under
/// the final name (and inputs are never touched), so a rerun simply redoes the lost ones.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("{what} {}: {e}", path.display());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| fail("creating the directory of", e))?;
    }
    // Our temp naming; stale temps of killed runs in this directory are removed on first use.
    let tmp = facerecon_imaging::io::temp_path(path);
    let result = std::fs::write(&tmp, bytes)
        .map_err(|e| fail("writing", e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| fail("renaming into", e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Save an RGB image as PNG at `path` (atomic, fast compression).
pub fn save_rgb(img: &RgbImage, path: &Path) -> Result<(), String> {
    let bytes = encode(img.as_raw(), img.width(), img.height(), ExtendedColorType::Rgb8)?;
    write_atomic(path, &bytes)
}

/// Save any 8- or 16-bit image (grey or colour, with or without alpha) as PNG at `path` in its own
/// colour type and bit depth (atomic, fast compression). Float images are refused: PNG cannot hold
/// them.
pub fn save_image(img: &DynamicImage, path: &Path) -> Result<(), String> {
    let color = match img {
        DynamicImage::ImageRgb8(rgb) => return save_rgb(rgb, path),
        DynamicImage::ImageLuma8(_) => ExtendedColorType::L8,
        DynamicImage::ImageLumaA8(_) => ExtendedColorType::La8,
        DynamicImage::ImageRgba8(_) => ExtendedColorType::Rgba8,
        DynamicImage::ImageLuma16(_) => ExtendedColorType::L16,
        DynamicImage::ImageLumaA16(_) => ExtendedColorType::La16,
        DynamicImage::ImageRgb16(_) => ExtendedColorType::Rgb16,
        DynamicImage::ImageRgba16(_) => ExtendedColorType::Rgba16,
        other => {
            return Err(format!(
                "{}: PNG cannot hold {:?} pixels",
                path.display(),
                other.color()
            ))
        }
    };
    let bytes = encode(img.as_bytes(), img.width(), img.height(), color)?;
    write_atomic(path, &bytes)
}

/// Save a gray image (a mask) as PNG at `path` (atomic, fast compression).
pub fn save_gray(img: &GrayImage, path: &Path) -> Result<(), String> {
    let bytes = encode(img.as_raw(), img.width(), img.height(), ExtendedColorType::L8)?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let rgb = RgbImage::from_fn(17, 9, |x, y| image::Rgb([x as u8 * 13, y as u8 * 27, 200]));
        let gray = GrayImage::from_fn(5, 4, |x, y| image::Luma([if x > y { 255 } else { 0 }]));
        let (a, b) = (dir.path().join("sub/a.png"), dir.path().join("b.png"));
        save_rgb(&rgb, &a).unwrap();
        save_gray(&gray, &b).unwrap();
        assert_eq!(image::open(&a).unwrap().to_rgb8(), rgb);
        assert_eq!(image::open(&b).unwrap().to_luma8(), gray);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // Every 8/16-bit colour type comes back as it was.
        let l16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(7, 3, |x, y| {
            image::Luma([x as u16 * 9001 + y as u16])
        });
        let la8 = image::ImageBuffer::<image::LumaA<u8>, Vec<u8>>::from_fn(7, 3, |x, y| {
            image::LumaA([x as u8 * 30, y as u8 * 100])
        });
        let rgba16 = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(7, 3, |x, y| {
            image::Rgba([x as u16 * 9001, 65535, 1, y as u16 * 20000 + 7])
        });
        for img in [
            DynamicImage::ImageLuma16(l16),
            DynamicImage::ImageLumaA8(la8),
            DynamicImage::ImageRgba16(rgba16),
        ] {
            let p = dir.path().join("typed.png");
            save_image(&img, &p).unwrap();
            assert_eq!(image::open(&p).unwrap(), img);
        }
        let float = DynamicImage::ImageRgb32F(image::Rgb32FImage::new(2, 2));
        assert!(save_image(&float, &dir.path().join("f.png"))
            .unwrap_err()
            .contains("f.png"));
        std::fs::remove_file(dir.path().join("typed.png")).unwrap();
        // A directory where the file should go: the error names the path.
        let err = save_rgb(&rgb, dir.path()).unwrap_err();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
