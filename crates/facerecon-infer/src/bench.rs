//! `--bench-session N` (hidden): the bare cost of the network, for the end-to-end benchmark
//! (benches/e2e_infer.sh) to compare the whole CLI against. Times, after two warm-up runs, N runs of
//! `Runtime::run_tensors` on one ready batch tensor (the bare session: `session.run` plus copying
//! the outputs out) and N runs of `Runtime::infer` on the same images as separate `Prepared` items
//! (what the CLI calls: gathering them into a batch and splitting the result), on random images
//! with a centred box hole at the batch size.

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
        .map(|p| if (lo..lo + side).contains(&(p / s)) && (lo..lo + side).contains(&(p % s)) { 1.0 } else { 0.0 })
        .collect();
    let mask: Vec<f32> = one_mask.iter().copied().cycle().take(n * s * s).collect();
    for (v, m) in image.iter_mut().zip(mask.iter().cycle()) {
        *v *= 1.0 - m;
    }
    let runs = runs.max(1);
    let time = |f: &dyn Fn() -> Result<()>| -> Result<f64> {
        for _ in 0..2 {
            f().context("warm-up run")?;
        }
        let start = Instant::now();
        for _ in 0..runs {
            f().context("timed run")?;
        }
        Ok(start.elapsed().as_secs_f64() / runs as f64)
    };
    let session = time(&|| rt.run_tensors(&image, &mask, n).map(drop).map_err(Into::into))?;
    let prepared: Vec<Prepared> = image
        .chunks_exact(3 * s * s)
        .zip(mask.chunks_exact(s * s))
        .map(|(i, m)| Prepared {
            region: Some(Region { x: 0, y: 0, width: size, height: size }),
            image: i.to_vec(),
            mask: m.to_vec(),
        })
        .collect();
    let refs: Vec<&Prepared> = prepared.iter().collect();
    let runtime = time(&|| rt.infer(&refs).map(drop).map_err(Into::into))?;
    for (tool, per_batch) in [("session", session), ("runtime", runtime)] {
        println!(
            "RESULT {}",
            serde_json::json!({
                "tool": tool,
                "batch": n,
                "runs": runs,
                "ms_per_batch": per_batch * 1e3,
                "img_per_s": n as f64 / per_batch,
            })
        );
    }
    Ok(())
}
