//! facerecon-runtime: run an exported facerecon model (ONNX) through ONNX Runtime, with no ML framework
//! in the dependency tree.
//!
//! ```no_run
//! use facerecon_runtime::{Runtime, RuntimeOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = Runtime::load("exported/seed.onnx", &RuntimeOptions::default())?;
//! let photo = image::open("face.jpg")?.to_rgb8();
//! let mask = facerecon_imaging::masks::detect_dark_holes(&photo); // 255 = hole
//! let fixed = rt.reconstruct(&photo, &mask)?; // same size; only hole pixels differ
//! # Ok(()) }
//! ```
//!
//! - ONNX Runtime is loaded dynamically (from [`RuntimeOptions::ort_library`] or `ORT_DYLIB_PATH`),
//!   once per process.
//! - [`Runtime::load`] validates the file against the model contract and reads its metadata into
//!   [`ModelInfo`].
//! - [`pipeline`] holds the pure pre/post-processing: fitting to the model size and compositing back
//!   at the original size, where only hole pixels change; [`feather`] optionally blends a narrow
//!   colour-matched seam inside the hole ([`RuntimeOptions::feather`]).

mod error;
pub mod feather;
pub mod hole;
pub mod model;
mod options;
mod ort_env;
pub mod pipeline;
mod resize;
mod runtime;

pub use error::RuntimeError;
/// The pixel types of this crate's API (from the `image` crate, compiled without any codec), so
/// that callers need no `image` dependency of their own.
pub use image::{GrayImage, Luma, Rgb, Rgb32FImage, RgbImage};
pub use model::ModelInfo;
pub use options::{Device, OptimizationLevel, RuntimeOptions};
pub use pipeline::{FitMode, Prepared, Region};
pub use runtime::{names, Provider, Runtime};
