//! `Summary::steady_images_per_sec`: the throughput benches/run.sh reports leaves out the warm-up steps.
mod common;

use facerecon_train::train::WARMUP_STEPS;
use facerecon_train::{run, TrainOptions};

#[test]
fn steady_state_counts_only_the_steps_after_the_warm_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("faces"), tmp.path().join("run"));
    common::write_images(&data, 40, 32, 32);
    let opts = TrainOptions {
        config: Some(common::tiny_config()),
        data: Some(data),
        out,
        device: "cpu".into(),
        epochs: Some(1),
        batch_size: Some(4),
        max_steps: Some(WARMUP_STEPS + 2),
        ..Default::default()
    };
    let summary = run(&opts).unwrap();
    assert_eq!(summary.steps, WARMUP_STEPS + 2);
    assert_eq!(summary.steady_steps, 2);
    let ips = summary.steady_images_per_sec.expect("two steps after the warm-up");
    assert!(ips.is_finite() && ips > 0.0, "{ips}");
    assert!(summary.to_string().contains("steady state:"), "{summary}");
    let wait = summary
        .steady_data_wait
        .expect("a data-wait fraction with the steady state");
    assert!((0.0..=1.0).contains(&wait), "{wait}");
    assert!(summary.to_string().contains("waiting for data"), "{summary}");
    // Every step's loss, in order (what benches/gpu.sh compares between devices).
    assert_eq!(summary.step_losses.len() as u64, WARMUP_STEPS + 2);
    assert!(
        summary.step_losses.iter().all(|l| l.is_finite() && *l > 0.0),
        "{:?}",
        summary.step_losses
    );
    let first = summary.step_losses.clone();

    // A run no longer than the warm-up has nothing to report.
    let short = TrainOptions {
        max_steps: Some(WARMUP_STEPS),
        force: true,
        ..opts
    };
    let summary = run(&short).unwrap();
    assert_eq!(
        (
            summary.steady_steps,
            summary.steady_images_per_sec,
            summary.steady_data_wait
        ),
        (0, None, None)
    );
    assert!(!summary.to_string().contains("steady state:"));
    // A fresh run with the same seed (initial weights, data order, masks): the same losses, step by step.
    assert_eq!(summary.step_losses[..], first[..WARMUP_STEPS as usize]);
    // Another seed starts elsewhere.
    let other = run(&TrainOptions {
        seed: Some(99),
        force: true,
        ..short
    })
    .unwrap();
    assert_ne!(other.step_losses[0], first[0]);
}
