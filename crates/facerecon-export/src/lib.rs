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
/// `producer_name` of every written model.
pub const PRODUCER_NAME: &str = "facerecon";
/// `producer_version`: this crate's version, so a file says which exporter wrote it.
pub const PRODUCER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Errors of exporting, writing, reading back and checking a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The architecture spec is invalid.
    #[error(transparent)]
    Spec(#[from] facerecon_model::SpecError),
    /// A weight is missing, misshapen or not finite.
    #[error("weight '{name}': {msg}")]
    Weight {
        /// The parameter's name (`enc1.weight`).
        name: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The requested opset is outside the range the lowering supports.
    #[error("opset {0} is not supported (use {min}..={max})", min = lower::OPSET_RANGE.start(), max = lower::OPSET_RANGE.end())]
    Opset(i64),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a decodable ONNX protobuf.
    #[error("{}: not a valid ONNX model: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The protobuf decoder's error.
        source: prost::DecodeError,
    },
    /// The file decodes but breaks the model file contract (the message says how).
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// A file being written next to its destination, under our temp name
/// ([`facerecon_imaging::io::temp_path`]: hidden, same directory). [`Staged::commit`] renames it
/// into place; dropped without a commit (any error, a failed verification, a panic) it is removed,
/// so a failure leaves nothing at the destination and no temp file. A SIGKILL leaves the temp
/// file, which the next write into that directory removes (its PID is dead).
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Reserves the temp name for `dest`, creating its directory.
    pub fn new(dest: &Path) -> Result<Staged, ExportError> {
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
                path: dest.to_path_buf(),
                source,
            })?;
        }
        Ok(Staged {
            tmp: facerecon_imaging::io::temp_path(dest),
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// The temp file to write.
    pub fn temp(&self) -> &Path {
        &self.tmp
    }

    /// Renames the temp file into place.
    pub fn commit(mut self) -> Result<(), ExportError> {
        std::fs::rename(&self.tmp, &self.dest).map_err(|source| ExportError::Io {
            path: self.dest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Commits staged files as one: renames each into place in order and, if one rename fails, puts
/// back the destinations already replaced (the previous file restored from a hard link taken just
/// before, or removed where there was none), so the destinations end either all new or all as they
/// were. The exporter's `--out` and `--reference` go through this: a model beside the reference
/// outputs of another model would make scripts/check_onnx.py compare the wrong pair.
/// A SIGKILL inside this function can still leave the first file new and the second old.
pub fn commit_all(staged: Vec<Staged>) -> Result<(), ExportError> {
    // (destination, its previous version kept under a temp name, if it had one)
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    let mut result = Ok(());
    for file in staged {
        let dest = file.dest.clone();
        let backup = match keep_previous(&dest) {
            Ok(backup) => backup,
            Err(source) => {
                result = Err(ExportError::Io { path: dest, source });
                break;
            }
        };
        match file.commit() {
            Ok(()) => done.push((dest, backup)),
            Err(e) => {
                if let Some(b) = backup {
                    let _ = std::fs::remove_file(b);
                }
                result = Err(e);
                break;
            }
        }
    }
    if result.is_err() {
        for (dest, backup) in done.iter().rev() {
            // Best effort: a failure here is reported with the original error's path in view.
            let _ = match backup {
                Some(b) => std::fs::rename(b, dest),
                None => std::fs::remove_file(dest),
            };
        }
    } else {
        for (_, backup) in done {
            if let Some(b) = backup {
                let _ = std::fs::remove_file(b);
            }
        }
    }
    result
}

/// A copy of the regular file at `dest` under a temp name beside it (a hard link where the file
/// system allows one, else a copy), or `None` where there is no file to keep.
fn keep_previous(dest: &Path) -> std::io::Result<Option<PathBuf>> {
    match std::fs::symlink_metadata(dest) {
        Ok(m) if m.is_file() => {
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let backup = facerecon_imaging::io::temp_path(&dest.with_file_name(format!("{name}.prev")));
            let _ = std::fs::remove_file(&backup);
            if std::fs::hard_link(dest, &backup).is_err() {
                std::fs::copy(dest, &backup)?;
            }
            Ok(Some(backup))
        }
        _ => Ok(None),
    }
}

/// Encodes `model` into the temp file of `path` (fsynced), without putting it at `path` yet:
/// check and verify [`Staged::temp`], then [`Staged::commit`].
pub fn stage_model(path: &Path, model: &onnx::ModelProto) -> Result<Staged, ExportError> {
    use prost::Message;
    use std::io::Write;
    let staged = Staged::new(path)?;
    let io = |source| ExportError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = model.encode_to_vec();
    let mut f = std::fs::File::create(staged.temp()).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(staged)
}

/// Write `model` to `path` atomically: encode, write a temp file next to it, fsync, rename.
pub fn write_model(path: &Path, model: &onnx::ModelProto) -> Result<(), ExportError> {
    stage_model(path, model)?.commit()
}
