//! `--bench-session N` (hidden): the bare cost of the network, for the end-to-end benchmark
//! (benches/e2e_infer.sh) to compare the whole CLI against. Times, after two warm-up runs, N runs of
//! `Runtime::run_tensors` on one ready batch tensor (the bare session: `session.run` plus copying
//! the outputs out) and N runs of `Runtime::infer` on the same images as separate `Prepared` items
//! (what the CLI calls: gathering them into a batch and splitting the result), on random images
//! with a centred box hole at the batch size.
//!
//! Each run is timed on its own and the *median* is reported (`ms_per_batch`, `img_per_s`), like
//! benches/ort_py_bench.py does: on a shared, loaded machine a few preempted runs (10x slower) drag
//! a mean far from the typical run. The mean and the 90th percentile are printed alongside.

use std::time::Instant;

use anyhow::{Context, Result};
use facerecon_runtime::{Prepared, Region, Runtime};
use rand::{rngs::StdRng, Rng, SeedableRng};

use crate::eval::holes::scale;

/// Run `runs` timed batches each way and print `RESULT {"tool": "session", ...}` and
/// `RESULT {"tool": "runtime", ...}` on stdout.
pub fn bench_session(rt: &Runtime, runs: usize) -> Result<()> {
    let size = rt.info().image_size;
    let s = size as usize;
    let n = rt.batch_size();
    let mut rng = StdRng::seed_from_u64(0);
    let mut image: Vec<f32> = (0..n * 3 * s * s).map(|_| rng.gen::<f32>()).collect();
    let side = scale(28, size) as usize;
    let lo = (s - side.min(s)) / 2;
    let one_mask: Vec<f32> = (0..s * s)
        .map(|p| {
            if (lo..lo + side).contains(&(p / s)) && (lo..lo + side).contains(&(p % s)) {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let mask: Vec<f32> = one_mask.iter().copied().cycle().take(n * s * s).collect();
    for (v, m) in image.iter_mut().zip(mask.iter().cycle()) {
        *v *= 1.0 - m;
    }
    let runs = runs.max(1);
    let time = |f: &dyn Fn() -> Result<()>| -> Result<Timing> {
        for _ in 0..2 {
            f().context("warm-up run")?;
        }
        let mut seconds = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            f().context("timed run")?;
            seconds.push(start.elapsed().as_secs_f64());
        }
        Ok(Timing::of(seconds))
    };
    let session = time(&|| rt.run_tensors(&image, &mask, n).map(drop).map_err(Into::into))?;
    let prepared: Vec<Prepared> = image
        .chunks_exact(3 * s * s)
        .zip(mask.chunks_exact(s * s))
        .map(|(i, m)| Prepared {
            region: Some(Region {
                x: 0,
                y: 0,
                width: size,
                height: size,
            }),
            image: i.to_vec(),
            mask: m.to_vec(),
        })
        .collect();
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let runtime = time(&|| rt.infer(&refs).map(drop).map_err(Into::into))?;
    for (tool, t) in [("session", session), ("runtime", runtime)] {
        println!(
            "RESULT {}",
            serde_json::json!({
                "tool": tool,
                "batch": n,
                "runs": runs,
                "ms_per_batch": t.median * 1e3,
                "img_per_s": n as f64 / t.median,
                "ms_median": t.median * 1e3,
                "ms_mean": t.mean * 1e3,
                "ms_p90": t.p90 * 1e3,
            })
        );
    }
    Ok(())
}

/// Summary of per-run wall times, in seconds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Timing {
    median: f64,
    mean: f64,
    p90: f64,
}

impl Timing {
    /// Summarise at least one timing (the median of an even count is the mean of the middle two, as
    /// in benches/ort_py_bench.py).
    fn of(mut seconds: Vec<f64>) -> Timing {
        assert!(!seconds.is_empty(), "no timed runs");
        seconds.sort_by(f64::total_cmp);
        let n = seconds.len();
        let median = if n % 2 == 1 {
            seconds[n / 2]
        } else {
            0.5 * (seconds[n / 2 - 1] + seconds[n / 2])
        };
        Timing {
            median,
            mean: seconds.iter().sum::<f64>() / n as f64,
            p90: seconds[((n * 9).div_ceil(10)).clamp(1, n) - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Timing;

    #[test]
    fn median_ignores_outliers() {
        let t = Timing::of(vec![1.0, 30.0, 2.0, 3.0, 2.0]);
        assert_eq!(t.median, 2.0);
        assert_eq!(t.mean, 38.0 / 5.0);
        assert_eq!(t.p90, 30.0);
        let even = Timing::of(vec![4.0, 1.0, 2.0, 3.0]);
        assert_eq!(even.median, 2.5);
        assert_eq!(Timing::of(vec![7.0]).p90, 7.0);
    }
}
