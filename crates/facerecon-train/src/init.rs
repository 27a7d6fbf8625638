//! Seeded initial weights. candle's `VarMap` draws new variables from an unseeded thread RNG (and candle
//! cannot seed its CPU RNG), so two runs with the same `--seed` started from different weights. [`SeededVarMap`]
//! is a `VarBuilder` backend that stores its variables in an ordinary [`VarMap`] (checkpoints and the optimiser
//! see no difference) but draws each new one from an RNG seeded by (run seed, variable name), with candle's own
//! distributions (`candle_nn::Init`). A run is then reproducible from its seed, whatever the order in which the
//! layers ask for their variables.
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{Init, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A [`VarMap`] whose new variables are drawn from seeded RNGs.
pub struct SeededVarMap {
    map: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// A `VarBuilder` that creates its variables in `map`, seeded by `seed`.
    pub fn builder(map: &VarMap, seed: u64, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(SeededVarMap { map: map.clone(), seed }), dtype, device.clone())
    }
}

/// The RNG of one variable: FNV-1a of its name, mixed with the run seed (splitmix64's finaliser).
fn rng_for(seed: u64, name: &str) -> StdRng {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// `n` values of `init`'s distribution for a variable of `shape` (as `candle_nn::Init::var` draws them).
fn draw(init: &Init, shape: &Shape, n: usize, rng: &mut StdRng) -> Vec<f32> {
    let uniform = |rng: &mut StdRng, lo: f64, up: f64| (0..n).map(|_| rng.gen_range(lo..up) as f32).collect();
    // Box-Muller: two uniforms -> one standard normal (the second one is not needed).
    let normal = |rng: &mut StdRng, mean: f64, std: f64| {
        (0..n)
            .map(|_| {
                let (u1, u2): (f64, f64) = (1.0 - rng.gen::<f64>(), rng.gen());
                (mean + std * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect()
    };
    match init {
        Init::Const(c) => vec![*c as f32; n],
        Init::Uniform { lo, up } => uniform(rng, *lo, *up),
        Init::Randn { mean, stdev } => normal(rng, *mean, *stdev),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let std = non_linearity.gain() / (fan.for_shape(shape) as f64).sqrt();
            match dist {
                NormalOrUniform::Uniform => uniform(rng, -(3f64.sqrt() * std), 3f64.sqrt() * std),
                NormalOrUniform::Normal => normal(rng, 0.0, std),
            }
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self
            .map
            .data()
            .lock()
            .expect("the VarMap lock is never held across a panic");
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let values = draw(&init, &s, s.elem_count(), &mut rng_for(self.seed, name));
        let var = Var::from_tensor(
            &Tensor::from_vec(values, s, &Device::Cpu)?
                .to_dtype(dtype)?
                .to_device(dev)?,
        )?;
        let tensor = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: a seeded VarMap creates variables with `get`, it has no unchecked lookup")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.map
            .data()
            .lock()
            .expect("the VarMap lock is never held across a panic")
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::init::{FanInOut, NonLinearity, DEFAULT_KAIMING_UNIFORM};

    fn get(seed: u64, name: &str, shape: &[usize], init: Init) -> Vec<f32> {
        let map = VarMap::new();
        let vb = SeededVarMap::builder(&map, seed, DType::F32, &Device::Cpu);
        let t = vb.get_with_hints(shape, name, init).unwrap();
        assert!(
            map.data().lock().unwrap().contains_key(name),
            "the variable lives in the VarMap"
        );
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn same_seed_and_name_same_values_otherwise_different() {
        let a = get(3, "enc1.weight", &[8, 4, 3, 3], DEFAULT_KAIMING_UNIFORM);
        assert_eq!(a, get(3, "enc1.weight", &[8, 4, 3, 3], DEFAULT_KAIMING_UNIFORM));
        assert_ne!(a, get(4, "enc1.weight", &[8, 4, 3, 3], DEFAULT_KAIMING_UNIFORM));
        assert_ne!(a, get(3, "enc2.weight", &[8, 4, 3, 3], DEFAULT_KAIMING_UNIFORM));
    }

    #[test]
    fn draws_candles_distributions() {
        // Kaiming uniform, fan-in 64*3*3 = 576, ReLU gain sqrt(2): U(-b, b) with b = sqrt(3) * sqrt(2/576).
        let v = get(1, "w", &[64, 64, 3, 3], DEFAULT_KAIMING_UNIFORM);
        let b = 3f64.sqrt() * (2.0f64 / 576.0).sqrt();
        assert!(v.iter().all(|x| (x.abs() as f64) < b), "inside the bound");
        let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            (var / (2.0 / 576.0) - 1.0).abs() < 0.03,
            "variance {var} vs {}",
            2.0 / 576.0
        );
        // Kaiming normal and Randn: mean and standard deviation.
        let normal = Init::Kaiming {
            dist: NormalOrUniform::Normal,
            fan: FanInOut::FanIn,
            non_linearity: NonLinearity::ReLU,
        };
        let v = get(2, "w", &[64, 64, 3, 3], normal);
        let std = (v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((std / (2.0f64 / 576.0).sqrt() - 1.0).abs() < 0.03, "std {std}");
        let v = get(2, "b", &[20_000], Init::Randn { mean: 0.5, stdev: 2.0 });
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!(
            (mean - 0.5).abs() < 0.05 && (sd - 2.0).abs() < 0.05,
            "mean {mean}, sd {sd}"
        );
        assert!(get(2, "c", &[5], Init::Const(0.25)).iter().all(|x| *x == 0.25));
        let v = get(2, "u", &[10_000], Init::Uniform { lo: -1.0, up: 3.0 });
        assert!(v.iter().all(|x| (-1.0..3.0).contains(x)));
    }

    #[test]
    fn an_existing_variable_is_returned_and_a_shape_mismatch_is_an_error() {
        let map = VarMap::new();
        let vb = SeededVarMap::builder(&map, 0, DType::F32, &Device::Cpu);
        let a = vb.get_with_hints((2, 3), "x", DEFAULT_KAIMING_UNIFORM).unwrap();
        let b = vb.get_with_hints((2, 3), "x", Init::Const(0.0)).unwrap();
        assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
        let e = vb
            .get_with_hints((3, 2), "x", DEFAULT_KAIMING_UNIFORM)
            .unwrap_err()
            .to_string();
        assert!(e.contains("shape mismatch on x"), "{e}");
    }
}
