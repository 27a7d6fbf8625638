//! The architecture spec: the network described once, as data.
//!
//! A config's `model:` section deserialises into [`ModelSpec`]. Both lowerings read it: the candle
//! model in this crate and the ONNX writer in `facerecon-export`. Parameter names are the contract
//! between them: a layer named `enc1` owns `enc1.weight` and `enc1.bias`, which are the safetensors
//! keys of a checkpoint and the initializer names of the exported ONNX graph.
//!
//! The graph is a list of layers. Each layer reads the previous layer's output unless `from:` names
//! other tensors: `input` (the network input: the image, or image ++ mask when `mask_channel` is
//! set), `image`, `mask`, or any earlier layer's `name`. That is enough for skip connections
//! (`concat`, `add`) while the common case, a plain stack, stays a plain list.
//!
//! ```yaml
//! model:
//!   image_size: 128
//!   channels: 3
//!   mask_channel: false
//!   layers:
//!     - {op: conv2d, name: enc1, filters: 32, kernel: 3, stride: 2}
//!     - {op: leaky_relu, slope: 0.2}
//!     - {op: flatten}
//!     - {op: dense, name: latent, units: 300}
//! ```

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Errors found while reading or checking a spec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("layer {index} ({op}): {msg}")]
    /// One layer is wrong (unknown input, shape mismatch, bad setting).
    Layer {
        /// Its position in `layers:`.
        index: usize,
        /// Its op (`conv2d`, ...).
        op: String,
        /// What is wrong.
        msg: String,
    },
    /// The spec as a whole is inconsistent (unknown or duplicate names, shapes that do not fit, sizes).
    #[error("model spec: {0}")]
    Invalid(String),
    /// The YAML does not parse or does not match the schema (unknown key, wrong type).
    #[error("cannot parse model spec: {0}")]
    Parse(#[from] serde_yaml::Error),
}

/// Padding of a convolution: Keras' `same` (output = ceil(input / stride)), `valid` (no padding),
/// or an explicit symmetric number of pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(untagged)]
pub enum Padding {
    /// Keras' `same`: output = ceil(input / stride).
    #[default]
    #[serde(with = "same_str")]
    Same,
    /// No padding.
    #[serde(with = "valid_str")]
    Valid,
    /// That many pixels on every side.
    Explicit(usize),
}

macro_rules! unit_str {
    ($m:ident, $s:literal) => {
        mod $m {
            pub fn serialize<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($s)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<(), D::Error> {
                let v: String = serde::Deserialize::deserialize(d)?;
                if v == $s {
                    Ok(())
                } else {
                    Err(serde::de::Error::custom(format!("expected '{}'", $s)))
                }
            }
        }
    };
}
unit_str!(same_str, "same");
unit_str!(valid_str, "valid");

/// Where a layer reads its input(s) from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum From {
    /// One layer's (or graph input's) output.
    One(String),
    /// Several, in order (`concat`, `add`).
    Many(Vec<String>),
}

fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn slope() -> f64 {
    0.2
}
fn two() -> usize {
    2
}

