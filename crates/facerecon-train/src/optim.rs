//! Optimisers over candle `Var`s, with Keras semantics, and learning-rate schedules.
//!
//! Written here rather than taken from candle-nn because a resumable run must checkpoint the
//! optimiser state (candle-nn's `AdamW` keeps its moments private). The state is a list of named
//! tensors (`<param>.<slot>`) plus the step count, saved to `optimizer.safetensors`.

use crate::config::{LrSchedule, OptimizerConfig, OptimizerKind, ScheduleKind};
use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};
use facerecon_model::ops::tensor_f32;
use rayon::prelude::*;
use std::collections::HashMap;

/// An optimiser and its state.
pub struct Optimizer {
    cfg: OptimizerConfig,
    /// Parameters sorted by name, each with its state slots (see [`slot_names`]).
    params: Vec<Param>,
    step: u64,
    /// Use the one-pass CPU Adam ([`adam_cpu`]) where it applies (on by default).
    fused: bool,
}

struct Param {
    name: String,
    var: Var,
    slots: Vec<Tensor>,
}

/// Names of the per-parameter state tensors of each kind.
pub fn slot_names(kind: OptimizerKind) -> &'static [&'static str] {
    match kind {
        OptimizerKind::Adam => &["m", "v"],
        OptimizerKind::Sgd => &["velocity"],
        OptimizerKind::Rmsprop => &["ms", "mom"],
    }
}

impl Optimizer {
    /// An optimiser over named parameters, state zeroed.
    pub fn new(cfg: &OptimizerConfig, params: Vec<(String, Var)>) -> Result<Self> {
        let mut params = params
            .into_iter()
            .map(|(name, var)| {
                let slots = slot_names(cfg.kind)
                    .iter()
                    .map(|_| var.zeros_like())
                    .collect::<Result<Vec<_>>>()?;
                Ok(Param { name, var, slots })
            })
            .collect::<Result<Vec<_>>>()?;
        params.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Optimizer {
            cfg: cfg.clone(),
            params,
            step: 0,
            fused: true,
        })
    }

    /// Turn the one-pass CPU Adam off (tests compare it with the tensor-op formulation).
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    /// Optimiser steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Which optimiser this is (a checkpoint's optimiser state only fits the same kind).
    pub fn kind(&self) -> OptimizerKind {
        self.cfg.kind
    }

    /// Apply one update with learning rate `lr`. Parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let c = &self.cfg;
        let t = self.step as i32;
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached: the update is plain arithmetic, no graph may grow across steps. Contiguous: a
            // no-op for the fast kernels' gradients; candle's matmul (reference ops, other devices) returns
            // a transposed weight's gradient as a strided view.
            let g = &g.detach().contiguous()?;
            let mut w = p.var.as_tensor().detach();
            if c.weight_decay > 0.0 {
                // Decoupled weight decay (AdamW / Keras 3): shrink the weights, not the gradient.
                w = w.affine(1.0 - lr * c.weight_decay, 0.0)?;
            }
            let new_w = match c.kind {
                OptimizerKind::Adam if self.fused && c.weight_decay == 0.0 => {
                    let alpha = lr * (1.0 - c.beta2.powi(t)).sqrt() / (1.0 - c.beta1.powi(t));
                    let k = AdamConsts {
                        beta1: c.beta1 as f32,
                        beta2: c.beta2 as f32,
                        eps: c.eps as f32,
                        alpha: alpha as f32,
                    };
                    match adam_cpu(&w, g, &p.slots[0], &p.slots[1], k)? {
                        Some((w, m, v)) => {
                            p.slots = vec![m, v];
                            w
                        }
                        None => adam_ops(&w, g, &mut p.slots, c.beta1, c.beta2, c.eps, alpha)?,
                    }
                }
                OptimizerKind::Adam => {
                    // Keras: m += (g - m)(1-b1); v += (g²-v)(1-b2);
                    // w -= lr·sqrt(1-b2^t)/(1-b1^t) · m / (sqrt(v) + eps)
                    let alpha = lr * (1.0 - c.beta2.powi(t)).sqrt() / (1.0 - c.beta1.powi(t));
                    adam_ops(&w, g, &mut p.slots, c.beta1, c.beta2, c.eps, alpha)?
                }
                OptimizerKind::Sgd => {
                    // Keras: velocity = momentum·velocity - lr·g; w += velocity
                    let vel = ((&p.slots[0] * c.momentum)? - (g * lr)?)?;
                    let w = (w + &vel)?;
                    p.slots = vec![vel];
                    w
                }
                OptimizerKind::Rmsprop => {
                    // Keras: ms = rho·ms + (1-rho)·g²; step = lr·g / (sqrt(ms) + eps);
                    // with momentum: mom = momentum·mom + step, w -= mom.
                    let ms = ((&p.slots[0] * c.rho)? + (g.sqr()? * (1.0 - c.rho))?)?;
                    let step = ((g * lr)? / (ms.sqrt()? + c.eps)?)?;
                    let mom = ((&p.slots[1] * c.momentum)? + step)?;
                    let w = (w - &mom)?;
                    p.slots = vec![ms, mom];
                    w
                }
            };
            p.var.set(&new_w)?;
        }
        Ok(())
    }
}

