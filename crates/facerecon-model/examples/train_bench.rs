//! Training throughput of the seed autoencoder (configs/seed.yaml) on the CPU: the fast kernels of
//! `facerecon_model::ops` (`layers::Backend::Kernels`) against candle's plain ops (`Backend::Reference`), side by side in one run, plus a per-layer breakdown.
//!
//! `cargo run --release -p facerecon-model --example train_bench [-- STEPS [BATCH]] [ops]`
//! (`ops`: only the fast kernels' training loop, for profiling).
use candle_core::{DType, Device, Result, Tensor, Var};
use facerecon_model::layers::{Act, Backend as Ops, ConvParams};
use std::time::Instant;

/// The seed's convolutions: 3x3, stride 2, `same` padding (output padding 1 when transposed).
const CONV: ConvParams = ConvParams {
    stride: 2,
    padding: 1,
    dilation: 1,
    output_padding: 0,
};
const CONV_T: ConvParams = ConvParams {
    output_padding: 1,
    ..CONV
};

/// Which implementation of the layers to run.
#[derive(Clone, Copy, PartialEq)]
enum Backend {
    Ops,
    Candle,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Ops => "facerecon ops",
            Backend::Candle => "candle plain",
        }
    }
    /// The layers' implementation: the fast kernels, or candle's plain ops.
    fn ops(self) -> Ops {
        match self {
            Backend::Ops => Ops::Kernels,
            Backend::Candle => Ops::Reference,
        }
    }
    fn conv(self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.ops().conv2d(x, w, Some(b), CONV)
    }
    fn convt(self, x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.ops().conv_transpose2d(x, w, Some(b), CONV_T)
    }
    fn lrelu(self, x: &Tensor) -> Result<Tensor> {
        self.ops().leaky_relu(x, 0.2)
    }
    fn sigmoid(self, x: &Tensor) -> Result<Tensor> {
        self.ops().sigmoid(x)
    }
}

/// One layer of the seed network.
#[derive(Clone, Copy)]
enum Kind {
    Conv,
    Dense,
    ConvT,
}

struct Layer {
    name: &'static str,
    kind: Kind,
    w: Var,
    b: Var,
}

fn seed_layers(dev: &Device) -> Result<Vec<Layer>> {
    let mut layers = vec![];
    let mut add = |name, kind, wshape: &[usize], units: usize| -> Result<()> {
        let fan_in: usize = wshape.iter().skip(1).product::<usize>().max(1);
        let scale = (1.0 / fan_in as f64).sqrt();
        let w = Var::from_tensor(&(Tensor::randn(0f32, 1.0, wshape, dev)? * scale)?)?;
        let b = Var::from_tensor(&Tensor::zeros(units, DType::F32, dev)?)?;
        layers.push(Layer { name, kind, w, b });
        Ok(())
    };
    add("enc1", Kind::Conv, &[32, 3, 3, 3], 32)?;
    add("enc2", Kind::Conv, &[64, 32, 3, 3], 64)?;
    add("enc3", Kind::Conv, &[64, 64, 3, 3], 64)?;
    add("enc4", Kind::Conv, &[64, 64, 3, 3], 64)?;
    add("latent", Kind::Dense, &[300, 4096], 300)?;
    add("dec_fc", Kind::Dense, &[4096, 300], 4096)?;
    add("dec1", Kind::ConvT, &[64, 64, 3, 3], 64)?;
    add("dec2", Kind::ConvT, &[64, 64, 3, 3], 64)?;
    add("dec3", Kind::ConvT, &[64, 32, 3, 3], 32)?;
    add("dec4", Kind::ConvT, &[32, 3, 3, 3], 3)?;
    Ok(layers)
}

