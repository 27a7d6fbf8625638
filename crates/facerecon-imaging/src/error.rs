//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong reading or writing images and masks.
/// Every variant that concerns a file names it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagingError {
    /// The file does not exist.
    #[error("{path}: file not found")]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },
    /// The file exists but could not be read (permissions, I/O error, it is a directory...).
    #[error("{path}: cannot read file: {message}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// The file is zero bytes long.
    #[error("{path}: file is empty (0 bytes)")]
    Empty {
        /// The empty file.
        path: PathBuf,
    },
    /// The content is not a decodable image (unknown format, truncated, corrupt).
    #[error("{path}: cannot decode image: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's reason.
        message: String,
    },
    /// The decoded image would exceed `io::MAX_PIXELS` (decompression-bomb guard).
    #[error("{path}: image is too large ({width}x{height} pixels; the limit is {limit} pixels)")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width its header declares.
        width: u64,
        /// Height its header declares.
        height: u64,
        /// The pixel limit it exceeds.
        limit: u64,
    },
    /// A mask file whose aspect ratio differs from its image's: resizing it would move the holes.
    #[error("{path}: the mask is {mask_width}x{mask_height} but its image is {width}x{height}, another aspect ratio (resizing the mask would move the holes)")]
    MaskAspect {
        /// The mask file.
        path: PathBuf,
        /// The mask's width.
        mask_width: u32,
        /// The mask's height.
        mask_height: u32,
        /// The image's width.
        width: u32,
        /// The image's height.
        height: u32,
    },
    /// Writing an output file failed.
    #[error("{path}: cannot write file: {message}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The operating system's reason.
        message: String,
    },
    /// A parameter (mask spec, sizes...) is invalid; not tied to a file.
    #[error("invalid argument: {0}")]
    Invalid(String),
}