/// Adam's constants for one step; `alpha` includes the bias corrections.
#[derive(Clone, Copy)]
struct AdamConsts {
    beta1: f32,
    beta2: f32,
    eps: f32,
    alpha: f32,
}

/// The Adam update with candle's tensor ops (any device): returns the new weights, replaces the slots.
fn adam_ops(w: &Tensor, g: &Tensor, slots: &mut Vec<Tensor>, b1: f64, b2: f64, eps: f64, alpha: f64) -> Result<Tensor> {
    let m = ((&slots[0] * b1)? + (g * (1.0 - b1))?)?;
    let v = ((&slots[1] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
    let update = (&m / (v.sqrt()? + eps)?)?;
    *slots = vec![m, v];
    w - (update * alpha)?
}

/// The Adam update as one parallel pass over (w, g, m, v) on the CPU, instead of a dozen tensor ops
/// each reading and writing whole tensors (for the seed's 2.5M parameters: ~5 % of a batch-64 step).
/// `None` when the tensors are not contiguous f32 CPU tensors.
fn adam_cpu(w: &Tensor, g: &Tensor, m: &Tensor, v: &Tensor, k: AdamConsts) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    if ![w, g, m, v]
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous())
    {
        return Ok(None);
    }
    let ((wg, wl), (gg, gl), (mg, ml), (vg, vl)) = (
        w.storage_and_layout(),
        g.storage_and_layout(),
        m.storage_and_layout(),
        v.storage_and_layout(),
    );
    let (ws, gs, ms, vs) = (
        tensor_f32(&wg, wl)?,
        tensor_f32(&gg, gl)?,
        tensor_f32(&mg, ml)?,
        tensor_f32(&vg, vl)?,
    );
    let n = ws.len();
    if gs.len() != n || ms.len() != n || vs.len() != n {
        candle_core::bail!(
            "adam: weight, gradient and moments differ in size ({n}, {}, {}, {})",
            gs.len(),
            ms.len(),
            vs.len()
        );
    }
    // The outputs are written once each, in parallel chunks (no zeroing pass over 3 x 4n bytes).
    let (mut nw, mut nm, mut nv) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    const CHUNK: usize = 1 << 14;
    nw.spare_capacity_mut()[..n]
        .par_chunks_mut(CHUNK)
        .zip(nm.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
        .zip(nv.spare_capacity_mut()[..n].par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, ((ow, om), ov))| {
            let r = c * CHUNK..(c * CHUNK + ow.len());
            let it = ws[r.clone()].iter().zip(&gs[r.clone()]).zip(&ms[r.clone()]).zip(&vs[r]);
            for ((((w, g), m), v), ((ow, om), ov)) in it.zip(ow.iter_mut().zip(om.iter_mut()).zip(ov.iter_mut())) {
                // Same arithmetic and order as `adam_ops` (Keras' formulation).
                let m = m * k.beta1 + g * (1.0 - k.beta1);
                let v = v * k.beta2 + (g * g) * (1.0 - k.beta2);
                om.write(m);
                ov.write(v);
                ow.write(w - (m / (v.sqrt() + k.eps)) * k.alpha);
            }
        });
    // SAFETY: the chunks cover `0..n` of each vector and the loop writes every element of each chunk
    // (the zipped iterators have the chunk's length: the inputs are `n` long, checked above).
    unsafe {
        nw.set_len(n);
        nm.set_len(n);
        nv.set_len(n);
    }
    let (shape, dev) = (w.shape(), w.device());
    Ok(Some((
        Tensor::from_vec(nw, shape, dev)?,
        Tensor::from_vec(nm, shape, dev)?,
        Tensor::from_vec(nv, shape, dev)?,
    )))
}

