//! The runtime's error type: every variant says what went wrong and, where there is one, with which file.

use std::path::PathBuf;

/// Everything [`crate::Runtime`] and the pre/post-processing can fail with.
///
/// `#[non_exhaustive]`: new failure kinds may be added without a major version, so a `match` needs a
/// wildcard arm (the C ABI maps unknown ones to `FACERECON_INTERNAL`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// ONNX Runtime returned an error while setting up a session or running the model; its error is
    /// the [`std::error::Error::source`]. (The message repeats it, so that a plain `to_string()`, e.g.
    /// the C ABI's `facerecon_last_error`, still says what ONNX Runtime said.)
    #[error("inference failed: {context}: {source}")]
    Ort {
        /// What was being done, e.g. `configuring the session` or `model.onnx (run)`.
        context: String,
        /// ONNX Runtime's error (an `ort::Error`, boxed so that ort's types stay out of this API).
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The model's output or the tensors handed to it were malformed: wrong sizes or shapes, a
    /// missing output, values that are not finite.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A hole box passed with the mask (e.g. to [`crate::Runtime::reconstruct_in_place_in_box`]) is
    /// empty, not inside the image, or does not hold the hole: hole pixels touch it from outside.
    #[error("hole box: {0}")]
    HoleBox(String),
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

impl RuntimeError {
    /// An [`RuntimeError::Ort`] failure while doing `context`.
    pub(crate) fn ort(context: impl Into<String>, source: impl Into<ort::Error>) -> Self {
        RuntimeError::Ort {
            context: context.into(),
            source: Box::new(source.into()),
        }
    }
}
