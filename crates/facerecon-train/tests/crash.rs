//! Crash consistency: a training run killed with SIGKILL at random points (inside checkpoint writes
//! included) and resumed each time ends with the same weights, optimiser state and metrics.jsonl as
//! an uninterrupted run with the same seed.
//!
//! Two kinds of kill alternate: a SIGKILL from this process after a random delay (anywhere: start-up,
//! a step, validation, a checkpoint), and the trainer's test hook `FACERECON_CRASH_POINT=N`, which makes
//! it SIGKILL itself at its N-th crash point (between the files of a checkpoint, before and after the
//! switch to the new checkpoint, after a step). `FACERECON_CRASH_KILLS` sets the number of kills (default
//! 6 here; `make crash-test` runs 50).
//!
//! Compared: model.safetensors and optimizer.safetensors byte for byte; metrics.jsonl line by line on
//! every field that is a function of the seed and the data ([`DETERMINISTIC`]); state.json's position.
//! The timing fields (`images_per_sec`, `wall_s`, `data_wait`) measure the machine, not the run, and
//! differ between any two runs, so they are only checked to be present and finite.
mod common;

use facerecon_train::checkpoint::{METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use facerecon_train::MetricsRecord;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// tiny.yaml with `epochs` epochs and a checkpoint after every step (`checkpoint_minutes` ~0), so that kills
/// often land in or around a checkpoint write.
fn config(dir: &Path, epochs: usize) -> PathBuf {
    let yaml = std::fs::read_to_string(common::tiny_config()).unwrap();
    assert!(yaml.contains("epochs: 2") && yaml.contains("max_val_images: 16"));
    let yaml = yaml
        .replace("epochs: 2", &format!("epochs: {epochs}"))
        .replace("max_val_images: 16", "max_val_images: 16\n  checkpoint_minutes: 1.0e-9");
    let path = dir.join("crash.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn trainer(config: &Path, data: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facerecon-train"));
    c.args([
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["--seed", "7", "--batch-size", "4", "--threads", "2", "--resume"])
    .env_remove("FACERECON_CRASH_POINT")
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

fn metrics(out: &Path) -> Vec<MetricsRecord> {
    let text = std::fs::read_to_string(out.join(METRICS_FILE)).unwrap_or_default();
    MetricsRecord::parse_all(&text).unwrap_or_else(|e| panic!("bad metrics.jsonl: {e}"))
}

fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn sigkilled_and_resumed_run_equals_an_uninterrupted_one() {
    let kills: usize = std::env::var("FACERECON_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    // `signal`: only SIGKILLs from outside; `hook`: only the trainer's crash points; default both.
    let mode = std::env::var("FACERECON_CRASH_MODE").unwrap_or_default();
    let seed: u64 = std::env::var("FACERECON_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let tmp = tempfile::tempdir().unwrap();
    let (data, reference, crashed) = (
        tmp.path().join("faces"),
        tmp.path().join("reference"),
        tmp.path().join("crashed"),
    );
    common::write_images(&data, 48, 32, 32);
    // Longer runs for more kills, so that they spread over the whole run.
    let epochs: usize = std::env::var("FACERECON_CRASH_EPOCHS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or((kills / 4).max(3));
    let config = config(tmp.path(), epochs);
    // Each resume should get a share of the run: kill within the first `reach` of an uninterrupted run's
    // time, or at one of the first crash points (about 9 per step: one after the step, eight in its
    // checkpoint; 10 steps per epoch).
    let reach = (1.0 / kills.max(1) as f64).min(0.5);
    let max_point = ((reach * 90.0 * epochs as f64) as u32).max(4);

    let t0 = Instant::now();
    let o = trainer(&config, &data, &reference).output().unwrap();
    assert!(
        o.status.success(),
        "reference run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let duration = t0.elapsed();

    let mut rng = StdRng::seed_from_u64(seed);
    let (mut killed, mut finished) = (0, false);
    let mut log = Vec::new();
    while killed < kills && !finished {
        let mut cmd = trainer(&config, &data, &crashed);
        let hook = match mode.as_str() {
            "signal" => false,
            "hook" => true,
            _ => killed % 2 == 0,
        };
        if hook {
            cmd.env("FACERECON_CRASH_POINT", rng.gen_range(1..=max_point).to_string());
        }
        let mut child = cmd.spawn().unwrap();
        if !hook {
            let deadline = Instant::now() + duration.mul_f64(rng.gen_range(0.02..0.02 + reach));
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill(); // SIGKILL
        }
        let o = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        match o.status.signal() {
            Some(9) => killed += 1,
            Some(s) => panic!("the trainer died of signal {s}: {stderr}"),
            None if o.status.success() => finished = true,
            None => panic!(
                "a resume after {killed} kills failed ({}):\n{stderr}\nearlier runs:\n{}",
                o.status,
                log.join("\n---\n")
            ),
        }
        eprintln!(
            "run {}: {}",
            log.len() + 1,
            if finished {
                "finished".to_string()
            } else {
                format!("killed ({})", if hook { "crash point" } else { "signal" })
            }
        );
        log.push(stderr);
    }
    if !finished {
        let o = trainer(&config, &data, &crashed).output().unwrap();
        assert!(
            o.status.success(),
            "the final resume failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    eprintln!("{killed} kills, reference run {:.2} s", duration.as_secs_f64());
    assert!(killed >= kills.min(2), "only {killed} kills landed");

    assert!(
        read(reference.join(MODEL_FILE)) == read(crashed.join(MODEL_FILE)),
        "the weights differ from the uninterrupted run's"
    );
    // The optimiser file's metadata is a map whose key order safetensors does not fix: compare the
    // tensors bit for bit and the metadata as a map.
    let optimizer = |dir: &Path| {
        let bytes = read(dir.join(OPTIMIZER_FILE));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
            .collect();
        tensors.sort();
        (tensors, meta.metadata().clone())
    };
    let (oa, ob) = (optimizer(&reference), optimizer(&crashed));
    assert!(!oa.0.is_empty());
    assert!(
        oa == ob,
        "the optimiser state differs from the uninterrupted run's: {:?} vs {:?}",
        oa.1,
        ob.1
    );
    let (a, b) = (metrics(&reference), metrics(&crashed));
    assert_eq!(a.len(), epochs, "{a:?}");
    assert_eq!(
        b.len(),
        a.len(),
        "metrics.jsonl has {} records after the kills, {} without: {b:#?}",
        b.len(),
        a.len()
    );
    for (ra, rb) in a.iter().zip(&b) {
        // Every field but the timings, which measure the machine.
        assert_eq!(
            ra.without_timings(),
            rb.without_timings(),
            "metrics of epoch {}",
            ra.epoch
        );
        let timings = [rb.images_per_sec, rb.wall_s, rb.data_wait.unwrap_or(f64::NAN)];
        assert!(timings.iter().all(|t| t.is_finite()), "timings of {rb:?}");
    }
    let state = |dir: &Path| -> Value { serde_json::from_slice(&read(dir.join(STATE_FILE))).unwrap() };
    let (sa, sb) = (state(&reference), state(&crashed));
    for k in ["epoch", "step", "batch_in_epoch", "seed"] {
        assert_eq!(sa[k], sb[k], "state.json {k}");
    }
}
