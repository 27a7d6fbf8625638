//! The runtime's error type: every variant says what went wrong and, where there is one, with which file.

use std::path::PathBuf;

use facerecon_imaging::ImagingError;

/// Everything [`crate::Runtime`] and the pre/post-processing can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("cannot load ONNX Runtime from {tried}: {msg}\n  hint: run `make setup` (it downloads libonnxruntime and prints its path), then set ORT_DYLIB_PATH to it")]
    OrtLibrary {
        /// The library path(s) that were tried, and where each came from.
        tried: String,
        /// The loader's message.
        msg: String,
    },
    /// The model file is missing, is not ONNX, or does not follow the facerecon model contract.
    #[error("invalid model {}: {msg}", path.display())]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The requested execution provider could not be registered (never silently replaced by the CPU).
    #[error("execution provider {provider} is unavailable: {msg}")]
    Provider {
        /// The provider that was asked for, e.g. `CUDA:0`.
        provider: String,
        /// ONNX Runtime's message.
        msg: String,
    },
    /// ONNX Runtime failed while running the model, or the tensors handed to it were malformed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// Decoding, encoding or another pixel operation failed.
    #[error(transparent)]
    Image(#[from] ImagingError),
    /// The mask does not have the image's size.
    #[error("mask is {mask_width}x{mask_height} but the image is {width}x{height}")]
    MaskSize {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// Mask width.
        mask_width: u32,
        /// Mask height.
        mask_height: u32,
    },
}
