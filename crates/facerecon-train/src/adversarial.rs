//! Adversarial fine-tuning (`train.adversarial`): a small PatchGAN discriminator with spectral
//! normalisation, hinge losses and feature matching, on a fixed-size crop around each image's hole.
//!
//! * The discriminator sees `crop x crop` pixels (RGB and the mask) centred on the hole's bounding box
//!   (clamped inside the image): the composite `mask * rec + (1 - mask) * image` as "fake", the original
//!   as "real". Only the hole and its seam differ between the two, so the crop keeps the cost small (2 CPU
//!   cores) without hiding what matters. Its layers: `d_layers` 3x3 stride-2 convolutions
//!   (`d_channels`, doubled each layer, LeakyReLU 0.2) and a 3x3 convolution to one logit per patch.
//! * Spectral normalisation (Miyato et al. 2018): each weight is used as `W / sigma(W)`, `sigma`
//!   estimated as `u^T W v` with one power iteration per discriminator step; `u` and `v` are part of the
//!   checkpoint, so a resumed run continues the same estimate.
//! * Losses: the discriminator's hinge `mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))`; the
//!   generator's `weight * -mean(D(fake)) + feature_matching * mean_l |F_l(fake) - F_l(real)|`
//!   (`F_l` the hidden layers' outputs) `+ gradient * |grad(fake) - grad(real)|` (finite differences in
//!   the crop), added to the pixel loss.
//! * One step: the generator's forward pass, one discriminator update on the detached fake (its own
//!   Adam, learning rate `d_lr` scaled by the generator's schedule), then the generator's loss through the
//!   updated discriminator (its weights detached: only the generator gets gradients).
//!
//! The discriminator is training-only: its weights, Adam state and power-iteration vectors live in
//! `discriminator.safetensors` inside the checkpoint directory (listed in the manifest like the other
//! files), never in `model.safetensors`, so the exporter sees the generator alone.

use crate::config::{AdversarialConfig, OptimizerConfig, OptimizerKind};
use crate::optim::Optimizer;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use facerecon_model::layers::{Act, Backend, ConvParams};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// The LeakyReLU slope of the hidden layers.
const SLOPE: f32 = 0.2;
/// Added to norms in the power iteration (PyTorch's `spectral_norm` eps).
const SN_EPS: f32 = 1e-12;

/// One convolution of the discriminator.
struct Layer {
    name: String,
    weight: Var,
    bias: Var,
    stride: usize,
    /// Power-iteration vectors: `u` over the output channels, `v` over `in * k * k`.
    u: Vec<f32>,
    v: Vec<f32>,
}

/// The discriminator, its optimiser and its spectral-norm state.
pub struct Discriminator {
    cfg: AdversarialConfig,
    layers: Vec<Layer>,
    optimizer: Optimizer,
}

/// What one adversarial step measured (before the updates), for the logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AdvLosses {
    /// The discriminator's hinge loss.
    pub d_loss: f64,
    /// The generator's adversarial term `-mean(D(fake))` (unweighted).
    pub g_adv: f64,
    /// The feature-matching distance (unweighted).
    pub feature_matching: f64,
    /// The image-gradient L1 distance in the crop (unweighted; 0 when its weight is 0).
    pub gradient: f64,
}

