//! The spec lowered to candle: a [`Model`] evaluates the resolved layer graph with the functions of
//! [`crate::layers`].

use crate::layers::{self, Act, Backend, ConvParams};
use crate::spec::{self, ModelSpec, Op, ResolvedLayer, SpecError};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Errors of loading a model from a weights file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The weights file is unreadable or does not match the spec; names the file and the tensor.
    #[error("{}: {msg}", path.display())]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// What is wrong, naming the tensor.
        msg: String,
    },
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A tensor operation failed (shape, device, out of memory).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One layer with its weights and resolved padding.
struct Node {
    layer: ResolvedLayer,
    weight: Option<Tensor>,
    bias: Option<Tensor>,
    /// A convolution's stride, resolved padding and dilation (default for other ops).
    conv: ConvParams,
}

/// The network of a [`ModelSpec`], with candle tensors as weights.
pub struct Model {
    spec: ModelSpec,
    nodes: Vec<Node>,
    /// For every tensor name, the index of the last layer that reads it: values are dropped after
    /// that layer so a long network keeps only the activations it still needs.
    last_use: HashMap<String, usize>,
    /// Which implementation runs the layers, chosen once at build (see [`layers::Backend`]).
    backend: Backend,
}

fn spec_err(e: SpecError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// Keras' default `glorot_uniform` limit, `sqrt(6 / (fan_in + fan_out))`, for a weight of `shape`
/// (`[out, in, k, k]`, `[in, out, k, k]` or `[out, in]`: the sum of the fans is symmetric).
pub fn glorot_limit(shape: &[usize]) -> f64 {
    let receptive: usize = shape.iter().skip(2).product();
    let fans = (shape[0] + shape[1]) * receptive;
    (6.0 / fans as f64).sqrt()
}

impl Model {
    /// Build the model from `spec`, taking (or, from a `VarMap`, creating) its parameters through `vb`
    /// under the spec's names. New weights are initialised like Keras: glorot-uniform, zero bias.
    /// The layers run on [`Backend::select`] for `vb`'s device and dtype.
    pub fn new(spec: &ModelSpec, vb: VarBuilder) -> candle_core::Result<Model> {
        let resolved = spec.resolve().map_err(spec_err)?;
        let shapes: HashMap<String, Vec<usize>> = spec.parameters().map_err(spec_err)?.into_iter().collect();
        let param = |name: String, init: fn(&[usize]) -> Init| -> candle_core::Result<Option<Tensor>> {
            match shapes.get(&name) {
                Some(shape) => Ok(Some(vb.get_with_hints(shape.as_slice(), &name, init(shape))?)),
                None => Ok(None),
            }
        };
        let glorot = |s: &[usize]| {
            let l = glorot_limit(s);
            Init::Uniform { lo: -l, up: l }
        };
        let zero = |_: &[usize]| Init::Const(0.0);
        let mut nodes = Vec::with_capacity(resolved.len());
        let mut last_use = HashMap::new();
        for layer in resolved {
            for i in &layer.inputs {
                last_use.insert(i.clone(), layer.index);
            }
            let conv = match layer.op {
                Op::Conv2d {
                    padding,
                    kernel,
                    dilation,
                    stride,
                    ..
                } => ConvParams {
                    stride,
                    padding: spec::conv_padding(padding, kernel, dilation),
                    dilation,
                    output_padding: 0,
                },
                Op::ConvTranspose2d {
                    padding,
                    kernel,
                    stride,
                    ..
                } => {
                    let (padding, output_padding) =
                        spec::conv_transpose_padding(padding, kernel, stride).unwrap_or((0, 0));
                    ConvParams {
                        stride,
                        padding,
                        output_padding,
                        ..ConvParams::default()
                    }
                }
                _ => ConvParams::default(),
            };
            let (weight, bias) = if layer.op.has_params() {
                (
                    param(format!("{}.weight", layer.name), glorot)?,
                    param(format!("{}.bias", layer.name), zero)?,
                )
            } else {
                (None, None)
            };
            nodes.push(Node {
                layer,
                weight,
                bias,
                conv,
            });
        }
        Ok(Model {
            spec: spec.clone(),
            nodes,
            last_use,
            backend: Backend::select(vb.device(), vb.dtype()),
        })
    }

    /// The implementation that runs the layers.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Run the layers on `backend` from now on ([`Backend::Kernels`] needs f32 weights on the CPU):
    /// for benchmarks that time several backends on one model.
    pub fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }

    /// Load the weights of `spec` from a safetensors file (see [`load_weights`]).
    pub fn load(spec: &ModelSpec, path: &Path, device: &Device) -> Result<Model, ModelError> {
        let weights = load_weights(spec, path, device)?;
        Ok(Model::new(spec, VarBuilder::from_tensors(weights, DType::F32, device))?)
    }

    /// The spec this model was built from.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The parameters by name (the safetensors / ONNX initializer names).
    pub fn weights(&self) -> HashMap<String, Tensor> {
        let mut m = HashMap::new();
        for n in &self.nodes {
            if let Some(w) = &n.weight {
                m.insert(format!("{}.weight", n.layer.name), w.clone());
            }
            if let Some(b) = &n.bias {
                m.insert(format!("{}.bias", n.layer.name), b.clone());
            }
        }
        m
    }

    /// Run the network on `image` `[B, C, S, S]` (holes already zeroed) and `mask` `[B, 1, S, S]`
    /// (1 = hole). Returns `(reconstruction, inpainted)` with `inpainted = mask*rec + (1-mask)*image`.
    pub fn forward(&self, image: &Tensor, mask: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        let rec = self.reconstruct(image, mask)?;
        let inpainted = self.backend.composite(&rec, image, mask)?;
        Ok((rec, inpainted))
    }

    /// [`Model::forward`]'s reconstruction alone (what training needs: no composite to compute).
    pub fn reconstruct(&self, image: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
        let (s, c) = (self.spec.image_size, self.spec.channels);
        let (b, ci, h, w) = image.dims4()?;
        if (ci, h, w) != (c, s, s) {
            candle_core::bail!("image must be [B, {c}, {s}, {s}], got {:?}", image.dims());
        }
        if mask.dims() != [b, 1, s, s] {
            candle_core::bail!("mask must be [{b}, 1, {s}, {s}], got {:?}", mask.dims());
        }
        let input = if self.spec.mask_channel {
            Tensor::cat(&[image, mask], 1)?
        } else {
            image.clone()
        };
        self.eval(input, image.clone(), Some(mask.clone()))
    }

    /// Run the network alone on its prepared input `[B, input_channels, S, S]` (image, plus the mask
    /// channel when the spec has one); returns the reconstruction.
    pub fn forward_raw(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let c = self.spec.channels;
        let image = input.narrow(1, 0, c)?;
        let mask = if self.spec.mask_channel {
            Some(input.narrow(1, c, 1)?)
        } else {
            None
        };
        self.eval(input.clone(), image, mask)
    }

    /// Run the network layer by layer without fusing activations into convolutions, and show
    /// `visit` the network input (`spec::INPUT`) and every layer's output under the layer's name
    /// (a convolution's output before its activation). For post-training quantization, which needs
    /// the range of each tensor the exported graph holds; slower than [`Model::forward`].
    pub fn trace(
        &self,
        image: &Tensor,
        mask: &Tensor,
        visit: &mut dyn FnMut(&str, &Tensor),
    ) -> candle_core::Result<()> {
        let input = if self.spec.mask_channel {
            Tensor::cat(&[image, mask], 1)?
        } else {
            image.clone()
        };
        visit(spec::INPUT, &input);
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        values.insert(spec::INPUT, input);
        values.insert(spec::IMAGE, image.clone());
        values.insert(spec::MASK, mask.clone());
        for node in &self.nodes {
            let l = &node.layer;
            let xs = l
                .inputs
                .iter()
                .map(|n| {
                    values
                        .get(n.as_str())
                        .ok_or_else(|| candle_core::Error::Msg(format!("layer {} reads unknown '{n}'", l.name)))
                })
                .collect::<candle_core::Result<Vec<&Tensor>>>()?;
            let y = self.apply(node, &xs)?;
            visit(&l.name, &y);
            for n in &l.inputs {
                if self.last_use.get(n) == Some(&l.index) {
                    values.remove(n.as_str());
                }
            }
            values.insert(l.name.as_str(), y);
        }
        Ok(())
    }

    fn eval(&self, input: Tensor, image: Tensor, mask: Option<Tensor>) -> candle_core::Result<Tensor> {
        // The whole pass runs on one of rayon's worker threads (`rayon::scope` moves it there when called
        // from another thread): every parallel loop in the layers is then a cheap nested one, instead
        // of each layer handing its work to the pool and putting the caller to sleep until it is done
        // (a wake-up per layer, a large part of a batch-1 forward pass).
        if input.device().is_cpu() && rayon::current_thread_index().is_none() {
            // Fewer images than threads (batch 1: the latency case): the layers split each image over
            // the threads, and the idle ones are kept spinning between layers (see
            // `ops::with_spinning_helpers`) instead of being put to sleep and woken up at every layer.
            let threads = rayon::current_num_threads();
            let helpers = if input.dim(0)? < threads { threads - 1 } else { 0 };
            return crate::ops::with_spinning_helpers(helpers, || self.eval_here(input, image, mask));
        }
        self.eval_here(input, image, mask)
    }

    fn eval_here(&self, input: Tensor, image: Tensor, mask: Option<Tensor>) -> candle_core::Result<Tensor> {
        let mut values: HashMap<&str, Tensor> = HashMap::new();
        values.insert(spec::INPUT, input);
        values.insert(spec::IMAGE, image);
        if let Some(m) = mask {
            values.insert(spec::MASK, m);
        }
        let mut out = None;
        let mut skip_next = false;
        for (k, node) in self.nodes.iter().enumerate() {
            if std::mem::take(&mut skip_next) {
                continue;
            }
            // A convolution whose only reader is the next layer, a LeakyReLU or a sigmoid, runs as one
            // fused op: the activation is applied while the output is in cache and its gradient folds
            // into the convolution's backward pass (no activation tensor, no separate gradient
            // accumulation).
            let fused = self
                .nodes
                .get(k + 1)
                .and_then(|next| self.fused_act(node, next).map(|act| (next, act)));
            let node = if let Some((next, act)) = fused {
                skip_next = true;
                let x = values.get(node.layer.inputs[0].as_str()).ok_or_else(|| {
                    candle_core::Error::Msg(format!(
                        "layer {} reads a value forward_raw cannot provide",
                        node.layer.name
                    ))
                })?;
                let y = self.apply_fused(node, x, act)?;
                if self.last_use.get(&node.layer.inputs[0]) == Some(&node.layer.index) {
                    values.remove(node.layer.inputs[0].as_str());
                }
                if self.last_use.contains_key(&next.layer.name) {
                    values.insert(next.layer.name.as_str(), y);
                } else {
                    out = Some(y);
                }
                continue;
            } else {
                node
            };
            let l = &node.layer;
            let xs = l
                .inputs
                .iter()
                .map(|n| {
                    values.get(n.as_str()).ok_or_else(|| {
                        candle_core::Error::Msg(format!(
                            "layer {} reads '{n}', which forward_raw cannot provide",
                            l.name
                        ))
                    })
                })
                .collect::<candle_core::Result<Vec<&Tensor>>>()?;
            let y = self.apply(node, &xs)?;
            for n in &l.inputs {
                if self.last_use.get(n) == Some(&l.index) {
                    values.remove(n.as_str());
                }
            }
            if self.last_use.contains_key(&l.name) {
                values.insert(l.name.as_str(), y);
            } else {
                out = Some(y);
            }
        }
        // The last layer is never read by another (spec::resolve puts the output last).
        out.ok_or_else(|| candle_core::Error::Msg("model has no output layer".into()))
    }

    /// The activation to fuse when `node` is a convolution and `next` a LeakyReLU (slope >= 0) or a
    /// sigmoid that is its only reader.
    fn fused_act(&self, node: &Node, next: &Node) -> Option<Act> {
        let conv = matches!(node.layer.op, Op::Conv2d { .. } | Op::ConvTranspose2d { .. });
        let act = match next.layer.op {
            Op::LeakyRelu { slope } if slope >= 0.0 => Act::LeakyRelu(slope as f32),
            Op::Sigmoid => Act::Sigmoid,
            _ => return None,
        };
        let only_reader = next.layer.inputs.len() == 1
            && next.layer.inputs[0] == node.layer.name
            && self.last_use.get(&node.layer.name) == Some(&next.layer.index);
        (conv && only_reader).then_some(act)
    }

    fn apply_fused(&self, node: &Node, x: &Tensor, act: Act) -> candle_core::Result<Tensor> {
        let w = node
            .weight
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg(format!("layer {} has no weight", node.layer.name)))?;
        let b = node.bias.as_ref();
        match &node.layer.op {
            Op::Conv2d { .. } => self.backend.conv2d_act(x, w, b, node.conv, act),
            Op::ConvTranspose2d { .. } => self.backend.conv_transpose2d_act(x, w, b, node.conv, act),
            _ => unreachable!("only convolutions fuse"),
        }
    }

    fn apply(&self, node: &Node, xs: &[&Tensor]) -> candle_core::Result<Tensor> {
        let x = xs[0];
        let (w, b) = (node.weight.as_ref(), node.bias.as_ref());
        let weight = || w.ok_or_else(|| candle_core::Error::Msg(format!("layer {} has no weight", node.layer.name)));
        match &node.layer.op {
            Op::Conv2d { .. } => self.backend.conv2d(x, weight()?, b, node.conv),
            Op::ConvTranspose2d { .. } => self.backend.conv_transpose2d(x, weight()?, b, node.conv),
            Op::Dense { .. } => self.backend.dense(x, weight()?, b),
            Op::Flatten => layers::flatten(x),
            Op::Reshape { shape } => layers::reshape(x, shape),
            Op::LeakyRelu { slope } => self.backend.leaky_relu(x, *slope),
            Op::Relu => layers::relu(x),
            Op::Sigmoid => self.backend.sigmoid(x),
            Op::Tanh => layers::tanh(x),
            Op::Upsample { scale } => layers::upsample_nearest(x, *scale),
            Op::Concat => layers::concat(xs),
            Op::Add => layers::add(xs),
        }
    }
}

