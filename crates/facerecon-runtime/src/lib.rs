//! facerecon-runtime: run an exported facerecon model (ONNX) through ONNX Runtime, with no ML framework
//! in the dependency tree.
//!
//! ```
//! use facerecon_runtime::{Runtime, RuntimeOptions};
//! use image::{GrayImage, Luma, Rgb, RgbImage};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # if std::env::var_os("ORT_DYLIB_PATH").is_none() {
//! #     eprintln!("note: ORT_DYLIB_PATH is not set, the runtime's doctest is skipped (`make test` sets it)");
//! #     return Ok(());
//! # }
//! // The tests' 32x32 model: its "network" returns 0.5 * image + a per-channel bias.
//! let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/identity.onnx");
//! let rt = Runtime::load(model, &RuntimeOptions::default())?; // checks the model file contract
//! assert_eq!(rt.info().image_size, 32);
//!
//! let photo = RgbImage::from_pixel(64, 48, Rgb([200, 150, 100])); // any size
//! let mut mask = GrayImage::new(64, 48); // 0 = known
//! for y in 10..14 {
//!     for x in 20..26 {
//!         mask.put_pixel(x, y, Luma([255])); // 255 = hole
//!     }
//! }
//! let fixed = rt.reconstruct(&photo, &mask)?;
//! assert_eq!(fixed.dimensions(), (64, 48));
//! assert_eq!(fixed.get_pixel(0, 0), photo.get_pixel(0, 0)); // known pixels come back bit for bit
//! assert_ne!(fixed.get_pixel(22, 12), photo.get_pixel(22, 12)); // hole pixels are the model's
//! # Ok(()) }
//! ```
//!
//! With a real model and photo: `Runtime::load("exported/unet.onnx", ..)`, `image::open("face.jpg")?.to_rgb8()`,
//! and the mask from your own tool or [`facerecon_imaging::masks::detect_dark_holes`] (blacked-out boxes).
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
/// The model-file contract (tensor names, metadata keys, the mask convention and [`contract::is_hole`]),
/// re-exported so that callers of the runtime need no second dependency.
pub use facerecon_contract as contract;
/// The pixel types of this crate's API (from the `image` crate, compiled without any codec), so
/// that callers need no `image` dependency of their own.
pub use image::{GrayImage, Luma, Rgb, Rgb32FImage, RgbImage};
pub use model::ModelInfo;
pub use options::{Device, OptimizationLevel, RuntimeOptions};
pub use pipeline::{FitMode, Prepared, Region};
pub use runtime::{names, Provider, Runtime};
