//! Inference (forward only) throughput of a config's model in candle, with random weights: the fast
//! CPU kernels of `facerecon_model::ops` and/or candle's plain ops
//! (`layers::set_reference_ops`). Used by benches/run.sh next to ONNX Runtime and Keras.
//!
//! `cargo run --release -p facerecon-model --example infer_bench -- [--config configs/seed.yaml]
//!  [--batches 1,64] [--steps 10] [--steps1 50] [--threads N] [--ops fast|reference|both]`
//!
//! Each (ops, batch) pair: 3 warm-up runs, then `steps` timed runs of `Model::forward` (network plus
//! the composite), median reported as `RESULT {json}` on stdout.
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facerecon_model::{layers, random_weights, Model, ModelSpec};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

struct Args {
    config: String,
    batches: Vec<usize>,
    steps: usize,
    steps1: usize,
    threads: Option<usize>,
    /// Which ops to time: `false` = the fast kernels, `true` = candle's plain ops.
    modes: Vec<bool>,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args { config: "configs/seed.yaml".into(), batches: vec![1, 64], steps: 10, steps1: 50, threads: None, modes: vec![false] };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => a.config = value()?,
            "--batches" => a.batches = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--steps" => a.steps = value()?.parse()?,
            "--steps1" => a.steps1 = value()?.parse()?,
            "--threads" => a.threads = Some(value()?.parse()?),
            "--ops" => {
                a.modes = match value()?.as_str() {
                    "fast" => vec![false],
                    "reference" => vec![true],
                    "both" => vec![false, true],
                    other => return Err(format!("--ops {other}: use fast, reference or both").into()),
                }
            }
            other => return Err(format!("unknown argument {other} (see the example's doc comment)").into()),
        }
    }
    Ok(a)
}

/// The `model:` section of a config file.
fn load_spec(path: &str) -> Result<ModelSpec, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let config: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let model = config.get("model").ok_or_else(|| format!("{path} has no model: section"))?;
    Ok(ModelSpec::from_yaml(&serde_yaml::to_string(model)?).map_err(|e| format!("{path}: {e}"))?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn main() -> Result<(), Error> {
    let _ = facerecon_model::alloc::keep_freed_memory(); // as facerecon-train does: no page faults per batch
    let a = parse_args()?;
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    let spec = load_spec(&a.config)?;
    let dev = Device::Cpu;
    let weights = random_weights(&spec, 0, 0.05, &dev)?;
    // Plain tensors, not variables: no graph is recorded, as in real inference.
    let model = Model::new(&spec, VarBuilder::from_tensors(weights, DType::F32, &dev))?;
    let s = spec.image_size;
    for &reference in &a.modes {
        layers::set_reference_ops(reference);
        for &b in &a.batches {
            // Random image with a centred 28x28 hole (zeroed), as the trainer feeds it.
            let lo = (s - 28.min(s)) / 2;
            let hole = Tensor::ones((b, 1, 28.min(s), 28.min(s)), DType::F32, &dev)?;
            let mask = Tensor::zeros((b, 1, s, s), DType::F32, &dev)?.slice_assign(&[0..b, 0..1, lo..lo + 28.min(s), lo..lo + 28.min(s)], &hole)?;
            let image = Tensor::rand(0f32, 1.0, (b, spec.channels, s, s), &dev)?.broadcast_mul(&mask.affine(-1.0, 1.0)?)?;
            let steps = if b == 1 { a.steps1 } else { a.steps }.max(1);
            for _ in 0..3 {
                model.forward(&image, &mask)?;
            }
            let times: Vec<f64> = (0..steps)
                .map(|_| {
                    let t = Instant::now();
                    model.forward(&image, &mask).map(|_| t.elapsed().as_secs_f64())
                })
                .collect::<Result<_, _>>()?;
            let med = median(times);
            let result = format!(
                r#"{{"tool": "candle", "ops": "{}", "batch": {b}, "threads": {}, "steps": {steps}, "ms_median": {:.4}, "img_per_s": {:.2}}}"#,
                if reference { "reference" } else { "fast" },
                rayon::current_num_threads(),
                med * 1e3,
                b as f64 / med
            );
            println!("RESULT {result}");
        }
    }
    Ok(())
}
