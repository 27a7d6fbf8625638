//! PNG output tuned for throughput: fast deflate with adaptive filtering, encoded in memory and
//! written atomically (temp file in the same directory, then rename).

use std::path::Path;

use image::{
    codecs::png::{CompressionType, FilterType, PngEncoder},
    ExtendedColorType, GrayImage, ImageEncoder, RgbImage,
};

/// Encode 8-bit pixels (`Rgb8` or `L8`) as PNG into memory.
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
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A directory where the file should go: the error names the path.
        let err = save_rgb(&rgb, dir.path()).unwrap_err();
        assert!(err.contains(&dir.path().display().to_string()), "{err}");
    }
}
