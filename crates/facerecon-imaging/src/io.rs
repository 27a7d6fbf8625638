//! Decoding images with limits, listing image files, and writing PNGs atomically.

use std::fs::File;
use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

use crate::ImagingError;

/// Decompression-bomb limit: the largest number of decoded pixels (width x height) we accept.
pub const MAX_PIXELS: u64 = 64_000_000;

/// Extensions (lower case) that [`list_images`] picks up.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "webp", "tif", "tiff"];

/// Decoder limits: no side may exceed this many pixels.
const MAX_SIDE: u32 = 1 << 16;

/// Decodes any supported image file (PNG, JPEG, BMP, WebP, TIFF) into 8-bit RGB.
///
/// - The format is guessed from the content, never from the extension, so a mislabelled
///   file still decodes and a text file named `.png` is a clean [`ImagingError::Decode`].
/// - Images with more than [`MAX_PIXELS`] pixels are refused as [`ImagingError::TooLarge`]
///   before any pixel memory is allocated (the header is checked first).
/// - A JPEG without its end-of-image marker (truncated download/copy) is a
///   [`ImagingError::Decode`]: the decoder itself would silently fill the missing part with gray.
/// - EXIF orientation (JPEG, WebP, TIFF) is applied, so the result is upright.
/// - Gray, gray+alpha, RGBA and 16-bit images are converted to RGB8. Alpha is
///   **composited over black** (each channel multiplied by alpha): transparent areas become
///   black, which matches how the tutorial's data treats missing pixels (training data, masks).
///   To keep the pixels as they are, use [`load_image`].
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImagingError> {
    Ok(to_rgb8_over_black(load_image(path)?))
}

/// Decodes an image like [`load_rgb`] (same checks, limits and EXIF orientation) but keeps its
/// pixels as decoded: grey or colour, with or without alpha, 8 or 16 bits (or 32-bit float from
/// TIFF). Palette and 1/2/4-bit PNGs come expanded to 8 bits per sample.
pub fn load_image(path: &Path) -> Result<DynamicImage, ImagingError> {
    // Read the whole file: face images are small, and JPEG truncation can only be detected
    // by looking at the end of the data (see `jpeg_is_truncated`).
    let bytes = std::fs::read(path).map_err(|e| open_error(path, e))?;
    if bytes.is_empty() {
        return Err(ImagingError::Empty { path: path.to_owned() });
    }
    let mut reader = ImageReader::new(Cursor::new(&bytes[..]))
        .with_guessed_format()
        .map_err(|e| ImagingError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    match reader.format() {
        None => {
            return Err(ImagingError::Decode {
                path: path.to_owned(),
                message: "not a recognised image format (png, jpeg, bmp, webp, tiff)".into(),
            })
        }
        Some(ImageFormat::Jpeg) if jpeg_is_truncated(&bytes) => {
            return Err(ImagingError::Decode {
                path: path.to_owned(),
                message: "truncated JPEG (no end-of-image marker after the scan data)".into(),
            })
        }
        _ => {}
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    // Enough for MAX_PIXELS of 16-bit RGBA plus decoder scratch space.
    limits.max_alloc = Some(MAX_PIXELS * 8 + (64 << 20));
    reader.limits(limits);

    let mut decoder = reader.into_decoder().map_err(|e| map_limit_error(path, e))?;
    let (w, h) = decoder.dimensions();
    check_pixels(path, w as u64, h as u64)?;
    // A broken EXIF block should not make an otherwise fine image unreadable.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| map_limit_error(path, e))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// True if a JPEG stream has no EOI marker (`FF D9`) after its first start-of-scan.
///
/// The JPEG decoder fills a truncated scan with gray instead of failing, so half a file would
/// silently decode into a corrupt training image. Header segments are skipped by their
/// lengths (an EXIF thumbnail carries its own EOI inside APP1); in the entropy-coded data an
/// `FF` byte is always stuffed (`FF 00`) or a marker, so `FF D9` there is the real end.
fn jpeg_is_truncated(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return true; // not at a marker: corrupt header
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        if marker == 0xDA {
            return !bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]);
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        i += 2 + len;
    }
    true
}

fn check_pixels(path: &Path, w: u64, h: u64) -> Result<(), ImagingError> {
    // u64 cannot overflow for u32 sides, but be explicit about it anyway.
    match w.checked_mul(h) {
        Some(n) if n <= MAX_PIXELS && w > 0 && h > 0 => Ok(()),
        Some(_) if w == 0 || h == 0 => Err(ImagingError::Decode {
            path: path.to_owned(),
            message: format!("image has zero size ({w}x{h})"),
        }),
        _ => Err(ImagingError::TooLarge {
            path: path.to_owned(),
            width: w,
            height: h,
            limit: MAX_PIXELS,
        }),
    }
}

fn map_limit_error(path: &Path, e: image::ImageError) -> ImagingError {
    match e {
        image::ImageError::Limits(_) => {
            // The decoder refused before telling us the size: report what we know.
            let (w, h) = ImageReader::open(path)
                .ok()
                .and_then(|r| r.with_guessed_format().ok())
                .and_then(|r| {
                    let mut r = r;
                    r.no_limits();
                    r.into_dimensions().ok()
                })
                .unwrap_or((0, 0));
            ImagingError::TooLarge {
                path: path.to_owned(),
                width: w as u64,
                height: h as u64,
                limit: MAX_PIXELS,
            }
        }
        other => ImagingError::Decode {
            path: path.to_owned(),
            message: other.to_string(),
        },
    }
}

fn open_error(path: &Path, e: std::io::Error) -> ImagingError {
    if e.kind() == std::io::ErrorKind::NotFound {
        ImagingError::NotFound { path: path.to_owned() }
    } else {
        ImagingError::Unreadable {
            path: path.to_owned(),
            message: e.to_string(),
        }
    }
}

/// Converts to RGB8, compositing any alpha channel over black.
fn to_rgb8_over_black(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = RgbImage::new(w, h);
    for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
        let a = p[3] as u32;
        for c in 0..3 {
            // Rounded p*a/255.
            o[c] = ((p[c] as u32 * a + 127) / 255) as u8;
        }
    }
    out
}

