//! The architecture spec plus trained weights, lowered to ONNX.
//!
//! The graph is built with the protobuf types of `candle_onnx::onnx` and written with
//! `prost::Message::encode`. The file follows the model file contract of DESIGN.md:
//!
//! * inputs `image` `[batch, C, S, S]` (holes already zeroed by the caller) and `mask`
//!   `[batch, 1, S, S]` (1 = hole), float32, `batch` symbolic;
//! * outputs `reconstruction` and `inpainted = mask*reconstruction + (1-mask)*image`;
//! * opset [`OPSET`], IR version [`IR_VERSION`], weights as float32 initializers named like the
//!   checkpoint's tensors; `metadata_props` per [`metadata::keys`].
//!
//! [`check`] re-reads and checks a written file against the spec; [`verify`] runs it through ONNX
//! Runtime and compares with the candle model.

pub mod calibrate;
pub mod check;
pub mod fp16;
pub mod lower;
pub mod metadata;
pub mod proto;
pub mod quantize;
pub mod source;
pub mod verify;

pub use candle_onnx::onnx;
pub use check::{check_model, read_model};
pub use lower::{export, export_with_opset};
pub use metadata::Metadata;

use std::path::{Path, PathBuf};

/// The ONNX opset the exporter writes by default. 17 is supported by every ONNX Runtime since 1.13
/// and by `onnx.checker`; every op used here has had its current semantics since opset 13-16.
pub const OPSET: i64 = 17;
/// ONNX IR version 8 (ONNX 1.10+), the one that goes with opset 17.
pub const IR_VERSION: i64 = 8;
pub const PRODUCER_NAME: &str = "facerecon";
pub const PRODUCER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of exporting, writing, reading back and checking a model.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Spec(#[from] facerecon_model::SpecError),
    #[error("weight '{name}': {msg}")]
    Weight { name: String, msg: String },
    #[error("opset {0} is not supported (use {min}..={max})", min = lower::OPSET_RANGE.start(), max = lower::OPSET_RANGE.end())]
    Opset(i64),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a valid ONNX model: {source}", path.display())]
    Decode { path: PathBuf, source: prost::DecodeError },
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
}

/// Write `model` to `path` atomically: encode, write a temp file next to it, fsync, rename.
pub fn write_model(path: &Path, model: &onnx::ModelProto) -> Result<(), ExportError> {
    use prost::Message;
    use std::io::Write;
    let io = |source| ExportError::Io { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let bytes = model.encode_to_vec();
    let file_name = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "model.onnx".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
