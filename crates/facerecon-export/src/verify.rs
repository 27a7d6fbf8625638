//! Parity of an exported model with the candle model, through `facerecon-runtime`.
//!
//! The exported bytes are loaded with [`Runtime::from_bytes`], i.e. exactly as `facerecon-infer` and the
//! C library will load the file: the same ONNX Runtime loader (`ORT_DYLIB_PATH`, else the system's
//! library) and the runtime's own contract validation (`model::scan_onnx`, the inputs and outputs, the
//! metadata). A file the runtime would refuse fails verification, so it is never written.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facerecon_model::{Model, ModelError, ModelSpec};
use facerecon_runtime::{ModelInfo, Runtime, RuntimeError, RuntimeOptions};
use std::collections::HashMap;

/// The environment variable naming the ONNX Runtime shared library (read by `facerecon-runtime`).
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// Largest accepted max |candle - ORT| over both outputs.
pub const TOLERANCE: f32 = 1e-4;
/// Intra-op threads of the verification session.
const VERIFY_THREADS: usize = 2;

/// Why verification could not run (a mismatch is not an error but a [`Parity`] to judge).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// ONNX Runtime could not be loaded (the message says why).
    #[error("ONNX Runtime is not available: {0}")]
    Unavailable(String),
    /// `facerecon-runtime` refuses the file: it breaks the model-file contract.
    #[error("facerecon-runtime would refuse this model: {0}")]
    Rejected(String),
    /// ONNX Runtime failed to run the model, or its output is not what the contract says.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// The candle model failed.
    #[error("candle model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The candle model could not be built from the spec and weights.
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl From<RuntimeError> for VerifyError {
    fn from(e: RuntimeError) -> Self {
        match e {
            // The runtime's hint (`make setup`) is the exporter's caller's to give.
            RuntimeError::OrtLibrary { tried, msg } => {
                let unset = std::env::var_os(ORT_DYLIB_ENV).is_none_or(|p| p.is_empty());
                let why = if unset {
                    format!("{ORT_DYLIB_ENV} is not set; ")
                } else {
                    String::new()
                };
                VerifyError::Unavailable(format!("{why}cannot load {tried}: {msg}"))
            }
            RuntimeError::InvalidModel { msg, .. } => VerifyError::Rejected(msg),
            other => VerifyError::Ort(other.to_string()),
        }
    }
}

/// An exported model loaded by `facerecon-runtime` (CPU), i.e. accepted by its contract validation.
pub struct OrtModel {
    runtime: Runtime,
}

impl OrtModel {
    /// Load the bytes of an ONNX file as [`Runtime::load`] loads a file (same checks).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let options = RuntimeOptions {
            threads: Some(VERIFY_THREADS),
            ..Default::default()
        };
        let runtime = Runtime::from_bytes(bytes, "the exported model", &options)?;
        Ok(Self { runtime })
    }

    /// What the runtime read from the file (size, metadata).
    pub fn info(&self) -> &ModelInfo {
        self.runtime.info()
    }

    /// Run on `image` `[B, 3, S, S]` and `mask` `[B, 1, S, S]` ([`Runtime::run_tensors`], which checks the
    /// output shapes); returns `(reconstruction, inpainted)`.
    pub fn run(&self, image: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor), VerifyError> {
        let n = image.dim(0)?;
        let image_data: Vec<f32> = image.flatten_all()?.to_vec1()?;
        let mask_data: Vec<f32> = mask.flatten_all()?.to_vec1()?;
        let (rec, inp) = self.runtime.run_tensors(&image_data, &mask_data, n)?;
        let s = self.info().image_size as usize;
        Ok((
            Tensor::from_vec(rec, (n, 3, s, s), &Device::Cpu)?,
            Tensor::from_vec(inp, (n, 3, s, s), &Device::Cpu)?,
        ))
    }
}

