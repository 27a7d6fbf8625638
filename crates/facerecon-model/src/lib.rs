//! The architecture spec and its candle lowering.
//!
//! * [`spec`] — the network as data, read from a config's `model:` section (shared with the ONNX writer).
//! * [`Model`] — the spec lowered to candle; parameter names are the spec's.
//! * [`layers`] — one function per op, the single place where each op's backend is chosen.
//! * [`alloc`] — allocator settings for processes that run batches on the CPU (trainer, benches).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use candle_core::{DType, Device, Tensor};
//! use facerecon_model::{Model, ModelSpec};
//! let spec = ModelSpec::from_yaml(&std::fs::read_to_string("model.yaml")?)?;
//! let varmap = candle_nn::VarMap::new(); // the trainer's parameters, saved with varmap.save()
//! let model = Model::new(&spec, candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
//! let image = Tensor::zeros((2, 3, spec.image_size, spec.image_size), DType::F32, &Device::Cpu)?;
//! let mask = Tensor::ones((2, 1, spec.image_size, spec.image_size), DType::F32, &Device::Cpu)?;
//! let (reconstruction, inpainted) = model.forward(&image, &mask)?;
//! # Ok(()) }
//! ```
pub mod alloc;
pub mod layers;
pub mod model;
pub mod ops;
pub mod spec;

pub use model::{load_weights, random_weights, Model, ModelError};
pub use spec::{ModelSpec, SpecError};
