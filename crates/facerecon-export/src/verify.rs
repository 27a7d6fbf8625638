//! Parity of an exported model with the candle model, through ONNX Runtime.
//!
//! ONNX Runtime is loaded at run time from `ORT_DYLIB_PATH` (`ort` with `load-dynamic`); this module
//! talks to `ort` directly so the exporter does not depend on `facerecon-runtime`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facerecon_model::{Model, ModelError, ModelSpec};
use ort::environment::Environment;
use ort::session::Session;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The environment variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_ENV: &str = "ORT_DYLIB_PATH";
/// Largest accepted max |candle - ORT| over both outputs.
pub const TOLERANCE: f32 = 1e-4;

/// Why verification could not run (a mismatch is not an error but a [`Parity`] to judge).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// ONNX Runtime could not be loaded (the message says why).
    #[error("ONNX Runtime is not available: {0}")]
    Unavailable(String),
    /// ONNX Runtime refused the model or failed to run it.
    #[error("ONNX Runtime: {0}")]
    Ort(String),
    /// The candle model failed to run.
    #[error("candle model: {0}")]
    Candle(#[from] candle_core::Error),
    /// The weights do not fit the spec.
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn ort_err(e: impl std::fmt::Display) -> VerifyError {
    VerifyError::Ort(e.to_string())
}

/// The process-wide ONNX Runtime environment, loaded once from `$ORT_DYLIB_PATH`.
pub fn ort_environment() -> Result<&'static Environment, VerifyError> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os(ORT_DYLIB_ENV).ok_or_else(|| format!("{ORT_DYLIB_ENV} is not set"))?;
        let shown = std::path::Path::new(&path).display().to_string();
        if !std::path::Path::new(&path).is_file() {
            return Err(format!("{ORT_DYLIB_ENV}={shown}: no such file"));
        }
        let builder = ort::init_from(&path).map_err(|e| format!("{ORT_DYLIB_ENV}={shown}: cannot load: {e}"))?;
        builder
            .with_name("facerecon-export")
            .build()
            .map_err(|e| format!("{ORT_DYLIB_ENV}={shown}: {e}"))
    })
    .as_ref()
    .map_err(|e| VerifyError::Unavailable(e.clone()))
}

/// An exported model in an ONNX Runtime session (CPU).
pub struct OrtModel {
    session: Session,
}

impl OrtModel {
    /// Create a session from the bytes of an ONNX file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, VerifyError> {
        let env = ort_environment()?;
        let session = Session::builder(env)
            .map_err(ort_err)?
            .with_intra_threads(2)
            .map_err(ort_err)?
            .commit_from_memory(bytes)
            .map_err(ort_err)?;
        Ok(Self { session })
    }

    /// Run on `image` `[B, C, S, S]` and `mask` `[B, 1, S, S]`; returns `(reconstruction, inpainted)`.
    pub fn run(&mut self, image: &Tensor, mask: &Tensor) -> Result<(Tensor, Tensor), VerifyError> {
        let to_ort = |t: &Tensor| -> Result<ort::value::Tensor<f32>, VerifyError> {
            let shape: Vec<i64> = t.dims().iter().map(|&d| d as i64).collect();
            let data: Vec<f32> = t.flatten_all()?.to_vec1()?;
            ort::value::Tensor::from_array((shape, data)).map_err(ort_err)
        };
        let inputs = ort::inputs![crate::lower::IMAGE => to_ort(image)?, crate::lower::MASK => to_ort(mask)?];
        let outputs = self.session.run(inputs).map_err(ort_err)?;
        let get = |name: &str| -> Result<Tensor, VerifyError> {
            let v = outputs
                .get(name)
                .ok_or_else(|| VerifyError::Ort(format!("no output '{name}'")))?;
            let (shape, data) = v.try_extract_tensor::<f32>().map_err(ort_err)?;
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            Ok(Tensor::from_slice(data, dims, &Device::Cpu)?)
        };
        Ok((get(crate::lower::RECONSTRUCTION)?, get(crate::lower::INPAINTED)?))
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