/// Applies layer `i` (with its activation) to `x`.
fn apply(be: Backend, layers: &[Layer], i: usize, x: &Tensor) -> Result<Tensor> {
    let l = &layers[i];
    let last = i + 1 == layers.len();
    match l.kind {
        Kind::Conv if be == Backend::Ops => Ops::Kernels.conv2d_act(x, &l.w, Some(&l.b), CONV, Act::LeakyRelu(0.2)),
        Kind::Conv => be.lrelu(&be.conv(x, &l.w, &l.b)?),
        Kind::Dense => {
            let x = if x.rank() == 4 { x.flatten_from(1)? } else { x.clone() };
            let y = x.matmul(&l.w.t()?)?.broadcast_add(&l.b)?;
            if l.name == "dec_fc" {
                y.reshape((x.dim(0)?, 64, 8, 8))
            } else {
                Ok(y)
            }
        }
        Kind::ConvT if be == Backend::Ops => {
            let act = if last { Act::Sigmoid } else { Act::LeakyRelu(0.2) };
            Ops::Kernels.conv_transpose2d_act(x, &l.w, Some(&l.b), CONV_T, act)
        }
        Kind::ConvT if last => be.sigmoid(&be.convt(x, &l.w, &l.b)?),
        Kind::ConvT => be.lrelu(&be.convt(x, &l.w, &l.b)?),
    }
}

fn forward(be: Backend, layers: &[Layer], x: &Tensor) -> Result<Tensor> {
    (0..layers.len()).try_fold(x.clone(), |h, i| apply(be, layers, i, &h))
}

/// Adam (lr 1e-3), the update a training step pays for.
struct Adam {
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    fn new(layers: &[Layer]) -> Result<Self> {
        let zeros = |v: &Var| v.zeros_like();
        let all: Vec<&Var> = layers.iter().flat_map(|l| [&l.w, &l.b]).collect();
        Ok(Adam {
            m: all.iter().map(|v| zeros(v)).collect::<Result<_>>()?,
            v: all.iter().map(|v| zeros(v)).collect::<Result<_>>()?,
            t: 0,
        })
    }

    fn step(&mut self, layers: &[Layer], grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.t += 1;
        let (b1, b2, lr, eps) = (0.9f64, 0.999f64, 1e-3, 1e-7);
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for (i, var) in layers.iter().flat_map(|l| [&l.w, &l.b]).enumerate() {
            let Some(g) = grads.get(var) else { continue };
            self.m[i] = ((&self.m[i] * b1)? + (g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let upd = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + eps)?)?;
            var.set(&(var.as_tensor() - (upd * lr)?)?)?;
        }
        Ok(())
    }
}

fn train_step(be: Backend, layers: &[Layer], opt: &mut Adam, x: &Tensor, target: &Tensor) -> Result<f32> {
    let y = forward(be, layers, x)?;
    let loss = (y - target)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    opt.step(layers, &grads)?;
    loss.to_scalar::<f32>()
}

fn time<R>(f: impl FnOnce() -> Result<R>) -> Result<(f64, R)> {
    let t = Instant::now();
    let r = f()?;
    Ok((t.elapsed().as_secs_f64(), r))
}