impl AdvLosses {
    /// The names these values have in `metrics.jsonl` (`extra`) and in `state.json`'s running sums.
    pub const NAMES: [&'static str; 4] = ["d_loss", "g_adv", "feature_matching", "gradient_loss"];

    /// The values in [`AdvLosses::NAMES`]'s order.
    pub fn values(&self) -> [f64; 4] {
        [self.d_loss, self.g_adv, self.feature_matching, self.gradient]
    }
}

/// The crop origins `(y0, x0)` of each image: a `crop`-sided square centred on the bounding box of the
/// mask's hole pixels (> 0.5), clamped inside the `size x size` image; the image's centre when it has no hole.
pub fn crop_origins(masks: &[f32], n: usize, size: usize, crop: usize) -> Vec<(usize, usize)> {
    let px = size * size;
    (0..n)
        .map(|i| {
            let m = &masks[i * px..][..px];
            let (mut y0, mut y1, mut x0, mut x1) = (usize::MAX, 0, usize::MAX, 0);
            for (k, v) in m.iter().enumerate() {
                if *v > 0.5 {
                    let (y, x) = (k / size, k % size);
                    (y0, y1, x0, x1) = (y0.min(y), y1.max(y), x0.min(x), x1.max(x));
                }
            }
            let (cy, cx) = if y0 == usize::MAX {
                (size / 2, size / 2)
            } else {
                ((y0 + y1).div_ceil(2), (x0 + x1).div_ceil(2))
            };
            let place = |c: usize| c.saturating_sub(crop / 2).min(size - crop);
            (place(cy), place(cx))
        })
        .collect()
}

/// The crops of `t` `[N, C, S, S]` at `origins` -> `[N, C, crop, crop]` (differentiable).
pub fn crop(t: &Tensor, origins: &[(usize, usize)], crop: usize) -> candle_core::Result<Tensor> {
    let parts = origins
        .iter()
        .enumerate()
        .map(|(i, &(y, x))| t.narrow(0, i, 1)?.narrow(2, y, crop)?.narrow(3, x, crop))
        .collect::<candle_core::Result<Vec<_>>>()?;
    Tensor::cat(&parts, 0)?.contiguous()
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt() + SN_EPS;
    v.iter_mut().for_each(|x| *x /= n);
}

impl Discriminator {
    /// A new discriminator for images with `channels` colour channels (the mask is one more input
    /// channel), weights and power-iteration vectors drawn from `seed`.
    pub fn new(cfg: &AdversarialConfig, channels: usize, seed: u64, device: &Device) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(facerecon_imaging::masks::mix_seed(&[seed, 0xd15c]));
        let mut layers = Vec::new();
        let mut cin = channels + 1;
        for l in 0..=cfg.d_layers {
            let last = l == cfg.d_layers;
            let cout = if last { 1 } else { cfg.d_channels << l };
            let fan_in = cin * 9;
            // Glorot-uniform like the generator's convolutions; the bias starts at 0.
            let limit = (6.0 / (fan_in + cout * 9) as f64).sqrt();
            let w: Vec<f32> = (0..cout * fan_in)
                .map(|_| rng.gen_range(-limit..limit) as f32)
                .collect();
            let mut u: Vec<f32> = (0..cout).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            normalize(&mut u);
            let name = format!("d{l}");
            layers.push(Layer {
                weight: Var::from_tensor(&Tensor::from_vec(w, (cout, cin, 3, 3), device)?)?,
                bias: Var::from_tensor(&Tensor::zeros(cout, candle_core::DType::F32, device)?)?,
                stride: if last { 1 } else { 2 },
                u,
                v: vec![0.0; fan_in],
                name,
            });
            cin = cout;
        }
        let mut d = Discriminator {
            cfg: cfg.clone(),
            optimizer: Optimizer::new(&Self::optimizer_config(cfg), Vec::new())?,
            layers,
        };
        d.optimizer = Optimizer::new(&Self::optimizer_config(cfg), d.params())?;
        // v from u, so that the first generator step before any discriminator step has a sigma.
        d.power_iteration()?;
        Ok(d)
    }