/// What a directory walk found: the image files, and everything it left out with the reason.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Image files, sorted by path, each real file once (see [`walk_images`]).
    pub files: Vec<PathBuf>,
    /// Files and directories left out, in walk order, with why.
    pub skipped: Vec<Skipped>,
}

/// One path a walk left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The path as reached by the walk.
    pub path: PathBuf,
    /// Why it was left out, in words.
    pub reason: String,
}

/// Lists image files under `dir`, recursively, sorted by path. Only the files: use
/// [`walk_images`] when what was left out must be reported (the CLIs do).
pub fn list_images(dir: &Path) -> Vec<PathBuf> {
    walk_images(dir).files
}

/// Walks `dir` recursively, following symbolic links, and lists its image files sorted by path.
///
/// - Files are recognised by extension (case-insensitive, see [`IMAGE_EXTENSIONS`]).
/// - Each directory is entered once, identified by (device, inode) (the canonical path off Unix):
///   a symbolic link back to an ancestor (a loop) or a second way into a directory already
///   walked is not followed but reported.
/// - Each file is listed once, by the same identity (so hard links and links to files count as
///   one): the first path in sorted order is kept, the others are reported. Entries are visited
///   in sorted order, so which path is kept is deterministic.
/// - Reported in [`Listing::skipped`], never silently dropped: files with other extensions
///   (`.gif`, `.txt`...), dangling or unfollowable links, special files, unreadable directories.
/// - Hidden files and directories (name starting with `.`) are skipped silently: that is where
///   tools keep their own state (our temp files, `.facerecon-synthetic`, `.git`).
pub fn walk_images(dir: &Path) -> Listing {
    let mut w = Walker::default();
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let id = file_id(dir, &meta);
            w.dirs.insert(id.clone(), dir.to_path_buf());
            w.ancestors.push(id);
            w.walk(dir);
        }
        Ok(_) => w.skip(dir, "not a directory".into()),
        Err(e) => w.skip(dir, format!("cannot read directory: {e}")),
    }
    // The walk visits names in sorted order, which is path order already; sort to be sure.
    w.files.sort();
    Listing {
        files: w.files,
        skipped: w.skipped,
    }
}

/// A file's identity: (device, inode) on Unix, so hard links and every path through symbolic
/// links agree; the canonical path elsewhere.
#[cfg(unix)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileId(u64, u64);
#[cfg(not(unix))]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileId(PathBuf);

