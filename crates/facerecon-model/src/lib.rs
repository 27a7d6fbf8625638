//! The architecture spec and its candle lowering.
//!
//! * [`spec`] — the network as data, read from a config's `model:` section (shared with the ONNX writer).
//! * [`Model`] — the spec lowered to candle; parameter names are the spec's.
//! * [`layers`] — one function per op, the single place where each op's backend is chosen.
//! * [`alloc`] — allocator settings for processes that run batches on the CPU (trainer, benches).
//!
//! A two-layer network from an inline spec, with seeded random weights (the trainer's are loaded with
//! [`Model::load`]): the forward pass gives the raw reconstruction and the composite, where only hole
//! pixels (mask 1) come from the network.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use candle_core::{DType, Device, Tensor};
//! use facerecon_model::{random_weights, Model, ModelSpec};
//! let spec = ModelSpec::from_yaml(
//!     "image_size: 16
//! layers:
//!   - {op: conv2d, name: enc, filters: 4, kernel: 3, stride: 2}
//!   - {op: leaky_relu}
//!   - {op: conv_transpose2d, name: dec, filters: 3, kernel: 3, stride: 2}
//!   - {op: sigmoid}",
//! )?;
//! let dev = Device::Cpu;
//! let weights = random_weights(&spec, 7, 0.1, &dev)?; // seed 7, biases in [-0.1, 0.1]
//! let model = Model::new(&spec, candle_nn::VarBuilder::from_tensors(weights, DType::F32, &dev))?;
//! let image = Tensor::full(0.5f32, (2, 3, 16, 16), &dev)?;
//! let mask = Tensor::zeros((2, 1, 16, 16), DType::F32, &dev)?; // no holes
//! let (reconstruction, inpainted) = model.forward(&image, &mask)?;
//! assert_eq!(reconstruction.dims(), &[2, 3, 16, 16]);
//! // Without holes the composite is the image itself, bit for bit.
//! assert_eq!(inpainted.flatten_all()?.to_vec1::<f32>()?, image.flatten_all()?.to_vec1::<f32>()?);
//! // The sigmoid keeps the reconstruction in [0, 1], the pixel range.
//! let r = reconstruction.flatten_all()?.to_vec1::<f32>()?;
//! assert!(r.iter().all(|v| (0.0..=1.0).contains(v)));
//! # Ok(()) }
//! ```
pub mod alloc;
pub mod layers;
pub mod model;
pub mod ops;
pub mod spec;

pub use model::{load_weights, random_weights, Model, ModelError};
pub use spec::{ModelSpec, SpecError};