    fn optimizer_config(cfg: &AdversarialConfig) -> OptimizerConfig {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: cfg.d_lr,
            beta1: cfg.d_beta1,
            beta2: cfg.d_beta2,
            ..OptimizerConfig::default()
        }
    }

    fn params(&self) -> Vec<(String, Var)> {
        self.layers
            .iter()
            .flat_map(|l| {
                [
                    (format!("{}.weight", l.name), l.weight.clone()),
                    (format!("{}.bias", l.name), l.bias.clone()),
                ]
            })
            .collect()
    }

    /// The crop side.
    pub fn crop(&self) -> usize {
        self.cfg.crop
    }

    /// One power iteration per layer: `v = W^T u / |.|`, `u = W v / |.|`.
    fn power_iteration(&mut self) -> Result<()> {
        for l in &mut self.layers {
            let w = l.weight.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let (rows, cols) = (l.u.len(), l.v.len());
            let mut v = vec![0f32; cols];
            for (r, u) in l.u.iter().enumerate() {
                for (vc, wc) in v.iter_mut().zip(&w[r * cols..][..cols]) {
                    *vc += wc * u;
                }
            }
            normalize(&mut v);
            let mut u: Vec<f32> = (0..rows)
                .map(|r| w[r * cols..][..cols].iter().zip(&v).map(|(a, b)| a * b).sum())
                .collect();
            normalize(&mut u);
            (l.u, l.v) = (u, v);
        }
        Ok(())
    }

    /// The network on `x` `[N, C+1, crop, crop]`: the patch logits and the hidden layers' outputs.
    /// With `train` false the weights are detached (no gradient reaches the discriminator).
    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<(Tensor, Vec<Tensor>)> {
        let mut h = x.clone();
        let mut feats = Vec::new();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let (mut w, mut b) = (l.weight.as_tensor().clone(), l.bias.as_tensor().clone());
            if !train {
                (w, b) = (w.detach(), b.detach());
            }
            let dev = w.device().clone();
            let (rows, cols) = (l.u.len(), l.v.len());
            let u = Tensor::from_slice(&l.u, (1, rows), &dev)?;
            let v = Tensor::from_slice(&l.v, (cols, 1), &dev)?;
            // sigma = u^T W v, differentiable in W (u and v are constants, as in PyTorch's spectral_norm).
            let sigma = u.matmul(&w.reshape((rows, cols))?.matmul(&v)?)?.reshape(())?;
            let w_sn = w.broadcast_div(&sigma)?;
            let backend = Backend::for_tensors(&[&h, &w_sn]);
            let p = ConvParams {
                stride: l.stride,
                padding: 1,
                ..ConvParams::default()
            };
            if i + 1 < n {
                h = backend.conv2d_act(&h, &w_sn, Some(&b), p, Act::LeakyRelu(SLOPE))?;
                feats.push(h.clone());
            } else {
                h = backend.conv2d(&h, &w_sn, Some(&b), p)?;
            }
        }
        Ok((h, feats))
    }

    /// One adversarial step: updates the discriminator (learning rate `d_lr * lr_scale`) on the detached
    /// fake, then returns the generator's adversarial loss (already weighted; add it to the pixel
    /// loss) and the step's measurements. `rec` is the generator's reconstruction `[N, C, S, S]`,
    /// `image` the original, `mask` `[N, 1, S, S]`, `origins` from [`crop_origins`].
    pub fn step(
        &mut self,
        rec: &Tensor,
        image: &Tensor,
        mask: &Tensor,
        origins: &[(usize, usize)],
        lr_scale: f64,
    ) -> Result<(Tensor, AdvLosses)> {
        let c = self.cfg.crop;
        // With candle's ops: the gradient must reach `rec` (inside the hole only).
        let composite = (mask.broadcast_mul(rec)? + mask.affine(-1.0, 1.0)?.broadcast_mul(image)?)?;
        let fake = crop(&Tensor::cat(&[&composite, mask], 1)?, origins, c)?;
        let real = crop(&Tensor::cat(&[image, mask], 1)?, origins, c)?;

        // The discriminator's update.
        self.power_iteration()?;
        let (d_real, _) = self.forward(&real, true)?;
        let (d_fake, _) = self.forward(&fake.detach(), true)?;
        let d_loss =
            ((d_real.affine(-1.0, 1.0)?.relu()?.mean_all()?) + (d_fake.affine(1.0, 1.0)?.relu()?.mean_all()?))?;
        let d_value = d_loss.to_scalar::<f32>()? as f64;
        if !d_value.is_finite() {
            bail!("the discriminator's loss is {d_value} (d_lr too high?)");
        }
        self.optimizer
            .step(&d_loss.backward()?, self.cfg.d_lr * lr_scale)
            .context("the discriminator's update")?;

        // The generator's adversarial terms through the updated discriminator.
        let (g_fake, f_fake) = self.forward(&fake, false)?;
        let (_, f_real) = self.forward(&real, false)?;
        let g_adv = g_fake.mean_all()?.neg()?;
        let mut fm = Tensor::zeros((), candle_core::DType::F32, rec.device())?;
        for (a, b) in f_fake.iter().zip(&f_real) {
            fm = (fm + (a - b.detach())?.abs()?.mean_all()?)?;
        }
        let fm = fm.affine(1.0 / f_fake.len().max(1) as f64, 0.0)?;
        let mut total = ((g_adv.affine(self.cfg.weight, 0.0)?) + fm.affine(self.cfg.feature_matching, 0.0)?)?;
        let mut gradient = 0.0;
        if self.cfg.gradient > 0.0 {
            let ch = image.dim(1)?;
            let (f, r) = (fake.narrow(1, 0, ch)?, real.narrow(1, 0, ch)?);
            let dx = |t: &Tensor| -> candle_core::Result<Tensor> { t.narrow(3, 1, c - 1)? - t.narrow(3, 0, c - 1)? };
            let dy = |t: &Tensor| -> candle_core::Result<Tensor> { t.narrow(2, 1, c - 1)? - t.narrow(2, 0, c - 1)? };
            let g = ((dx(&f)? - dx(&r)?)?.abs()?.mean_all()? + (dy(&f)? - dy(&r)?)?.abs()?.mean_all()?)?;
            gradient = g.to_scalar::<f32>()? as f64;
            total = (total + g.affine(self.cfg.gradient, 0.0)?)?;
        }
        let losses = AdvLosses {
            d_loss: d_value,
            g_adv: g_adv.to_scalar::<f32>()? as f64,
            feature_matching: fm.to_scalar::<f32>()? as f64,
            gradient,
        };
        Ok((total, losses))
    }

    /// The discriminator's steps taken.
    pub fn steps(&self) -> u64 {
        self.optimizer.steps()
    }

    /// The checkpoint file's bytes: weights (`weight/NAME`), Adam slots (`adam/NAME.m`, `.v`) and
    /// power-iteration vectors (`sn/LAYER.u`, `.v`), the step in the metadata.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let dev = Device::Cpu;
        let mut tensors: Vec<(String, Tensor)> = self
            .params()
            .into_iter()
            .map(|(n, v)| (format!("weight/{n}"), v.as_tensor().clone()))
            .collect();
        tensors.extend(
            self.optimizer
                .state()
                .into_iter()
                .map(|(n, t)| (format!("adam/{n}"), t)),
        );
        for l in &self.layers {
            tensors.push((format!("sn/{}.u", l.name), Tensor::from_slice(&l.u, l.u.len(), &dev)?));
            tensors.push((format!("sn/{}.v", l.name), Tensor::from_slice(&l.v, l.v.len(), &dev)?));
        }
        let meta = HashMap::from([("step".to_string(), self.optimizer.steps().to_string())]);
        crate::checkpoint::tensors_to_bytes(&tensors, meta)
    }

    /// Restore what [`Discriminator::to_bytes`] wrote (read back by `checkpoint::load_tensors`); `path`
    /// names the file in errors. Every tensor must be there with its shape.
    pub fn load(
        &mut self,
        mut tensors: HashMap<String, Tensor>,
        meta: &HashMap<String, String>,
        path: &str,
    ) -> Result<()> {
        let step: u64 = meta
            .get("step")
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("{path}: no 'step' in the metadata"))?;
        let mut take = |key: String, dims: &[usize]| -> Result<Tensor> {
            let t = tensors
                .remove(&key)
                .with_context(|| format!("{path}: no tensor '{key}' (a discriminator of another shape?)"))?;
            if t.dims() != dims {
                bail!(
                    "{path}: '{key}' has shape {:?}, the discriminator needs {dims:?}",
                    t.dims()
                );
            }
            Ok(t)
        };
        for l in &mut self.layers {
            let w = take(format!("weight/{}.weight", l.name), l.weight.dims())?;
            let b = take(format!("weight/{}.bias", l.name), l.bias.dims())?;
            l.weight.set(&w.to_device(l.weight.device())?)?;
            l.bias.set(&b.to_device(l.bias.device())?)?;
            l.u = take(format!("sn/{}.u", l.name), &[l.u.len()])?.to_vec1()?;
            l.v = take(format!("sn/{}.v", l.name), &[l.v.len()])?.to_vec1()?;
        }
        let adam: HashMap<String, Tensor> = tensors
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix("adam/").map(|k| (k.to_string(), t)))
            .collect();
        self.optimizer
            .load_state(adam, step)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AdversarialConfig {
        AdversarialConfig {
            crop: 16,
            d_channels: 4,
            d_layers: 2,
            gradient: 0.5,
            ..AdversarialConfig::default()
        }
    }

    #[test]
    fn crops_are_centred_on_the_hole_and_clamped() {
        let size = 32;
        let mut m = vec![0f32; 2 * size * size];
        // Image 0: a hole at rows 10..14, columns 20..30 -> centre (12, 25), origin (4, 16) clamped to 16.
        for y in 10..14 {
            for x in 20..30 {
                m[y * size + x] = 1.0;
            }
        }
        let o = crop_origins(&m, 2, size, 16);
        assert_eq!(o, vec![(4, 16), (8, 8)], "image 1 has no hole: the centre");
        let t = Tensor::arange(0f32, (2 * 32 * 32) as f32, &Device::Cpu)
            .unwrap()
            .reshape((2, 1, 32, 32))
            .unwrap();
        let c = crop(&t, &o, 16).unwrap();
        assert_eq!(c.dims(), [2, 1, 16, 16]);
        let v = c.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(v[0], (4 * 32 + 16) as f32);
        assert_eq!(v[256], (1024 + 8 * 32 + 8) as f32);
    }

    /// The spectral norm of each normalised weight is ~1 after a few power iterations, and a
    /// discriminator step changes its weights, returns finite losses, and gives the generator's
    /// reconstruction a gradient (only inside the hole: the composite keeps the known pixels).
    #[test]
    fn a_step_trains_the_discriminator_and_reaches_the_reconstruction() {
        let dev = Device::Cpu;
        let mut d = Discriminator::new(&cfg(), 3, 7, &dev).unwrap();
        for _ in 0..30 {
            d.power_iteration().unwrap();
        }
        for l in &d.layers {
            let (rows, cols) = (l.u.len(), l.v.len());
            let w = l.weight.as_tensor().reshape((rows, cols)).unwrap();
            let u = Tensor::from_slice(&l.u, (1, rows), &dev).unwrap();
            let v = Tensor::from_slice(&l.v, (cols, 1), &dev).unwrap();
            let sigma = u.matmul(&w.matmul(&v).unwrap()).unwrap().reshape(()).unwrap();
            let w_sn = w.broadcast_div(&sigma).unwrap();
            // The largest singular value of W/sigma, by many power iterations on W^T W.
            let wtw = w_sn.t().unwrap().matmul(&w_sn).unwrap();
            let mut x = Tensor::ones((cols, 1), candle_core::DType::F32, &dev).unwrap();
            for _ in 0..200 {
                let y = wtw.matmul(&x).unwrap();
                let n = y.sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
                x = y.broadcast_div(&n).unwrap();
            }
            let s2 = x.t().unwrap().matmul(&wtw.matmul(&x).unwrap()).unwrap();
            let s = s2.flatten_all().unwrap().to_vec1::<f32>().unwrap()[0].sqrt();
            assert!((s - 1.0).abs() < 0.05, "{}: spectral norm {s}", l.name);
        }
        let image = Tensor::rand(0f32, 1.0, (2, 3, 32, 32), &dev).unwrap();
        let mut m = vec![0f32; 2 * 32 * 32];
        for y in 8..20 {
            for x in 8..20 {
                m[y * 32 + x] = 1.0;
                m[1024 + (y + 4) * 32 + x + 6] = 1.0;
            }
        }
        let mask = Tensor::from_vec(m.clone(), (2, 1, 32, 32), &dev).unwrap();
        let rec = Var::from_tensor(&Tensor::rand(0f32, 1.0, (2, 3, 32, 32), &dev).unwrap()).unwrap();
        let before = d.layers[0]
            .weight
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let o = crop_origins(&m, 2, 32, 16);
        let (loss, l) = d.step(rec.as_tensor(), &image, &mask, &o, 1.0).unwrap();
        assert_eq!(d.steps(), 1);
        let after = d.layers[0]
            .weight
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(
            before.iter().zip(&after).any(|(a, b)| a != b),
            "the discriminator was updated"
        );
        assert!(l.values().iter().all(|v| v.is_finite()), "{l:?}");
        assert!(l.d_loss > 0.0 && l.feature_matching > 0.0 && l.gradient > 0.0, "{l:?}");
        let g = loss.backward().unwrap();
        let gr = g
            .get(rec.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let (mut inside, mut outside) = (0f32, 0f32);
        for (k, v) in gr.iter().enumerate() {
            let (i, p) = (k / (3 * 1024), k % 1024);
            if m[i * 1024 + p] > 0.5 {
                inside += v.abs();
            } else {
                outside += v.abs();
            }
        }
        assert!(inside > 0.0 && outside == 0.0, "{inside} {outside}");
        // No gradient for the discriminator from the generator's loss.
        assert!(g.get(d.layers[0].weight.as_tensor()).is_none());
    }

    /// The checkpoint bytes restore the same weights, Adam state and power-iteration vectors.
    #[test]
    fn round_trips_through_its_checkpoint_bytes() {
        let dev = Device::Cpu;
        let mut a = Discriminator::new(&cfg(), 3, 1, &dev).unwrap();
        let image = Tensor::rand(0f32, 1.0, (2, 3, 32, 32), &dev).unwrap();
        let rec = Tensor::rand(0f32, 1.0, (2, 3, 32, 32), &dev).unwrap();
        let mask = Tensor::ones((2, 1, 32, 32), candle_core::DType::F32, &dev).unwrap();
        let o = vec![(0, 0), (16, 16)];
        a.step(&rec, &image, &mask, &o, 1.0).unwrap();
        let bytes = a.to_bytes().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("d.safetensors");
        std::fs::write(&p, &bytes).unwrap();
        let (t, meta) = crate::checkpoint::load_tensors(&p, &dev).unwrap();
        let mut b = Discriminator::new(&cfg(), 3, 99, &dev).unwrap();
        b.load(t, &meta, "d.safetensors").unwrap();
        assert_eq!(b.to_bytes().unwrap(), bytes);
        let (la, _) = a.step(&rec, &image, &mask, &o, 1.0).unwrap();
        let (lb, _) = b.step(&rec, &image, &mask, &o, 1.0).unwrap();
        assert_eq!(la.to_scalar::<f32>().unwrap(), lb.to_scalar::<f32>().unwrap());
        let mut other = Discriminator::new(&AdversarialConfig { d_channels: 8, ..cfg() }, 3, 1, &dev).unwrap();
        let (t, meta) = crate::checkpoint::load_tensors(&p, &dev).unwrap();
        let e = other.load(t, &meta, "d.safetensors").unwrap_err().to_string();
        assert!(e.contains("d.safetensors") && e.contains("shape"), "{e}");
    }
}
