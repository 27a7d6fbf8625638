//! Per-layer training cost of the unet's convolutions (configs/unet.yaml) on the fast kernels: forward and
//! backward of each convolution with its fused LeakyReLU, at one batch size, median of a few repeats.
//! The concatenations, the residual add and the loss are not included (they are candle ops and the
//! trainer's kernels): the trainer's step time minus this table's total is their share.
//!
//! `cargo run --release -p facerecon-model --example unet_layers [-- BATCH [REPEATS]] [seed]`
//! (`seed`: the seed model's eight strided / transposed convolutions, configs/seed.yaml, instead).
use candle_core::{Device, Result, Tensor, Var};
use facerecon_model::layers::{Act, Backend, ConvParams};
use std::time::Instant;

/// (name, transposed, c_in, c_out, input side, stride, dilation)
const LAYERS: &[(&str, bool, usize, usize, usize, usize, usize)] = &[
    ("e1", false, 4, 32, 128, 2, 1),
    ("e2", false, 32, 64, 64, 2, 1),
    ("e3", false, 64, 128, 32, 2, 1),
    ("b1", false, 128, 128, 16, 1, 2),
    ("b2", false, 128, 128, 16, 1, 4),
    ("d3", true, 128, 64, 16, 2, 1),
    ("d3c", false, 128, 64, 32, 1, 1),
    ("d2", true, 64, 32, 32, 2, 1),
    ("d2c", false, 64, 32, 64, 1, 1),
    ("d1", true, 32, 16, 64, 2, 1),
    ("out", false, 19, 3, 128, 1, 1),
];

/// The seed's layers (configs/seed.yaml), in the same form.
const SEED_LAYERS: &[(&str, bool, usize, usize, usize, usize, usize)] = &[
    ("enc1", false, 3, 32, 128, 2, 1),
    ("enc2", false, 32, 64, 64, 2, 1),
    ("enc3", false, 64, 64, 32, 2, 1),
    ("enc4", false, 64, 64, 16, 2, 1),
    ("dec1", true, 64, 64, 8, 2, 1),
    ("dec2", true, 64, 64, 16, 2, 1),
    ("dec3", true, 64, 32, 32, 2, 1),
    ("dec4", true, 32, 3, 64, 2, 1),
];

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let batch = args.first().copied().unwrap_or(32);
    let repeats = args.get(1).copied().unwrap_or(5);
    let seed = std::env::args().any(|a| a == "seed");
    let layers = if seed { SEED_LAYERS } else { LAYERS };
    let dev = Device::Cpu;
    println!(
        "{} convolutions, batch {batch}, {} threads, median of {repeats}",
        if seed { "seed" } else { "unet" },
        rayon::current_num_threads()
    );
    println!("| layer | fwd ms | bwd ms | GMAC (fwd) | GFLOP/s (fwd+bwd) |");
    println!("|---|---:|---:|---:|---:|");
    let (mut tf, mut tb, mut tmac) = (0.0, 0.0, 0.0);
    for &(name, transpose, ci, co, side, stride, dil) in layers {
        // The first layer reads the network input, which needs no gradient.
        let x0 = Tensor::randn(0f32, 1.0, (batch, ci, side, side), &dev)?;
        let x = if name == "e1" || name == "enc1" {
            x0
        } else {
            Var::from_tensor(&x0)?.as_tensor().clone()
        };
        let wshape = if transpose { (ci, co, 3, 3) } else { (co, ci, 3, 3) };
        let w = Var::from_tensor(&(Tensor::randn(0f32, 1.0, wshape, &dev)? * 0.05)?)?;
        let b = Var::from_tensor(&Tensor::zeros(co, candle_core::DType::F32, &dev)?)?;
        let p = if transpose {
            ConvParams {
                stride,
                padding: 1,
                dilation: 1,
                output_padding: 1,
            }
        } else {
            ConvParams {
                stride,
                padding: dil,
                dilation: dil,
                output_padding: 0,
            }
        };
        let run = |x: &Tensor| {
            let y = if transpose {
                Backend::Kernels.conv_transpose2d_act(x, &w, Some(&b), p, Act::LeakyRelu(0.2))
            } else {
                Backend::Kernels.conv2d_act(x, &w, Some(&b), p, Act::LeakyRelu(0.2))
            }?;
            Ok::<_, candle_core::Error>(y)
        };
        let (mut fs, mut bs) = (vec![], vec![]);
        let mut macs = 0.0;
        for _ in 0..repeats + 1 {
            let t0 = Instant::now();
            let y = rayon::scope(|_| run(&x))?;
            let t1 = Instant::now();
            let (_, yc, yh, yw) = y.dims4()?;
            let small = if transpose { ci * side * side } else { yc * yh * yw };
            macs = (batch * small * 9 * if transpose { co } else { ci }) as f64;
            let g = Tensor::ones_like(&y)?;
            let loss = (y * g)?.sum_all()?;
            let t2 = Instant::now();
            let grads = rayon::scope(|_| loss.backward())?;
            let t3 = Instant::now();
            std::hint::black_box(grads.get(&w).is_some());
            fs.push((t1 - t0).as_secs_f64() * 1e3);
            bs.push((t3 - t2).as_secs_f64() * 1e3);
        }
        fs.remove(0);
        bs.remove(0);
        fs.sort_by(f64::total_cmp);
        bs.sort_by(f64::total_cmp);
        let (f, bk) = (fs[fs.len() / 2], bs[bs.len() / 2]);
        let gflops = 3.0 * 2.0 * macs / ((f + bk) * 1e-3) / 1e9;
        println!("| {name} | {f:.1} | {bk:.1} | {:.3} | {gflops:.0} |", macs / 1e9);
        tf += f;
        tb += bk;
        tmac += macs;
    }
    let gflops = 3.0 * 2.0 * tmac / ((tf + tb) * 1e-3) / 1e9;
    println!("| total | {tf:.1} | {tb:.1} | {:.3} | {gflops:.0} |", tmac / 1e9);
    Ok(())
}
