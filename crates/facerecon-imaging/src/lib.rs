//! facerecon-imaging: everything the toolchain does with pixels, without any ML framework.
//!
//! Features (both off by default; the embeddable runtime needs neither): `io` for everything that
//! reads or writes files (image codecs), `synth` for random masks and synthetic faces (`rand`).
//!
//! - `io`: decoding with limits (decompression bombs), EXIF orientation, atomic PNG writes.
//! - [`layout`]: fitting faces to the model size and converting to/from CHW `f32` in `[0,1]`.
//! - [`masks`]: hole masks (`GrayImage`, 255 = hole, 0 = known; any value >= 128 counts as a hole: `facerecon_contract::is_hole`).
//! - [`composite`]: zeroing holes and pasting reconstructions back at the original resolution.
//! - [`metrics`]: PSNR (full / hole), SSIM and hole L1, as defined in DESIGN.md.
//! - `synth`: procedural cartoon faces, the embedded default dataset.
//! - [`grid`]: sample grids (corrupted | output | original).

pub mod composite;
pub mod error;
pub mod grid;
#[cfg(feature = "io")]
pub mod io;
pub mod layout;
pub mod masks;
pub mod metrics;
#[cfg(feature = "synth")]
pub mod synth;

pub use error::ImagingError;
