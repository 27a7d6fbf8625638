//! Inference (forward only) throughput of a config's model in candle, with random weights: the fast
//! CPU kernels of `facerecon_model::ops` and/or candle's plain ops
//! (`layers::set_reference_ops`). Used by benches/run.sh next to ONNX Runtime and Keras.
//!
//! `cargo run --release -p facerecon-model --example infer_bench -- [--config configs/seed.yaml]
//!  [--batches 1,64] [--steps 10] [--steps1 50] [--threads N] [--ops fast|reference|both]
//!  [--device cpu|cuda:N] [--check]`
//!
//! Each (ops, batch) pair: 3 warm-up runs, then `steps` timed runs of `Model::forward` (network plus
//! the composite; on a GPU each run ends with a device synchronize), median reported as `RESULT {json}`
//! on stdout. `--check` (with a CUDA device) also runs every batch on the CPU with the same weights and
//! input and reports the largest |difference| of the reconstructions in the RESULT line (`max_abs_diff`).
//! On a GPU, candle's own CUDA ops run (the fast kernels are CPU-only), so `--ops` only matters on the CPU.
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facerecon_model::layers::{self, Backend};
use facerecon_model::{random_weights, Model, ModelSpec};
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
    device: String,
    check: bool,
}

fn parse_args() -> Result<Args, Error> {
    let mut a = Args {
        config: "configs/seed.yaml".into(),
        batches: vec![1, 64],
        steps: 10,
        steps1: 50,
        threads: None,
        modes: vec![false],
        device: "cpu".into(),
        check: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => a.config = value()?,
            "--batches" => a.batches = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--steps" => a.steps = value()?.parse()?,
            "--steps1" => a.steps1 = value()?.parse()?,
            "--threads" => a.threads = Some(value()?.parse()?),
            "--device" => a.device = value()?,
            "--check" => a.check = true,
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
    let model = config
        .get("model")
        .ok_or_else(|| format!("{path} has no model: section"))?;
    Ok(ModelSpec::from_yaml(&serde_yaml::to_string(model)?).map_err(|e| format!("{path}: {e}"))?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn main() -> Result<(), Error> {
    let _ = facerecon_model::alloc::keep_freed_memory(); // as facerecon-train does: no page faults per batch
    let a = parse_args()?;
    if let Some(n) = a.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    let spec = load_spec(&a.config)?;
    let dev = match a.device.as_str() {
        "cpu" => Device::Cpu,
        d => match d.strip_prefix("cuda:").and_then(|i| i.parse().ok()) {
            Some(i) => Device::new_cuda(i).map_err(|e| format!("--device {d}: {e}"))?,
            None => return Err(format!("--device {d}: use cpu or cuda:N").into()),
        },
    };
    // Weights are drawn on the CPU and copied, so --check compares the same network on both devices.
    let cpu_weights = random_weights(&spec, 0, 0.05, &Device::Cpu)?;
    let weights = cpu_weights
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&dev)?)))
        .collect::<candle_core::Result<_>>()?;
    // Plain tensors, not variables: no graph is recorded, as in real inference.
    let mut model = Model::new(&spec, VarBuilder::from_tensors(weights, DType::F32, &dev))?;
    let mut cpu_model = if a.check && !dev.is_cpu() {
        Some(Model::new(
            &spec,
            VarBuilder::from_tensors(cpu_weights, DType::F32, &Device::Cpu),
        )?)
    } else {
        None
    };
    let s = spec.image_size;
    for &reference in &a.modes {
        // A model keeps the backend it was built with: switch both models explicitly.
        layers::set_reference_ops(reference);
        model.set_backend(Backend::select(&dev, DType::F32));
        if let Some(cpu) = &mut cpu_model {
            cpu.set_backend(Backend::select(&Device::Cpu, DType::F32));
        }
        for &b in &a.batches {
            // Random image with a centred 28x28 hole (zeroed), as the trainer feeds it.
            let lo = (s - 28.min(s)) / 2;
            let hole = Tensor::ones((b, 1, 28.min(s), 28.min(s)), DType::F32, &dev)?;
            let mask = Tensor::zeros((b, 1, s, s), DType::F32, &dev)?
                .slice_assign(&[0..b, 0..1, lo..lo + 28.min(s), lo..lo + 28.min(s)], &hole)?;
            let image =
                Tensor::rand(0f32, 1.0, (b, spec.channels, s, s), &dev)?.broadcast_mul(&mask.affine(-1.0, 1.0)?)?;
            let steps = if b == 1 { a.steps1 } else { a.steps }.max(1);
            for _ in 0..3 {
                model.forward(&image, &mask)?;
            }
            dev.synchronize()?;
            let times: Vec<f64> = (0..steps)
                .map(|_| {
                    let t = Instant::now();
                    model.forward(&image, &mask)?;
                    dev.synchronize()?; // a GPU queues the work: time until it is done
                    Ok(t.elapsed().as_secs_f64())
                })
                .collect::<candle_core::Result<_>>()?;
            let med = median(times);
            let diff = match &cpu_model {
                Some(cpu) => {
                    let on_gpu = model.forward(&image, &mask)?.0.to_device(&Device::Cpu)?;
                    let on_cpu = cpu
                        .forward(&image.to_device(&Device::Cpu)?, &mask.to_device(&Device::Cpu)?)?
                        .0;
                    format!(
                        r#", "max_abs_diff": {:e}"#,
                        (on_gpu - on_cpu)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?
                    )
                }
                None => String::new(),
            };
            let result = format!(
                r#"{{"tool": "candle", "device": "{}", "ops": "{}", "batch": {b}, "threads": {}, "steps": {steps}, "ms_median": {:.4}, "img_per_s": {:.2}{diff}}}"#,
                a.device,
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
