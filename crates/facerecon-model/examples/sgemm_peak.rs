//! The machine's f32 GEMM throughput with the `gemm` crate the kernels use: square products on one thread
//! and on all of rayon's threads (`RAYON_NUM_THREADS`), best of several repeats. The reference for the
//! kernels' achieved GFLOP/s (docs/performance.md).
//!
//! `cargo run --release -p facerecon-model --example sgemm_peak [-- SIZE [REPEATS]]`
use gemm::Parallelism;
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(1024);
    let repeats = args.get(1).copied().unwrap_or(10);
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0f32; n * n];
    let threads = rayon::current_num_threads();
    for (name, par) in [
        ("1 thread", Parallelism::None),
        ("all threads", Parallelism::Rayon(threads)),
    ] {
        let mut best = f64::MAX;
        for _ in 0..repeats {
            let t = Instant::now();
            // SAFETY: a, b and c are n x n row-major matrices (row stride n, column stride 1), c distinct.
            unsafe {
                gemm::gemm(
                    n,
                    n,
                    n,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    n as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    par,
                )
            };
            best = best.min(t.elapsed().as_secs_f64());
        }
        let gflops = 2.0 * (n * n * n) as f64 / best / 1e9;
        println!("sgemm {n}x{n}x{n}, {name} ({threads} in the pool): {gflops:.0} GFLOP/s (best of {repeats})");
    }
    std::hint::black_box(&c);
}