impl Optimizer {
    /// The state as named tensors (`<param>.<slot>`), in a stable order.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let names = slot_names(self.cfg.kind);
        self.params
            .iter()
            .flat_map(|p| {
                names
                    .iter()
                    .zip(&p.slots)
                    .map(move |(s, t)| (format!("{}.{s}", p.name), t.clone()))
            })
            .collect()
    }

    /// Restore the state saved by [`Optimizer::state`] and the step count. Every slot must be
    /// present with the parameter's shape; the error names what is missing or wrong.
    pub fn load_state(&mut self, mut state: HashMap<String, Tensor>, step: u64) -> std::result::Result<(), String> {
        let names = slot_names(self.cfg.kind);
        for p in &mut self.params {
            let mut slots = Vec::new();
            for s in names {
                let key = format!("{}.{s}", p.name);
                let t = state.remove(&key).ok_or_else(|| {
                    format!(
                        "no tensor '{key}' (was the state saved by a different optimiser than {:?}?)",
                        self.cfg.kind
                    )
                })?;
                if t.dims() != p.var.dims() {
                    return Err(format!(
                        "'{key}' has shape {:?}, the parameter {:?}",
                        t.dims(),
                        p.var.dims()
                    ));
                }
                let t = t
                    .to_device(p.var.device())
                    .and_then(|t| t.to_dtype(p.var.dtype()))
                    .map_err(|e| e.to_string())?;
                slots.push(t);
            }
            p.slots = slots;
        }
        self.step = step;
        Ok(())
    }
}