#[cfg(unix)]
fn file_id(_path: &Path, meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId(meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(path: &Path, _meta: &std::fs::Metadata) -> FileId {
    FileId(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
}

#[derive(Default)]
struct Walker {
    files: Vec<PathBuf>,
    skipped: Vec<Skipped>,
    /// Every directory entered, with the path it was entered by.
    dirs: std::collections::HashMap<FileId, PathBuf>,
    /// Every file listed, with the path it was listed by.
    seen: std::collections::HashMap<FileId, PathBuf>,
    /// The directories from the root down to the one being walked.
    ancestors: Vec<FileId>,
}

impl Walker {
    fn skip(&mut self, path: &Path, reason: String) {
        self.skipped.push(Skipped {
            path: path.to_path_buf(),
            reason,
        });
    }

    fn walk(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.skip(dir, format!("cannot read directory: {e}")),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(e) => names.push(e.file_name()),
                Err(e) => self.skip(dir, format!("cannot read an entry of the directory: {e}")),
            }
        }
        names.sort();
        for name in names {
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let path = dir.join(&name);
            // metadata() follows symbolic links (linked files and directories are walked too).
            let meta = match std::fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    let is_link = std::fs::symlink_metadata(&path)
                        .map(|m| m.file_type().is_symlink())
                        .unwrap_or(false);
                    let reason = match (is_link, e.kind()) {
                        (true, std::io::ErrorKind::NotFound) => {
                            let target = std::fs::read_link(&path)
                                .map(|t| t.display().to_string())
                                .unwrap_or_default();
                            format!("dangling symbolic link (its target {target} does not exist)")
                        }
                        (true, _) => format!("cannot follow the symbolic link: {e}"),
                        (false, _) => format!("cannot read: {e}"),
                    };
                    self.skip(&path, reason);
                    continue;
                }
            };
            let id = file_id(&path, &meta);
            if meta.is_dir() {
                if let Some(first) = self.dirs.get(&id) {
                    let reason = if self.ancestors.contains(&id) {
                        format!("symbolic link loop: it leads back to {}, not followed", first.display())
                    } else {
                        format!("same directory as {}, listed there", first.display())
                    };
                    self.skip(&path, reason);
                    continue;
                }
                self.dirs.insert(id.clone(), path.clone());
                self.ancestors.push(id);
                self.walk(&path);
                self.ancestors.pop();
            } else if !meta.is_file() {
                self.skip(&path, "not a regular file or directory".into());
            } else if !has_image_extension(&path) {
                self.skip(
                    &path,
                    format!("not a supported image (extensions: {})", IMAGE_EXTENSIONS.join(", ")),
                );
            } else if let Some(first) = self.seen.get(&id) {
                let reason = format!("same file as {}, listed there", first.display());
                self.skip(&path, reason);
            } else {
                self.seen.insert(id, path.clone());
                self.files.push(path);
            }
        }
    }
}

/// True if the path's extension is one of [`IMAGE_EXTENSIONS`] (case-insensitive).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// An absolute path with symbolic links resolved as far as the path exists (the rest appended
/// lexically), so "is this output inside that input" is answered for paths not created yet.
pub fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(canonical) = existing.canonicalize() {
            let mut out = canonical;
            for part in rest.iter().rev() {
                match part {
                    std::path::Component::ParentDir => {
                        out.pop();
                    }
                    std::path::Component::CurDir => {}
                    other => out.push(other.as_os_str()),
                }
            }
            return Ok(out);
        }
        match (existing.parent(), existing.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                existing = parent;
            }
            _ => return Ok(absolute.clone()),
        }
    }
}

/// What a run reads, so that no output path can name it or lie inside it.
///
/// Paths are compared resolved ([`resolve`]: absolute, symbolic links followed), and an existing
/// output is also compared by identity (device, inode), which catches hard links.
#[derive(Debug, Default)]
pub struct Protected {
    /// Resolved file path -> "what path" (a map: thousands of input files may be given).
    files: std::collections::HashMap<PathBuf, String>,
    /// (resolved directory, "what path"): few.
    dirs: Vec<(PathBuf, String)>,
    ids: std::collections::HashMap<FileId, (String, PathBuf)>,
}

impl Protected {
    /// Protects `path` (described as `what`, e.g. "the model", "the input"): the file itself,
    /// or, for a directory, everything inside it. A path that does not exist is protected by name.
    pub fn add(&mut self, what: &str, path: &Path) {
        let resolved = resolve(path).unwrap_or_else(|_| path.to_path_buf());
        let meta = std::fs::metadata(path).ok();
        let name = format!("{what} {}", path.display());
        match meta {
            Some(m) if m.is_dir() => self.dirs.push((resolved, name)),
            Some(m) => {
                self.ids
                    .entry(file_id(&resolved, &m))
                    .or_insert_with(|| (what.to_string(), path.to_path_buf()));
                self.files.entry(resolved).or_insert(name);
            }
            None => {
                self.files.entry(resolved).or_insert(name);
            }
        }
    }

