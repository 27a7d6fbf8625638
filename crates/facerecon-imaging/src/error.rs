//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing images and masks.
/// Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
pub enum ImagingError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    /// The file exists but could not be read (permissions, I/O error, it is a directory...).
    #[error("{path}: cannot read file: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// The file is zero bytes long.
    #[error("{path}: file is empty (0 bytes)")]
    Empty { path: PathBuf },
    /// The content is not a decodable image (unknown format, truncated, corrupt).
    #[error("{path}: cannot decode image: {message}")]
    Decode { path: PathBuf, message: String },
    /// The decoded image would exceed `io::MAX_PIXELS` (decompression-bomb guard).
    #[error("{path}: image is too large ({width}x{height} pixels; the limit is {limit} pixels)")]
    TooLarge {
        path: PathBuf,
        width: u64,
        height: u64,
        limit: u64,
    },
    /// A mask file whose aspect ratio differs from its image's: resizing it would move the holes.
    #[error("{path}: the mask is {mask_width}x{mask_height} but its image is {width}x{height}, another aspect ratio (resizing the mask would move the holes)")]
    MaskAspect {
        path: PathBuf,
        mask_width: u32,
        mask_height: u32,
        width: u32,
        height: u32,
    },
    /// Writing an output file failed.
    #[error("{path}: cannot write file: {message}")]
    Write { path: PathBuf, message: String },
    /// A parameter (mask spec, sizes...) is invalid; not tied to a file.
    #[error("invalid argument: {0}")]
    Invalid(String),
}