/// Read a safetensors file and check that it holds every parameter of `spec` with the right shape;
/// tensors are returned as f32 on `device`. Extra tensors are ignored.
pub fn load_weights(spec: &ModelSpec, path: &Path, device: &Device) -> Result<HashMap<String, Tensor>, ModelError> {
    let werr = |msg: String| ModelError::Weights {
        path: path.to_path_buf(),
        msg,
    };
    let expected = spec.parameters()?;
    let mut tensors =
        candle_core::safetensors::load(path, device).map_err(|e| werr(format!("cannot read safetensors: {e}")))?;
    let mut out = HashMap::new();
    for (name, shape) in expected {
        let t = tensors
            .remove(&name)
            .ok_or_else(|| werr(format!("missing tensor '{name}' (shape {shape:?})")))?;
        if t.dims() != shape.as_slice() {
            return Err(werr(format!(
                "tensor '{name}' has shape {:?}, the spec needs {shape:?}",
                t.dims()
            )));
        }
        if !t.dtype().is_float() {
            return Err(werr(format!(
                "tensor '{name}' has dtype {:?}, expected a float type",
                t.dtype()
            )));
        }
        out.insert(name, t.to_dtype(DType::F32)?);
    }
    Ok(out)
}

/// Deterministic random parameters for `spec` (tests, parity checks): glorot-uniform weights and
/// biases uniform in `[-bias_scale, bias_scale]` (non-zero, so that bias paths are exercised),
/// from a SplitMix64 stream seeded with `seed`.
pub fn random_weights(
    spec: &ModelSpec,
    seed: u64,
    bias_scale: f64,
    device: &Device,
) -> Result<HashMap<String, Tensor>, ModelError> {
    let mut state = seed;
    let mut next = move || {
        // SplitMix64: tiny, portable, good enough for test weights.
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = HashMap::new();
    for (name, shape) in spec.parameters()? {
        let limit = if shape.len() == 1 {
            bias_scale
        } else {
            glorot_limit(&shape)
        };
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| ((next() * 2.0 - 1.0) * limit) as f32).collect();
        out.insert(name, Tensor::from_vec(data, shape, device)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn config_spec(name: &str) -> ModelSpec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs").join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        serde_yaml::from_value(v["model"].clone()).unwrap()
    }

    const TINY: &str = "image_size: 8\nmask_channel: true\nlayers:\n  - {op: conv2d, name: c1, filters: 4, kernel: 3, stride: 2}\n  - {op: leaky_relu}\n  - {op: conv_transpose2d, name: t1, filters: 4, kernel: 3, stride: 2}\n  - {op: concat, from: [t1, input]}\n  - {op: conv2d, name: out, filters: 3, kernel: 1}\n  - {op: sigmoid}\n";

    fn rand_batch(spec: &ModelSpec, b: usize) -> (Tensor, Tensor) {
        let s = spec.image_size;
        let dev = Device::Cpu;
        // A deterministic mask: a box in the middle; image with holes zeroed.
        let mask_v: Vec<f32> = (0..b * s * s)
            .map(|i| {
                let (y, x) = ((i / s) % s, i % s);
                f32::from((s / 4..s / 2 + 1).contains(&y) && (s / 4..3 * s / 4).contains(&x))
            })
            .collect();
        let mask = Tensor::from_vec(mask_v, (b, 1, s, s), &dev).unwrap();
        let img = Tensor::rand(0f32, 1f32, (b, spec.channels, s, s), &dev).unwrap();
        let img = img.broadcast_mul(&mask.affine(-1.0, 1.0).unwrap()).unwrap();
        (img, mask)
    }

    #[test]
    fn seed_config_forward_shapes_and_keras_init() {
        let spec = config_spec("seed.yaml");
        let varmap = VarMap::new();
        let model = Model::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        // Every parameter of the spec was created, under its name, with its shape.
        let vars = varmap.data().lock().unwrap();
        for (name, shape) in spec.parameters().unwrap() {
            assert_eq!(vars[&name].as_tensor().dims(), shape.as_slice(), "{name}");
        }
        // glorot-uniform weights within the limit and zero biases.
        let w = vars["enc1.weight"].as_tensor();
        let lim = glorot_limit(w.dims()) as f32;
        let max = w.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(max <= lim && max > 0.5 * lim, "{max} vs {lim}");
        let bsum = vars["latent.bias"]
            .as_tensor()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(bsum, 0.0);
        drop(vars);
        let (img, mask) = rand_batch(&spec, 2);
        let (rec, inp) = model.forward(&img, &mask).unwrap();
        assert_eq!(rec.dims(), &[2, 3, 128, 128]);
        assert_eq!(inp.dims(), &[2, 3, 128, 128]);
        let min = rec.min_all().unwrap().to_scalar::<f32>().unwrap();
        let max = rec.max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(min >= 0.0 && max <= 1.0, "sigmoid output out of range: {min}..{max}");
    }

    #[test]
    fn inpainted_keeps_known_pixels_exactly_and_fills_holes() {
        let spec = config_spec("tiny.yaml");
        let w = random_weights(&spec, 7, 0.1, &Device::Cpu).unwrap();
        let model = Model::new(&spec, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap();
        let (img, mask) = rand_batch(&spec, 3);
        let (rec, inp) = model.forward(&img, &mask).unwrap();
        let img_v: Vec<f32> = img.flatten_all().unwrap().to_vec1().unwrap();
        let rec_v: Vec<f32> = rec.flatten_all().unwrap().to_vec1().unwrap();
        let inp_v: Vec<f32> = inp.flatten_all().unwrap().to_vec1().unwrap();
        let mask_v: Vec<f32> = mask
            .broadcast_as(img.shape())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (mut holes, mut known) = (0, 0);
        for i in 0..img_v.len() {
            if mask_v[i] == 1.0 {
                assert_eq!(inp_v[i], rec_v[i]);
                holes += 1;
            } else {
                assert_eq!(inp_v[i].to_bits(), img_v[i].to_bits());
                known += 1;
            }
        }
        assert!(holes > 0 && known > 0);
    }

    #[test]
    fn tiny_spec_forward_matches_hand_computed_graph() {
        let spec = ModelSpec::from_yaml(TINY).unwrap();
        let dev = Device::Cpu;
        let w = random_weights(&spec, 3, 0.2, &dev).unwrap();
        let model = Model::new(&spec, VarBuilder::from_tensors(w.clone(), DType::F32, &dev)).unwrap();
        let (img, mask) = rand_batch(&spec, 2);
        let (rec, _) = model.forward(&img, &mask).unwrap();
        // The same graph spelled out with candle's ops: conv(pad 1) -> leaky -> convT(pad 1, out_pad 1)
        // -> cat with input -> 1x1 conv -> sigmoid.
        let input = Tensor::cat(&[&img, &mask], 1).unwrap();
        let b = |n: &str| w[n].reshape((1, (), 1, 1)).unwrap();
        let x = input
            .conv2d(&w["c1.weight"], 1, 2, 1, 1)
            .unwrap()
            .broadcast_add(&b("c1.bias"))
            .unwrap();
        let x = candle_nn::ops::leaky_relu(&x, 0.2).unwrap();
        let x = x
            .conv_transpose2d(&w["t1.weight"], 1, 1, 2, 1)
            .unwrap()
            .broadcast_add(&b("t1.bias"))
            .unwrap();
        let x = Tensor::cat(&[&x, &input], 1).unwrap();
        let x = x
            .conv2d(&w["out.weight"], 0, 1, 1, 1)
            .unwrap()
            .broadcast_add(&b("out.bias"))
            .unwrap();
        let want = candle_nn::ops::sigmoid(&x).unwrap();
        let diff = (rec - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-6, "{diff}");
        // forward_raw on the prepared input gives the same reconstruction.
        let raw = model.forward_raw(&input).unwrap();
        assert_eq!(raw.dims(), &[2, 3, 8, 8]);
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        // The trainer differentiates through Model::forward: every op must have a backward pass.
        let spec = config_spec("tiny.yaml");
        let varmap = VarMap::new();
        let model = Model::new(&spec, VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu)).unwrap();
        let (img, mask) = rand_batch(&spec, 2);
        let (rec, _) = model.forward(&img, &mask).unwrap();
        let loss = (rec - &img).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let n = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(n.is_finite() && n > 0.0, "{name}: |grad| = {n}");
        }
    }

    #[test]
    fn layers_match_reference_semantics() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &dev).unwrap();
        let up: Vec<f32> = layers::upsample_nearest(&x, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(up, [1., 1., 2., 2., 1., 1., 2., 2., 3., 3., 4., 4., 3., 3., 4., 4.]);
        let v = Tensor::new(&[-2f32, 0., 3.], &dev).unwrap();
        let ops = Backend::select(&dev, DType::F32);
        assert_eq!(
            ops.leaky_relu(&v, 0.2).unwrap().to_vec1::<f32>().unwrap(),
            [-0.4, 0., 3.]
        );
        assert_eq!(
            ops.leaky_relu(&v, 2.0).unwrap().to_vec1::<f32>().unwrap(),
            [-4., 0., 3.]
        );
        let xd = Tensor::new(&[[1f32, 2.]], &dev).unwrap();
        let wd = Tensor::new(&[[1f32, 1.], [0., 2.], [3., -1.]], &dev).unwrap();
        let bd = Tensor::new(&[0.5f32, 0., 1.], &dev).unwrap();
        assert_eq!(
            ops.dense(&xd, &wd, Some(&bd)).unwrap().to_vec2::<f32>().unwrap(),
            [[3.5, 4., 2.]]
        );
        // Transposed conv, stride 2, 'same' padding for k=3: (1, 1) -> output exactly twice the input.
        let wt = Tensor::ones((1, 1, 3, 3), DType::F32, &dev).unwrap();
        let p = ConvParams {
            stride: 2,
            padding: 1,
            output_padding: 1,
            ..ConvParams::default()
        };
        let y = ops.conv_transpose2d(&x, &wt, None, p).unwrap();
        assert_eq!(y.dims(), &[1, 1, 4, 4]);
    }

    fn save(tensors: &[(&str, Tensor)], dir: &Path) -> PathBuf {
        let path = dir.join("w.safetensors");
        let map: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        candle_core::safetensors::save(&map, &path).unwrap();
        path
    }

    #[test]
    fn load_checks_every_tensor_and_names_file_and_tensor() {
        let spec = ModelSpec::from_yaml(TINY).unwrap();
        let dev = Device::Cpu;
        let dir = std::env::temp_dir().join(format!("facerecon-model-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let w = random_weights(&spec, 1, 0.1, &dev).unwrap();
        let all: Vec<(&str, Tensor)> = w.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();

        let ok = save(&all, &dir);
        let model = Model::load(&spec, &ok, &dev).unwrap();
        let back = model.weights()["t1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(back, w["t1.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap());

        let missing: Vec<_> = all.iter().filter(|(n, _)| *n != "out.bias").cloned().collect();
        let p = save(&missing, &dir);
        let e = Model::load(&spec, &p, &dev).err().unwrap().to_string();
        assert!(
            e.contains("w.safetensors") && e.contains("missing tensor 'out.bias'"),
            "{e}"
        );

        let mut bad = all.clone();
        for (n, t) in bad.iter_mut() {
            if *n == "c1.weight" {
                *t = Tensor::zeros((4, 3, 3, 3), DType::F32, &dev).unwrap();
            }
        }
        let p = save(&bad, &dir);
        let e = Model::load(&spec, &p, &dev).err().unwrap().to_string();
        assert!(
            e.contains("'c1.weight' has shape [4, 3, 3, 3]") && e.contains("[4, 4, 3, 3]"),
            "{e}"
        );

        let e = Model::load(&spec, &dir.join("nope.safetensors"), &dev)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("nope.safetensors"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