    /// Protects one file by identity only (inputs found inside a protected directory: their
    /// paths are covered by the directory, hard links to them elsewhere are not).
    pub fn add_file_id(&mut self, what: &str, path: &Path) {
        if let Some(m) = std::fs::metadata(path).ok().filter(|m| m.is_file()) {
            self.ids
                .entry(file_id(path, &m))
                .or_insert_with(|| (what.to_string(), path.to_path_buf()));
        }
    }

    /// `Err` naming both paths when the output `path` (the option `what`, e.g. "--report") is a
    /// protected file, lies inside a protected directory, or is a hard link to a protected file.
    pub fn check(&self, what: &str, path: &Path) -> Result<(), String> {
        let resolved = resolve(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(name) = self.files.get(&resolved) {
            return Err(format!("{what} {} is {name}: refusing to overwrite it", path.display()));
        }
        for (p, name) in &self.dirs {
            if resolved == *p {
                return Err(format!(
                    "{what} {} is {name}: refusing to write into it",
                    path.display()
                ));
            }
            if resolved.starts_with(p) {
                return Err(format!(
                    "{what} {} lies inside {name}: refusing to write there",
                    path.display()
                ));
            }
        }
        if let Ok(m) = std::fs::metadata(path) {
            if let Some((name, p)) = self.ids.get(&file_id(&resolved, &m)) {
                return Err(format!(
                    "{what} {} is the same file as {name} {} (a hard or symbolic link): refusing to overwrite it",
                    path.display(),
                    p.display()
                ));
            }
        }
        Ok(())
    }
}

/// Checks, before any work, that a file can be written at `path` later: it is not a directory,
/// its directory exists or can be created, and a file can be created there (a temp file is
/// created and removed again). Errors name the path.
pub fn probe_writable(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{} is a directory, expected a file name", path.display()));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create the directory of {}: {e}", path.display()))?;
    }
    let tmp = temp_path(path);
    std::fs::File::create(&tmp).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&tmp);
    Ok(())
}