/// Learning rate at global step `step` (0-based) of a run of `total_steps`, for base rate `lr`.
pub fn lr_at(lr: f64, s: &LrSchedule, step: u64, steps_per_epoch: u64, total_steps: u64) -> f64 {
    let warmup = s.warmup_steps as u64;
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    match s.kind {
        ScheduleKind::Constant => lr,
        ScheduleKind::Cosine => {
            let span = total_steps.saturating_sub(warmup).max(1) as f64;
            let progress = ((step - warmup) as f64 / span).min(1.0);
            s.min_lr + 0.5 * (lr - s.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
        }
        ScheduleKind::Step => {
            let epoch = step / steps_per_epoch.max(1);
            (lr * s.gamma.powi((epoch / s.step_epochs as u64) as i32)).max(s.min_lr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn cfg(kind: OptimizerKind, lr: f64) -> OptimizerConfig {
        OptimizerConfig {
            kind,
            lr,
            ..Default::default()
        }
    }

    /// f(w) = sum((w - target)^2), minimised at target.
    fn quadratic_loss(w: &Var) -> Tensor {
        let target = Tensor::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
        (w.as_tensor() - target).unwrap().sqr().unwrap().sum_all().unwrap()
    }

    #[test]
    fn every_optimiser_decreases_a_quadratic() {
        for (kind, momentum) in [
            (OptimizerKind::Adam, 0.0),
            (OptimizerKind::Sgd, 0.0),
            (OptimizerKind::Sgd, 0.9),
            (OptimizerKind::Rmsprop, 0.0),
            (OptimizerKind::Rmsprop, 0.5),
        ] {
            let w = Var::new(&[3.0f32, 3.0, 3.0], &Device::Cpu).unwrap();
            let c = OptimizerConfig {
                momentum,
                ..cfg(kind, 0.05)
            };
            let mut opt = Optimizer::new(&c, vec![("w".into(), w.clone())]).unwrap();
            let first = quadratic_loss(&w).to_scalar::<f32>().unwrap();
            for _ in 0..100 {
                let g = quadratic_loss(&w).backward().unwrap();
                opt.step(&g, c.lr).unwrap();
            }
            let last = quadratic_loss(&w).to_scalar::<f32>().unwrap();
            assert!(last < first * 0.2, "{kind:?} momentum {momentum}: {first} -> {last}");
            assert_eq!(opt.steps(), 100);
        }
    }

    #[test]
    fn adam_matches_a_hand_computed_step() {
        let w = Var::new(&[2.0f32, -1.0], &Device::Cpu).unwrap();
        let c = cfg(OptimizerKind::Adam, 0.1);
        let mut opt = Optimizer::new(&c, vec![("w".into(), w.clone())]).unwrap();
        // loss = sum(w^2 * [1, 3]) -> g = [2w0, 6w1] = [4, -6]
        let scale = Tensor::new(&[1.0f32, 3.0], &Device::Cpu).unwrap();
        let mut expect = [2.0f64, -1.0];
        let (mut m, mut v) = ([0.0f64; 2], [0.0f64; 2]);
        for t in 1..=2 {
            let loss = (w.as_tensor().sqr().unwrap() * &scale).unwrap().sum_all().unwrap();
            opt.step(&loss.backward().unwrap(), 0.1).unwrap();
            for i in 0..2 {
                let g = 2.0 * expect[i] * [1.0, 3.0][i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let alpha = 0.1 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                expect[i] -= alpha * m[i] / (v[i].sqrt() + 1e-7);
            }
            let got = w.as_tensor().to_vec1::<f32>().unwrap();
            for i in 0..2 {
                assert!(
                    (got[i] as f64 - expect[i]).abs() < 1e-5,
                    "step {t}: {got:?} vs {expect:?}"
                );
            }
            if t == 1 {
                // Keras' Adam moves every weight by ~lr on its first step, whatever the gradient's size.
                assert!((got[0] - 1.9).abs() < 1e-4 && (got[1] + 0.9).abs() < 1e-4, "{got:?}");
            }
        }
    }

    /// The one-pass CPU Adam and the tensor-op Adam agree over several steps on a real-sized tensor.
    #[test]
    fn fused_adam_matches_the_tensor_ops() {
        let dev = Device::Cpu;
        let init = Tensor::randn(0f32, 1.0, (300, 97), &dev).unwrap();
        let target = Tensor::randn(0f32, 1.0, (300, 97), &dev).unwrap();
        let run = |fused: bool| {
            let w = Var::from_tensor(&init).unwrap();
            let mut opt = Optimizer::new(&cfg(OptimizerKind::Adam, 0.01), vec![("w".into(), w.clone())]).unwrap();
            opt.set_fused(fused);
            for _ in 0..5 {
                let loss = (w.as_tensor() - &target).unwrap().sqr().unwrap().sum_all().unwrap();
                opt.step(&loss.backward().unwrap(), 0.01).unwrap();
            }
            let st: Vec<Vec<f32>> = opt
                .state()
                .iter()
                .map(|(_, t)| t.flatten_all().unwrap().to_vec1().unwrap())
                .collect();
            (w.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap(), st)
        };
        let (fast, fast_state) = run(true);
        let (slow, slow_state) = run(false);
        let moved = fast
            .iter()
            .zip(init.flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .filter(|(a, b)| (*a - b).abs() > 0.01)
            .count();
        assert!(moved > fast.len() / 2, "the weights moved: {moved}");
        for (a, b) in fast
            .iter()
            .zip(&slow)
            .chain(fast_state.iter().flatten().zip(slow_state.iter().flatten()))
        {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b} (rounding only)");
        }
    }

    #[test]
    fn state_round_trips_and_is_checked() {
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let c = cfg(OptimizerKind::Rmsprop, 0.01);
        let mut opt = Optimizer::new(&c, vec![("w".into(), w.clone())]).unwrap();
        opt.step(&quadratic_loss_2(&w).backward().unwrap(), 0.01).unwrap();
        let state: HashMap<_, _> = opt.state().into_iter().collect();
        assert_eq!(state.len(), 2);
        let mut other =
            Optimizer::new(&c, vec![("w".into(), Var::new(&[0.0f32, 0.0], &Device::Cpu).unwrap())]).unwrap();
        other.load_state(state.clone(), opt.steps()).unwrap();
        for ((n1, a), (n2, b)) in opt.state().iter().zip(other.state().iter()) {
            assert_eq!(n1, n2);
            assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
        }
        let mut adam = Optimizer::new(&cfg(OptimizerKind::Adam, 0.1), vec![("w".into(), w)]).unwrap();
        let e = adam.load_state(state, 1).unwrap_err();
        assert!(e.contains("w.m"), "{e}");
    }

    fn quadratic_loss_2(w: &Var) -> Tensor {
        w.as_tensor().sqr().unwrap().sum_all().unwrap()
    }

    #[test]
    fn schedules() {
        let mut s = LrSchedule::default();
        assert_eq!(lr_at(0.1, &s, 500, 10, 1000), 0.1);
        s.warmup_steps = 10;
        assert!((lr_at(0.1, &s, 0, 10, 1000) - 0.01).abs() < 1e-12);
        assert!((lr_at(0.1, &s, 9, 10, 1000) - 0.1).abs() < 1e-12);
        s.kind = ScheduleKind::Cosine;
        s.min_lr = 0.001;
        assert!((lr_at(0.1, &s, 10, 10, 1010) - 0.1).abs() < 1e-12);
        assert!((lr_at(0.1, &s, 510, 10, 1010) - 0.0505).abs() < 1e-9);
        assert!((lr_at(0.1, &s, 1010, 10, 1010) - 0.001).abs() < 1e-12);
        let s = LrSchedule {
            kind: ScheduleKind::Step,
            step_epochs: 2,
            gamma: 0.5,
            ..Default::default()
        };
        assert_eq!(lr_at(0.1, &s, 19, 10, 100), 0.1);
        assert_eq!(lr_at(0.1, &s, 20, 10, 100), 0.05);
        assert_eq!(lr_at(0.1, &s, 45, 10, 100), 0.025);
    }
}