/// A seeded random batch: images uniform in [0, 1] with holes zeroed, masks one random box each.
pub fn random_batch(spec: &ModelSpec, batch: usize, seed: u64) -> candle_core::Result<(Tensor, Tensor)> {
    let (c, s) = (spec.channels, spec.image_size);
    let mut state = seed ^ 0xFACE;
    let mut next = move || {
        // SplitMix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
    };
    let mut image = vec![0f32; batch * c * s * s];
    let mut mask = vec![0f32; batch * s * s];
    for b in 0..batch {
        let side = 1 + (next() * (s / 2) as f32) as usize;
        let (y0, x0) = (
            (next() * (s - side + 1) as f32) as usize,
            (next() * (s - side + 1) as f32) as usize,
        );
        for y in y0..(y0 + side).min(s) {
            for x in x0..(x0 + side).min(s) {
                mask[b * s * s + y * s + x] = 1.0;
            }
        }
        for ch in 0..c {
            for i in 0..s * s {
                let v = next();
                image[(b * c + ch) * s * s + i] = if mask[b * s * s + i] == 1.0 { 0.0 } else { v };
            }
        }
    }
    Ok((
        Tensor::from_vec(image, (batch, c, s, s), &Device::Cpu)?,
        Tensor::from_vec(mask, (batch, 1, s, s), &Device::Cpu)?,
    ))
}

/// Max |candle - ORT| of both outputs.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    /// Max |candle - ORT| of `reconstruction`.
    pub reconstruction: f32,
    /// Max |candle - ORT| of `inpainted`.
    pub inpainted: f32,
}

impl Parity {
    /// The larger difference; NaN if either is NaN (`f32::max` would drop a NaN).
    pub fn max(&self) -> f32 {
        if self.reconstruction.is_nan() || self.inpainted.is_nan() {
            return f32::NAN;
        }
        self.reconstruction.max(self.inpainted)
    }
    /// Within [`TOLERANCE`]; a NaN difference (non-finite outputs) is never ok.
    pub fn ok(&self) -> bool {
        self.max() <= TOLERANCE
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32, VerifyError> {
    if a.dims() != b.dims() {
        return Err(VerifyError::Ort(format!(
            "output shape {:?} differs from candle's {:?}",
            b.dims(),
            a.dims()
        )));
    }
    Ok(nan_max((a - b)?.abs()?.flatten_all()?.to_vec1::<f32>()?))
}

/// The largest value, NaN if any is NaN (candle's `max` keeps a NaN only in the first position, and
/// `f32::max` drops it: a non-finite output must never look like a small difference).
fn nan_max(values: Vec<f32>) -> f32 {
    values
        .into_iter()
        .fold(0.0, |m, x| if m.is_nan() || x.is_nan() { f32::NAN } else { m.max(x) })
}

/// Run the candle model built from `weights` and the ONNX model `onnx_bytes` on the same seeded
/// random batch and compare both outputs.
pub fn parity(
    spec: &ModelSpec,
    weights: &HashMap<String, Tensor>,
    onnx_bytes: &[u8],
    batch: usize,
    seed: u64,
) -> Result<Parity, VerifyError> {
    let model = Model::new(
        spec,
        VarBuilder::from_tensors(weights.clone(), DType::F32, &Device::Cpu),
    )?;
    let (image, mask) = random_batch(spec, batch, seed)?;
    let (rec, inp) = model.forward(&image, &mask)?;
    let (ort_rec, ort_inp) = OrtModel::from_bytes(onnx_bytes)?.run(&image, &mask)?;
    Ok(Parity {
        reconstruction: max_abs_diff(&rec, &ort_rec)?,
        inpainted: max_abs_diff(&inp, &ort_inp)?,
    })
}

#[cfg(test)]
mod tests {
    use super::Parity;

    #[test]
    fn a_nan_difference_is_never_within_tolerance() {
        assert!(Parity {
            reconstruction: 1e-6,
            inpainted: 0.0
        }
        .ok());
        // f32::max(NaN, 0) is 0: a NaN output used to pass verification.
        assert!(!Parity {
            reconstruction: f32::NAN,
            inpainted: 0.0
        }
        .ok());
        assert!(!Parity {
            reconstruction: 0.0,
            inpainted: f32::NAN
        }
        .ok());
        assert!(Parity {
            reconstruction: 0.0,
            inpainted: f32::NAN
        }
        .max()
        .is_nan());
    }

    #[test]
    fn a_nan_anywhere_in_the_output_makes_the_difference_nan() {
        use candle_core::{Device, Tensor};
        let a = Tensor::new(&[0.5f32, 0.25, 0.0, 1.0], &Device::Cpu).unwrap();
        let b = Tensor::new(&[0.5f32, 0.25, f32::NAN, 1.0], &Device::Cpu).unwrap();
        assert!(super::max_abs_diff(&a, &b).unwrap().is_nan());
        let c = Tensor::new(&[0.5f32, 0.75, 0.0, 1.0], &Device::Cpu).unwrap();
        assert_eq!(super::max_abs_diff(&a, &c).unwrap(), 0.5);
    }
}