/// The temp file every atomic write of `path` goes through: `.<name>.tmp-<pid>` in the same
/// directory (hidden, so directory walks never pick it up; same file system, so the final rename
/// is atomic).
///
/// A process killed between creating and renaming it (SIGKILL, power loss) leaves it behind, so
/// the first call for a directory in each process removes the stale ones there: files named
/// exactly `.<name>.tmp-<pid>` (or `<name>.tmp-<pid>`, the pattern of earlier versions) whose
/// `<pid>` is not a running process. Liveness is read from `/proc`, so this cleaning happens on
/// Linux only, and a temp file written by a process of another PID namespace (another container
/// writing into the same directory) could be taken for stale.
pub fn temp_path(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    clean_stale_temps_once(dir);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// [`clean_stale_temps`] for `dir`, once per process (outputs are written by the thousand).
fn clean_stale_temps_once(dir: &Path) {
    static CLEANED: std::sync::Mutex<Option<std::collections::HashSet<PathBuf>>> = std::sync::Mutex::new(None);
    let key = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let first = CLEANED
        .lock()
        .map(|mut set| set.get_or_insert_with(Default::default).insert(key))
        .unwrap_or(false);
    if first {
        clean_stale_temps(dir);
    }
}

/// Removes our temp files of dead processes from `dir` (see [`temp_path`]); returns how many.
/// Best-effort: errors are ignored (the directory may not exist yet).
pub fn clean_stale_temps(dir: &Path) -> usize {
    if !cfg!(target_os = "linux") || !Path::new("/proc/self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(temp_pid) else {
            continue;
        };
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file
            && pid != std::process::id()
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The PID of one of our temp file names, `[.]<name>.tmp-<digits>` with a non-empty name.
fn temp_pid(name: &str) -> Option<u32> {
    let (base, pid) = name.rsplit_once(".tmp-")?;
    let base = base.strip_prefix('.').unwrap_or(base);
    if base.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Writes `img` as PNG atomically: encode to a temp file in the same directory ([`temp_path`]),
/// flush and sync, then rename over `path`. A crash leaves either the old file or the new one,
/// never a truncated PNG. Parent directories are created if missing.
pub fn save_png_atomic(img: &RgbImage, path: &Path) -> Result<(), ImagingError> {
    let werr = |e: &dyn std::fmt::Display| ImagingError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| werr(&e))?;
    }
    let tmp = temp_path(path);
    let result = (|| -> Result<(), ImagingError> {
        let file = File::create(&tmp).map_err(|e| werr(&e))?;
        let mut w = BufWriter::new(file);
        img.write_to(&mut w, image::ImageFormat::Png).map_err(|e| werr(&e))?;
        let file = w.into_inner().map_err(|e| werr(&e.error()))?;
        file.sync_all().map_err(|e| werr(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| werr(&e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes raw bytes atomically (same temp + rename scheme as [`save_png_atomic`]; parent
/// directories are created if missing).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImagingError> {
    let werr = |e: std::io::Error| ImagingError::Write {
        path: path.to_owned(),
        message: e.to_string(),
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(werr)?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(werr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, Rgb};

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A PNG signature + valid IHDR chunk claiming `w x h` RGB8, with no image data.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let mut chunk = b"IHDR".to_vec();
        chunk.extend_from_slice(&w.to_be_bytes());
        chunk.extend_from_slice(&h.to_be_bytes());
        chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&crc32(&chunk).to_be_bytes());
        // An (incomplete) IDAT and IEND, so the header parses like a real file's.
        for (name, data) in [(&b"IDAT"[..], &[0x78u8, 0x9C, 0x03, 0x00][..]), (b"IEND", &[])] {
            let mut chunk = name.to_vec();
            chunk.extend_from_slice(data);
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(&chunk);
            out.extend_from_slice(&crc32(&chunk).to_be_bytes());
        }
        out
    }

    /// The error of loading `p`, without Debug-printing a whole image on failure.
    fn load_err(p: &Path) -> ImagingError {
        match load_rgb(p) {
            Ok(img) => panic!(
                "{} decoded ({}x{}) but should have failed",
                p.display(),
                img.width(),
                img.height()
            ),
            Err(e) => e,
        }
    }

    fn jpeg_bytes(img: &RgbImage, quality: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality)
            .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgb8)
            .unwrap();
        buf
    }

    /// Left half red, right half blue.
    fn two_tone(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) })
    }

    #[test]
    fn missing_and_empty_files_are_named_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.png");
        let e = load_err(&missing);
        assert!(matches!(e, ImagingError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains("nope.png"));

        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        let e = load_err(&empty);
        assert!(matches!(e, ImagingError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("empty.jpg"));

        let e = load_err(dir.path());
        assert!(
            matches!(e, ImagingError::Unreadable { .. } | ImagingError::Decode { .. }),
            "{e}"
        );
    }

    #[test]
    fn text_named_png_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fake.png");
        std::fs::write(&p, "this is not an image\n").unwrap();
        let e = load_err(&p);
        assert!(matches!(e, ImagingError::Decode { .. }), "{e}");
        assert!(e.to_string().contains("fake.png"));
    }

    #[test]
    fn truncated_jpeg_is_a_decode_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = jpeg_bytes(&crate::synth::synth_face(3, 64), 90);
        let p = dir.path().join("cut.jpg");
        std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = load_err(&p);
        assert!(matches!(e, ImagingError::Decode { .. }), "{e}");
        // Header only.
        std::fs::write(&p, &bytes[..20]).unwrap();
        assert!(matches!(load_err(&p), ImagingError::Decode { .. }));
    }

    #[test]
    fn huge_dimensions_are_too_large() {
        let dir = tempfile::tempdir().unwrap();
        // 20000 x 20000 = 400 M pixels: within the per-side limit, over MAX_PIXELS.
        let p = dir.path().join("bomb.png");
        std::fs::write(&p, png_header(20_000, 20_000)).unwrap();
        match load_err(&p) {
            ImagingError::TooLarge {
                width, height, path, ..
            } => {
                assert_eq!((width, height), (20_000, 20_000));
                assert_eq!(path, p);
            }
            e => panic!("expected TooLarge, got {e}"),
        }
        // A side beyond what the decoder accepts at all.
        std::fs::write(&p, png_header(1 << 20, 4)).unwrap();
        let e = load_err(&p);
        assert!(matches!(e, ImagingError::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("too large"));
    }

    #[test]
    fn format_is_guessed_from_content_and_colour_types_convert() {
        let dir = tempfile::tempdir().unwrap();
        // A PNG with a .jpg extension.
        let img = two_tone(6, 4);
        let p = dir.path().join("really_png.jpg");
        img.save_with_format(&p, image::ImageFormat::Png).unwrap();
        assert_eq!(load_rgb(&p).unwrap(), img);

        // 16-bit gray.
        let g16 =
            image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(3, 2, |x, _| image::Luma([x as u16 * 30000]));
        let p = dir.path().join("g16.png");
        g16.save(&p).unwrap();
        let rgb = load_rgb(&p).unwrap();
        assert_eq!(rgb.dimensions(), (3, 2));
        let expect = (30000.0f64 / 65535.0 * 255.0).round() as u8;
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([expect, expect, expect]));
        assert_eq!(rgb.get_pixel(0, 1), &Rgb([0, 0, 0]));

        // RGBA: alpha composited over black.
        let rgba = image::RgbaImage::from_fn(2, 1, |x, _| image::Rgba([200, 100, 50, if x == 0 { 255 } else { 0 }]));
        let p = dir.path().join("alpha.png");
        rgba.save(&p).unwrap();
        let rgb = load_rgb(&p).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([200, 100, 50]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([0, 0, 0]));
    }

    #[test]
    fn load_image_keeps_the_decoded_pixel_type() {
        let dir = tempfile::tempdir().unwrap();
        let rgba16 = image::ImageBuffer::<image::Rgba<u16>, Vec<u16>>::from_fn(3, 2, |x, y| {
            image::Rgba([x as u16 * 20001, y as u16 * 7, 65535, x as u16 * 3])
        });
        let gray_alpha =
            image::ImageBuffer::<image::LumaA<u8>, Vec<u8>>::from_fn(3, 2, |x, y| image::LumaA([x as u8, y as u8]));
        for img in [DynamicImage::ImageRgba16(rgba16), DynamicImage::ImageLumaA8(gray_alpha)] {
            let p = dir.path().join("typed.png");
            img.save(&p).unwrap();
            assert_eq!(load_image(&p).unwrap(), img);
        }
        // The same checks as load_rgb: errors name the file.
        let e = load_image(&dir.path().join("missing.png")).unwrap_err();
        assert!(matches!(e, ImagingError::NotFound { .. }), "{e}");
    }

    /// Inserts an EXIF APP1 segment with the given orientation right after the JPEG SOI marker.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0".to_vec();
        tiff.extend_from_slice(&8u32.to_le_bytes()); // IFD0 offset
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // count
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]); // value padding
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = jpeg_bytes(&two_tone(32, 16), 95);
        let p = dir.path().join("rot.jpg");
        // 6 = "rotate 90° clockwise to display": the left (red) half ends up on top.
        std::fs::write(&p, with_exif_orientation(&jpeg, 6)).unwrap();
        let img = load_rgb(&p).unwrap();
        assert_eq!(img.dimensions(), (16, 32));
        let top = img.get_pixel(8, 4);
        let bottom = img.get_pixel(8, 28);
        assert!(top[0] > 200 && top[2] < 60, "top should be red, got {top:?}");
        assert!(
            bottom[2] > 200 && bottom[0] < 60,
            "bottom should be blue, got {bottom:?}"
        );
        // Orientation 1 leaves it alone.
        std::fs::write(&p, with_exif_orientation(&jpeg, 1)).unwrap();
        assert_eq!(load_rgb(&p).unwrap().dimensions(), (32, 16));
    }

    #[test]
    fn list_images_is_recursive_sorted_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["b/deeper", "a", ".hidden"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        for f in [
            "b/deeper/z.PNG",
            "a/y.jpeg",
            "a/x.JPG",
            "top.webp",
            ".hidden/h.png",
            ".dot.png",
            "notes.txt",
            "a/t.tiff",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let got: Vec<String> = list_images(d)
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().replace('\\', "/"))
            .collect();
        assert_eq!(got, ["a/t.tiff", "a/x.JPG", "a/y.jpeg", "b/deeper/z.PNG", "top.webp"]);
        assert!(list_images(&d.join("missing")).is_empty());
    }

    #[test]
    fn save_png_atomic_round_trips_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out/sub/img.png");
        let img = crate::synth::synth_face(1, 32);
        save_png_atomic(&img, &p).unwrap();
        save_png_atomic(&img, &p).unwrap(); // overwrite works
        assert_eq!(load_rgb(&p).unwrap(), img);
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("img.png")]);
        // Writing into a path whose parent is a file fails with a named Write error.
        let bad = dir.path().join("out/sub/img.png/inner.png");
        let e = save_png_atomic(&img, &bad).unwrap_err();
        assert!(matches!(e, ImagingError::Write { .. }), "{e}");
    }
}
