//! The `facerecon-export` binary on a checkpoint directory built here (tiny config, random weights).

mod common;

use facerecon_contract::checkpoint::{CONFIG_FILE, METRICS_FILE, MODEL_FILE};
use facerecon_contract::MetricsRecord;
use facerecon_export::metadata::keys;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_facerecon-export");

/// One epoch's metrics record.
fn record(epoch: usize, psnr_hole: f64) -> MetricsRecord {
    MetricsRecord {
        epoch,
        step: 10 * epoch as u64,
        train_loss: 0.1,
        val_loss: Some(0.09),
        psnr_full: Some(psnr_hole + 13.2),
        psnr_hole: Some(psnr_hole),
        ssim: Some(0.8),
        l1_hole: Some(5.0),
        psnr_raw: Some(20.0),
        val_images: 16,
        lr: 0.003,
        images_per_sec: 100.0,
        wall_s: 1.5,
        data_wait: Some(0.01),
        extra: Default::default(),
    }
}

/// A checkpoint directory like the trainer's: config.yaml (tiny), model.safetensors, metrics.jsonl.
fn checkpoint(dir: &Path) -> PathBuf {
    let ck = common::checkpoint(dir);
    let lines = format!("{}\n{}\n", record(1, 10.0).to_line(), record(2, 12.5).to_line());
    std::fs::write(ck.join(METRICS_FILE), lines).unwrap();
    ck
}

fn run(args: &[&str], ort: bool) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    if !ort {
        cmd.env_remove("ORT_DYLIB_PATH");
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn exports_with_metadata_without_ort_when_no_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("exported/tiny.onnx");
    let (ok, text) = run(
        &[
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-verify",
        ],
        false,
    );
    assert!(ok, "{text}");
    assert!(text.contains("verification skipped"), "{text}");
    let m = facerecon_export::read_model(&out).unwrap();
    let props: std::collections::HashMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(props[keys::IMAGE_SIZE], "32");
    assert_eq!(props[keys::MASK_CHANNEL], "true");
    assert_eq!(props[keys::NAME], "tiny");
    assert_eq!(props[keys::MASK_CONVENTION], facerecon_contract::MASK_CONVENTION);
    assert_eq!(props[keys::OPSET], "17");
    assert!(props[keys::CONFIG].contains("name: tiny"));
    let metrics = MetricsRecord::from_line(props[keys::METRICS]).unwrap();
    assert_eq!(metrics, record(2, 12.5), "the last line of metrics.jsonl");
    assert_eq!(
        (m.ir_version, m.opset_import[0].version, m.producer_name.as_str()),
        (8, 17, "facerecon")
    );
    // Only the output remains in the directory: the temp file was renamed.
    let names: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["tiny.onnx"]);
}

#[test]
fn without_ort_verification_fails_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("tiny.onnx");
    let (ok, text) = run(
        &["--checkpoint", ck.to_str().unwrap(), "--out", out.to_str().unwrap()],
        false,
    );
    assert!(!ok, "{text}");
    assert!(
        text.contains("ORT_DYLIB_PATH is not set") && text.contains("make setup"),
        "{text}"
    );
}

#[test]
fn missing_or_broken_checkpoint_files_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("x.onnx");
    let args = [
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-verify",
    ];
    std::fs::remove_file(ck.join(MODEL_FILE)).unwrap();
    let (ok, text) = run(&args, false);
    assert!(!ok && text.contains(MODEL_FILE), "{text}");
    std::fs::write(ck.join(CONFIG_FILE), "name: x\nmodel: {layers: []}\n").unwrap();
    let (ok, text) = run(&args, false);
    assert!(
        !ok && text.contains(CONFIG_FILE) && text.contains("no layers"),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn verifies_against_onnx_runtime() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        panic!("ORT_DYLIB_PATH is not set: run the tests via `make test`, which fetches ONNX Runtime and sets it");
    }
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("tiny.onnx");
    let npz = tmp.path().join("ref.npz");
    let (ok, text) = run(
        &[
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--reference",
            npz.to_str().unwrap(),
        ],
        true,
    );
    assert!(ok, "{text}");
    assert!(text.contains("max |diff| reconstruction"), "{text}");
    assert!(npz.exists());
}