/// One operation of the network. Unknown keys are errors (a typo such as `dilaton: 2` must not
/// train another network); see [`Layer`]'s deserialiser for the ops without settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// 2-D convolution, weight `[filters, in, k, k]`.
    Conv2d {
        /// Output channels.
        filters: usize,
        /// Side of the square kernel.
        kernel: usize,
        /// Step in both directions (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Default `same`.
        #[serde(default)]
        padding: Padding,
        /// Spacing of the kernel taps (default 1; 2+ widens the receptive field without weights).
        #[serde(default = "one")]
        dilation: usize,
        /// Whether the layer adds a per-channel bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// 2-D transposed convolution, weight `[in, filters, k, k]` (candle's and ONNX's layout).
    /// `same` padding makes the output exactly `stride` times the input, like Keras.
    ConvTranspose2d {
        /// Output channels.
        filters: usize,
        /// Side of the square kernel.
        kernel: usize,
        /// Upsampling factor in both directions (default 1).
        #[serde(default = "one")]
        stride: usize,
        /// Default `same` (output = input * stride).
        #[serde(default)]
        padding: Padding,
        /// Whether the layer adds a per-channel bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Fully connected layer on a flat vector, weight `[units, in]`.
    Dense {
        /// Output features.
        units: usize,
        /// Whether the layer adds a bias (default true).
        #[serde(default = "yes")]
        bias: bool,
    },
    /// `[C, H, W]` -> `[C*H*W]` in C-major (NCHW) order.
    Flatten,
    /// `[F]` -> `shape` (`[C, H, W]`).
    Reshape {
        /// The target shape; its product must equal the input's length.
        shape: Vec<usize>,
    },
    /// `max(x, slope * x)`, the tutorial's activation.
    LeakyRelu {
        /// Slope for negative inputs (default 0.2, Keras').
        #[serde(default = "slope")]
        slope: f64,
    },
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`: the usual last layer, as pixels are in `[0,1]`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Nearest-neighbour upsampling by an integer factor.
    Upsample {
        /// Factor in both directions (default 2).
        #[serde(default = "two")]
        scale: usize,
    },
    /// Channel concatenation of the `from:` tensors.
    Concat,
    /// Element-wise sum of the `from:` tensors.
    Add,
}

impl Op {
    /// The op's name as written in the YAML (`conv2d`, ...), for messages and the exporter.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::ConvTranspose2d { .. } => "conv_transpose2d",
            Op::Dense { .. } => "dense",
            Op::Flatten => "flatten",
            Op::Reshape { .. } => "reshape",
            Op::LeakyRelu { .. } => "leaky_relu",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Tanh => "tanh",
            Op::Upsample { .. } => "upsample",
            Op::Concat => "concat",
            Op::Add => "add",
        }
    }
    /// Whether the op owns weights (and therefore needs a stable name).
    pub fn has_params(&self) -> bool {
        matches!(self, Op::Conv2d { .. } | Op::ConvTranspose2d { .. } | Op::Dense { .. })
    }
}

/// A layer: an op, an optional name (needed to refer to it, and the prefix of its weights) and
/// optional inputs (default: the previous layer's output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// Needed to refer to the layer in `from:`, and the prefix of its weights (`enc1.weight`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Inputs: a layer name or a graph input ([`INPUT`], [`IMAGE`], [`MASK`]); default the previous layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<From>,
    /// What the layer computes.
    #[serde(flatten)]
    pub op: Op,
}

/// By hand rather than derived: serde's `flatten` passes every key it does not know on to the op
/// and `deny_unknown_fields` does not work through it, and an internally tagged op without settings
/// (`{op: sigmoid, slope: 5}`) ignores extra keys. So: take `name` and `from`, deserialise the op from
/// the rest (unknown keys of ops with settings are serde's errors), then check that every remaining
/// key is one the op has (it serialises all of its fields). Errors name the layer and the key.
impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        use serde_yaml::{Mapping, Value};
        let mut map = Mapping::deserialize(d)?;
        let name: Option<String> = map
            .remove("name")
            .map(serde_yaml::from_value)
            .transpose()
            .map_err(D::Error::custom)?;
        let from: Option<From> = map
            .remove("from")
            .map(serde_yaml::from_value)
            .transpose()
            .map_err(D::Error::custom)?;
        let op_name = map.get("op").and_then(Value::as_str).unwrap_or("?").to_string();
        let label = match &name {
            Some(n) => format!("layer '{n}' ({op_name})"),
            None => format!("layer {op_name}"),
        };
        let keys: Vec<Value> = map.keys().cloned().collect();
        let op: Op =
            serde_yaml::from_value(Value::Mapping(map)).map_err(|e| D::Error::custom(format!("{label}: {e}")))?;
        let known = serde_yaml::to_value(&op).map_err(D::Error::custom)?;
        let known = known.as_mapping().expect("an op serialises to a mapping");
        if let Some(k) = keys.iter().find(|k| !known.contains_key(*k)) {
            let key = k.as_str().map_or_else(|| format!("{k:?}"), str::to_string);
            let mut allowed: Vec<&str> = known.keys().filter_map(Value::as_str).filter(|k| *k != "op").collect();
            allowed.extend(["name", "from"]);
            return Err(D::Error::custom(format!(
                "{label}: unknown key `{key}` (a {op_name} layer takes: {})",
                allowed.join(", ")
            )));
        }
        Ok(Layer { name, from, op })
    }
}

/// The whole network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Side of the square input, in pixels.
    #[serde(default = "default_size")]
    pub image_size: usize,
    /// Colour channels of the image (3).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Whether the mask is fed to the network as an extra input channel (`input` = image ++ mask).
    #[serde(default)]
    pub mask_channel: bool,
    /// The network in order; the last layer's output is the reconstruction (`[channels, S, S]`).
    #[serde(deserialize_with = "layers_by_index")]
    pub layers: Vec<Layer>,
}

/// The layer list, each layer's error prefixed with its position (`layers[3]: layer 'enc2' (conv2d): ...`).
fn layers_by_index<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Layer>, D::Error> {
    use serde::de::Error;
    let values = Vec::<serde_yaml::Value>::deserialize(d)?;
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Layer::deserialize(v).map_err(|e| D::Error::custom(format!("layers[{i}]: {e}"))))
        .collect()
}

fn default_size() -> usize {
    128
}
fn default_channels() -> usize {
    3
}

/// Shape of one sample's activation (the batch dimension is implicit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActShape {
    /// `[C, H, W]`
    Map(usize, usize, usize),
    /// `[F]`
    Flat(usize),
}

impl ActShape {
    /// Number of values in one sample's activation.
    pub fn numel(&self) -> usize {
        match *self {
            ActShape::Map(c, h, w) => c * h * w,
            ActShape::Flat(f) => f,
        }
    }
    /// The shape as a list (`[C, H, W]` or `[F]`).
    pub fn dims(&self) -> Vec<usize> {
        match *self {
            ActShape::Map(c, h, w) => vec![c, h, w],
            ActShape::Flat(f) => vec![f],
        }
    }
}

/// Padding, output padding of a convolution resolved to pixels.
pub fn conv_padding(padding: Padding, kernel: usize, dilation: usize) -> usize {
    match padding {
        Padding::Same => (dilation * (kernel - 1)) / 2,
        Padding::Valid => 0,
        Padding::Explicit(p) => p,
    }
}

/// `(padding, output_padding)` of a transposed convolution. `same` gives `out = in * stride`
/// (output = (in-1)*stride + kernel + output_padding - 2*padding), which needs
/// `output_padding = stride + 2*padding - kernel` in `0..stride`; `None` when no such padding exists.
pub fn conv_transpose_padding(padding: Padding, kernel: usize, stride: usize) -> Option<(usize, usize)> {
    match padding {
        Padding::Same => {
            let p = (kernel - 1) / 2;
            let op = (stride + 2 * p).checked_sub(kernel)?;
            (op < stride).then_some((p, op))
        }
        Padding::Valid => Some((0, 0)),
        Padding::Explicit(p) => Some((p, 0)),
    }
}

/// A layer after resolution: its final name, input names and output shape.
#[derive(Debug, Clone)]
pub struct ResolvedLayer {
    /// Position in the spec's layer list.
    pub index: usize,
    /// The name of this layer's output (given, or `layer{index}`).
    pub name: String,
    /// Names of the outputs it reads, resolved (`from:` or the previous layer).
    pub inputs: Vec<String>,
    /// What it computes.
    pub op: Op,
    /// Shapes of its inputs, in the order of `inputs`.
    pub in_shapes: Vec<ActShape>,
    /// Shape of its output.
    pub out_shape: ActShape,
}

/// Names of the graph inputs a layer may read: `input` (the network input: the image with holes
/// zeroed, plus the mask channel when `mask_channel` is set), and the model file's own inputs
/// `image` and `mask` (the contract's names, so that a layer reading them reads the ONNX inputs).
pub const INPUT: &str = "input";
pub use facerecon_contract::names::{IMAGE, MASK};

impl ModelSpec {
    /// Parses a config's `model:` section and checks it (names, shapes, paddings) before any weight exists.
    pub fn from_yaml(text: &str) -> Result<Self, SpecError> {
        let spec: ModelSpec = serde_yaml::from_str(text)?;
        spec.resolve()?;
        Ok(spec)
    }

    /// Channels of the network input (`channels`, plus one when the mask is an input channel).
    pub fn input_channels(&self) -> usize {
        self.channels + usize::from(self.mask_channel)
    }

    /// Resolve names, inputs and shapes; check that the network maps
    /// `[input_channels, S, S]` to `[channels, S, S]`.
    pub fn resolve(&self) -> Result<Vec<ResolvedLayer>, SpecError> {
        let s = self.image_size;
        if s == 0 || self.channels == 0 {
            return Err(SpecError::Invalid("image_size and channels must be > 0".into()));
        }
        if self.layers.is_empty() {
            return Err(SpecError::Invalid("no layers".into()));
        }
        let mut shapes: HashMap<String, ActShape> = HashMap::new();
        shapes.insert(INPUT.into(), ActShape::Map(self.input_channels(), s, s));
        shapes.insert(IMAGE.into(), ActShape::Map(self.channels, s, s));
        shapes.insert(MASK.into(), ActShape::Map(1, s, s));
        let mut prev = INPUT.to_string();
        let mut out = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate() {
            let op = &layer.op;
            let err = |msg: String| SpecError::Layer {
                index,
                op: op.kind().to_string(),
                msg,
            };
            let name = layer.name.clone().unwrap_or_else(|| format!("layer{index}"));
            if shapes.contains_key(&name) {
                return Err(err(format!("name '{name}' is already used")));
            }
            if name.is_empty() || name.contains(['.', '/', ' ']) {
                return Err(err(format!("invalid name '{name}' (no '.', '/' or spaces)")));
            }
            let inputs = match &layer.from {
                None => vec![prev.clone()],
                Some(From::One(n)) => vec![n.clone()],
                Some(From::Many(v)) => v.clone(),
            };
            let mut in_shapes = Vec::new();
            for i in &inputs {
                match shapes.get(i) {
                    Some(sh) => in_shapes.push(sh.clone()),
                    None => return Err(err(format!("input '{i}' is not defined before this layer"))),
                }
            }
            let multi = matches!(op, Op::Concat | Op::Add);
            if multi && inputs.len() < 2 {
                return Err(err("needs at least two inputs in 'from'".into()));
            }
            if !multi && inputs.len() != 1 {
                return Err(err("takes exactly one input".into()));
            }
            let x = in_shapes[0].clone();
            let map = |what: &str| match x {
                ActShape::Map(c, h, w) => Ok((c, h, w)),
                ActShape::Flat(_) => Err(err(format!("{what} needs a [C,H,W] input, got a flat vector"))),
            };
            let out_shape = match op {
                Op::Conv2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    dilation,
                    ..
                } => {
                    let (_, h, w) = map("conv2d")?;
                    if *kernel == 0 || *stride == 0 || *dilation == 0 || *filters == 0 {
                        return Err(err("filters, kernel, stride and dilation must be > 0".into()));
                    }
                    let p = conv_padding(*padding, *kernel, *dilation);
                    let eff = dilation * (kernel - 1) + 1;
                    if h + 2 * p < eff || w + 2 * p < eff {
                        return Err(err(format!("kernel larger than the padded input {h}x{w}")));
                    }
                    ActShape::Map(*filters, (h + 2 * p - eff) / stride + 1, (w + 2 * p - eff) / stride + 1)
                }
                Op::ConvTranspose2d {
                    filters,
                    kernel,
                    stride,
                    padding,
                    ..
                } => {
                    let (_, h, w) = map("conv_transpose2d")?;
                    if *kernel == 0 || *stride == 0 || *filters == 0 {
                        return Err(err("filters, kernel and stride must be > 0".into()));
                    }
                    let (p, op_) = conv_transpose_padding(*padding, *kernel, *stride)
                        .ok_or_else(|| err(format!("no 'same' padding for kernel {kernel} stride {stride}")))?;
                    let o = |i: usize| ((i - 1) * stride + kernel + op_).checked_sub(2 * p);
                    match (o(h), o(w)) {
                        (Some(oh), Some(ow)) if oh > 0 && ow > 0 => ActShape::Map(*filters, oh, ow),
                        _ => return Err(err("output would be empty".into())),
                    }
                }
                Op::Dense { units, .. } => match x {
                    ActShape::Flat(_) if *units > 0 => ActShape::Flat(*units),
                    ActShape::Flat(_) => return Err(err("units must be > 0".into())),
                    ActShape::Map(..) => return Err(err("dense needs a flat input: add {op: flatten}".into())),
                },
                Op::Flatten => ActShape::Flat(x.numel()),
                Op::Reshape { shape } => {
                    if shape.len() != 3 {
                        return Err(err("shape must be [C, H, W]".into()));
                    }
                    let n: usize = shape.iter().product();
                    if n != x.numel() {
                        return Err(err(format!("cannot reshape {} values into {:?}", x.numel(), shape)));
                    }
                    ActShape::Map(shape[0], shape[1], shape[2])
                }
                Op::LeakyRelu { .. } | Op::Relu | Op::Sigmoid | Op::Tanh => x,
                Op::Upsample { scale } => {
                    let (c, h, w) = map("upsample")?;
                    if *scale == 0 {
                        return Err(err("scale must be > 0".into()));
                    }
                    ActShape::Map(c, h * scale, w * scale)
                }
                Op::Concat => {
                    let mut c_sum = 0;
                    let (_, h, w) = map("concat")?;
                    for sh in &in_shapes {
                        match *sh {
                            ActShape::Map(c, hh, ww) if hh == h && ww == w => c_sum += c,
                            _ => return Err(err(format!("inputs {inputs:?} differ in height/width: {in_shapes:?}"))),
                        }
                    }
                    ActShape::Map(c_sum, h, w)
                }
                Op::Add => {
                    if in_shapes.iter().any(|sh| *sh != x) {
                        return Err(err(format!("inputs {inputs:?} differ in shape: {in_shapes:?}")));
                    }
                    x
                }
            };
            shapes.insert(name.clone(), out_shape.clone());
            prev = name.clone();
            out.push(ResolvedLayer {
                index,
                name,
                inputs,
                op: op.clone(),
                in_shapes,
                out_shape,
            });
        }
        let last = &out.last().unwrap().out_shape;
        if *last != ActShape::Map(self.channels, s, s) {
            return Err(SpecError::Invalid(format!(
                "the last layer outputs {:?}, the model must output [{}, {s}, {s}]",
                last.dims(),
                self.channels
            )));
        }
        Ok(out)
    }

    /// Parameter tensors `(name, shape)` in layer order: the checkpoint / ONNX initializer contract.
    pub fn parameters(&self) -> Result<Vec<(String, Vec<usize>)>, SpecError> {
        let mut v = Vec::new();
        for l in self.resolve()? {
            let cin = match l.in_shapes[0] {
                ActShape::Map(c, ..) => c,
                ActShape::Flat(f) => f,
            };
            match l.op {
                Op::Conv2d {
                    filters, kernel, bias, ..
                } => {
                    v.push((format!("{}.weight", l.name), vec![filters, cin, kernel, kernel]));
                    if bias {
                        v.push((format!("{}.bias", l.name), vec![filters]));
                    }
                }
                Op::ConvTranspose2d {
                    filters, kernel, bias, ..
                } => {
                    v.push((format!("{}.weight", l.name), vec![cin, filters, kernel, kernel]));
                    if bias {
                        v.push((format!("{}.bias", l.name), vec![filters]));
                    }
                }
                Op::Dense { units, bias } => {
                    v.push((format!("{}.weight", l.name), vec![units, cin]));
                    if bias {
                        v.push((format!("{}.bias", l.name), vec![units]));
                    }
                }
                _ => {}
            }
        }
        Ok(v)
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> Result<usize, SpecError> {
        Ok(self
            .parameters()?
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum())
    }

    /// Forward FLOPs per image (2 per multiply-add, as ../shared/bench/flops.py counts them).
    pub fn flops_per_image(&self) -> Result<u64, SpecError> {
        let mut f = 0u64;
        for l in self.resolve()? {
            let cin = match l.in_shapes[0] {
                ActShape::Map(c, ..) => c,
                ActShape::Flat(n) => n,
            } as u64;
            match (&l.op, &l.out_shape, &l.in_shapes[0]) {
                (Op::Conv2d { kernel, .. }, ActShape::Map(c, h, w), _) => {
                    f += 2 * (*c * h * w) as u64 * cin * (*kernel * *kernel) as u64;
                }
                (Op::ConvTranspose2d { filters, kernel, .. }, _, ActShape::Map(_, h, w)) => {
                    f += 2 * (h * w) as u64 * cin * (*filters * kernel * kernel) as u64;
                }
                (Op::Dense { units, .. }, _, _) => f += 2 * cin * *units as u64,
                _ => {}
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
image_size: 128
layers:
  - {op: conv2d, name: enc1, filters: 32, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv2d, name: enc2, filters: 64, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv2d, name: enc3, filters: 64, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv2d, name: enc4, filters: 64, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: flatten}
  - {op: dense, name: latent, units: 300}
  - {op: dense, name: dec_fc, units: 4096}
  - {op: reshape, shape: [64, 8, 8]}
  - {op: conv_transpose2d, name: dec1, filters: 64, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv_transpose2d, name: dec2, filters: 64, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv_transpose2d, name: dec3, filters: 32, kernel: 3, stride: 2}
  - {op: leaky_relu}
  - {op: conv_transpose2d, name: dec4, filters: 3, kernel: 3, stride: 2}
  - {op: sigmoid}
"#;

    #[test]
    fn seed_shapes_params_and_flops_match_the_tutorial() {
        let spec = ModelSpec::from_yaml(SEED).unwrap();
        let r = spec.resolve().unwrap();
        assert_eq!(r[8].out_shape, ActShape::Flat(4096));
        assert_eq!(r[12].out_shape, ActShape::Map(64, 16, 16));
        // ../shared/bench/flops.py: 2,648,431 parameters and 141.75 MFLOP per image.
        assert_eq!(spec.num_parameters().unwrap(), 2_648_431);
        let mflop = spec.flops_per_image().unwrap() as f64 / 1e6;
        assert!((mflop - 141.75).abs() < 0.5, "{mflop}");
    }

    #[test]
    fn skip_connections_resolve_and_bad_references_are_named() {
        let y = r#"
image_size: 16
mask_channel: true
layers:
  - {op: conv2d, name: e1, filters: 8, kernel: 3, stride: 2}
  - {op: upsample, scale: 2}
  - {op: concat, name: cat, from: [layer1, input]}
  - {op: conv2d, filters: 3, kernel: 3}
"#;
        let spec = ModelSpec::from_yaml(y).unwrap();
        let r = spec.resolve().unwrap();
        assert_eq!(r[2].out_shape, ActShape::Map(12, 16, 16));
        let bad = y.replace("[layer1, input]", "[nope, input]");
        let e = ModelSpec::from_yaml(&bad).unwrap_err().to_string();
        assert!(e.contains("'nope'"), "{e}");
    }

    #[test]
    fn wrong_output_shape_is_rejected() {
        let y = "image_size: 8\nlayers:\n  - {op: conv2d, filters: 4, kernel: 3}\n";
        let e = ModelSpec::from_yaml(y).unwrap_err().to_string();
        assert!(e.contains("must output [3, 8, 8]"), "{e}");
    }

    #[test]
    fn padding_forms_parse() {
        let y = "image_size: 8\nlayers:\n  - {op: conv2d, filters: 3, kernel: 3, padding: 1}\n  - {op: conv2d, filters: 3, kernel: 1, padding: valid}\n  - {op: conv2d, filters: 3, kernel: 3, padding: same}\n";
        let spec = ModelSpec::from_yaml(y).unwrap();
        assert_eq!(spec.resolve().unwrap()[2].out_shape, ActShape::Map(3, 8, 8));
        assert!(ModelSpec::from_yaml(&y.replace("padding: 1", "padding: wide")).is_err());
    }

    /// A misspelt or foreign key inside a layer is an error naming the key and the layer, for every
    /// op (struct-like ops and the ones without settings alike).
    #[test]
    fn unknown_keys_in_a_layer_are_errors_naming_key_and_layer() {
        let layer =
            |l: &str| format!("image_size: 8\nlayers:\n  - {{op: conv2d, name: c0, filters: 3, kernel: 3}}\n  - {l}\n");
        let cases = [
            (
                "{op: conv2d, name: enc, filters: 3, kernel: 3, dilaton: 2}",
                "dilaton",
                "enc",
            ),
            (
                "{op: conv2d, name: enc, filters: 3, kernel: 3, bais: false}",
                "bais",
                "enc",
            ),
            (
                "{op: conv_transpose2d, name: dec, filters: 3, kernel: 3, dilation: 1}",
                "dilation",
                "dec",
            ),
            ("{op: dense, name: fc, units: 3, bais: false}", "bais", "fc"),
            ("{op: reshape, shape: [3, 8, 8], order: c}", "order", "reshape"),
            ("{op: leaky_relu, slop: 0.1}", "slop", "leaky_relu"),
            ("{op: upsample, factor: 2}", "factor", "upsample"),
            ("{op: sigmoid, slope: 5}", "slope", "sigmoid"),
            ("{op: relu, inplace: true}", "inplace", "relu"),
            ("{op: tanh, name: t, scale: 2}", "scale", "'t'"),
            ("{op: flatten, axis: 1}", "axis", "flatten"),
            ("{op: concat, from: [c0, input], axis: 1}", "axis", "concat"),
            ("{op: add, from: [c0, image], alpha: 1}", "alpha", "add"),
        ];
        for (l, key, layer_name) in cases {
            let e = ModelSpec::from_yaml(&layer(l)).unwrap_err().to_string();
            assert!(e.contains(key) && e.contains(layer_name), "{l}: {e}");
            assert!(
                e.contains("layers[1]"),
                "{l}: the error names the layer's position: {e}"
            );
        }
        // The same layers without the stray keys parse, and a layer round-trips through YAML.
        let good = layer("{op: sigmoid, name: s}");
        let spec = ModelSpec::from_yaml(&good).unwrap();
        let again: ModelSpec = serde_yaml::from_str(&serde_yaml::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
        let e = ModelSpec::from_yaml(&layer("{op: sigmod}")).unwrap_err().to_string();
        assert!(e.contains("sigmod"), "{e}");
        let e = ModelSpec::from_yaml("image_size: 8\nlayerz: []\nlayers: []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("layerz"), "{e}");
    }
}