/// CPU seconds (user + system) used by this process so far: on a shared machine, throughput per CPU
/// second is steadier than per wall second.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/PID/stat (utime, stime) are the 12th and 13th after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> Result<()> {
    let _ = facerecon_model::alloc::keep_freed_memory(); // as facerecon-train does: no page faults per step
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let steps = args.first().copied().unwrap_or(5);
    let batch = args.get(1).copied().unwrap_or(64);
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1.0, (batch, 3, 128, 128), &dev)?;
    let target = Tensor::rand(0f32, 1.0, (batch, 3, 128, 128), &dev)?;
    println!(
        "seed autoencoder, batch {batch}, {} rayon threads, load average {}",
        rayon::current_num_threads(),
        load()
    );

    let only_ops = std::env::args().any(|a| a == "ops");
    let backends: &[Backend] = if only_ops {
        &[Backend::Ops]
    } else {
        &[Backend::Ops, Backend::Candle]
    };
    let mut summary = vec![];
    for &be in backends {
        let layers = seed_layers(&dev)?;
        let mut opt = Adam::new(&layers)?;
        // Candle's plain ops take seconds per step: fewer of them.
        let n = if be == Backend::Candle {
            steps.div_ceil(3).max(1)
        } else {
            steps
        };
        train_step(be, &layers, &mut opt, &x, &target)?; // warm-up: allocator, scratch buffers
        let cpu0 = cpu_seconds();
        let (train_s, _) =
            time(|| (0..n).try_for_each(|_| train_step(be, &layers, &mut opt, &x, &target).map(|_| ())))?;
        let train_cpu = cpu_seconds() - cpu0;
        // Inference: the same forward pass (the graph is recorded but never walked).
        let cpu0 = cpu_seconds();
        let (infer_s, _) = time(|| (0..n).try_for_each(|_| forward(be, &layers, &x.detach()).map(|_| ())))?;
        let infer_cpu = cpu_seconds() - cpu0;
        let threads = rayon::current_num_threads() as f64;
        let train_ips = (n * batch) as f64 / train_s;
        let infer_ips = (n * batch) as f64 / infer_s;
        // Throughput if every thread had a core to itself: images per (CPU seconds / threads).
        let (train_cpu_ips, infer_cpu_ips) = (
            (n * batch) as f64 * threads / train_cpu,
            (n * batch) as f64 * threads / infer_cpu,
        );
        println!(
            "{:>14}: train {train_ips:7.1} img/s ({:6.1} ms/step), forward {infer_ips:7.1} img/s  [load {}]",
            be.name(),
            1e3 * train_s / n as f64,
            load()
        );
        println!("{:>14}  per CPU time: train {train_cpu_ips:7.1} img/s, forward {infer_cpu_ips:7.1} img/s (x{threads} threads)", "");
        summary.push((be, train_ips, infer_ips, layers));
    }
    if only_ops {
        return Ok(());
    }
    let (ours, theirs) = (&summary[0], &summary[1]);
    println!(
        "speed-up: train x{:.1}, forward x{:.1}",
        ours.1 / theirs.1,
        ours.2 / theirs.2
    );

    // Per layer: forward, and forward + backward of that layer alone (seeded with ones, as candle's
    // backward() does), with the activation fused in; inputs are variables except the image.
    println!(
        "\nper layer (ms, batch {batch}): {:>8} {:>10} | {:>8} {:>10}",
        "ops fwd", "ops f+b", "cnd fwd", "cnd f+b"
    );
    let ours_layers = &ours.3;
    let mut h = x.clone();
    let reps = (192 / batch).max(3); // small batches: more repetitions for a steadier figure
    let mut totals = [0f64; 4];
    for i in 0..ours_layers.len() {
        let input = if i == 0 {
            h.clone()
        } else {
            Var::from_tensor(&h)?.as_tensor().clone()
        };
        let mut row = [0f64; 4];
        for (j, be) in [Backend::Ops, Backend::Candle].into_iter().enumerate() {
            apply(be, ours_layers, i, &input)?.backward()?; // warm-up
            let (f, _) = time(|| (0..reps).try_for_each(|_| apply(be, ours_layers, i, &input).map(|_| ())))?;
            let (fb, _) =
                time(|| (0..reps).try_for_each(|_| apply(be, ours_layers, i, &input)?.backward().map(|_| ())))?;
            row[2 * j] = 1e3 * f / reps as f64;
            row[2 * j + 1] = 1e3 * fb / reps as f64;
        }
        (0..4).for_each(|k| totals[k] += row[k]);
        println!(
            "{:>8}: {:>28.2} {:>10.2} | {:>8.2} {:>10.2}",
            ours_layers[i].name, row[0], row[1], row[2], row[3]
        );
        h = apply(Backend::Ops, ours_layers, i, &h.detach())?.detach();
    }
    println!(
        "{:>8}: {:>28.2} {:>10.2} | {:>8.2} {:>10.2}",
        "sum", totals[0], totals[1], totals[2], totals[3]
    );
    println!("load average at the end: {}", load());
    Ok(())
}
