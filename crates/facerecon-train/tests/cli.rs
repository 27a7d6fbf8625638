//! The `facerecon-train` binary: flags, messages, exit status.
mod common;

use std::process::Command;

fn train() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facerecon-train"))
}

#[test]
fn one_epoch_from_the_command_line_prints_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("faces"), tmp.path().join("runs/cli"));
    common::write_images(&data, 20, 32, 32);
    let o = train()
        .args([
            "--config",
            common::tiny_config().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args([
            "--out",
            out.to_str().unwrap(),
            "--epochs",
            "1",
            "--threads",
            "2",
            "--seed",
            "5",
            "--max-images",
            "16",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("epoch 1: train_loss"), "{stderr}");
    assert!(stderr.contains(&format!("checkpoint: {}", out.display())), "{stderr}");
    assert!(!stderr.contains("SYNTHETIC"), "{stderr}");
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(facerecon_train::checkpoint::STATE_FILE)).unwrap())
            .unwrap();
    assert_eq!(state["seed"], 5);
    assert_eq!(state["max_images"], 16);
    assert_eq!(state["epoch"], 1);
}

#[test]
fn cuda_without_the_feature_is_a_clear_error() {
    if cfg!(feature = "cuda") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let o = train()
        .args(["--config", common::tiny_config().to_str().unwrap(), "--synthetic", "4"])
        .args([
            "--data",
            tmp.path().join("d").to_str().unwrap(),
            "--out",
            tmp.path().join("o").to_str().unwrap(),
        ])
        .args(["--device", "cuda:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("rebuild with --features cuda"), "{stderr}");
}

#[test]
fn synthetic_data_is_generated_and_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("synth"), tmp.path().join("run"));
    let args = |out: &std::path::Path| {
        let mut c = train();
        c.args(["--config", common::tiny_config().to_str().unwrap(), "--synthetic", "24"])
            .args([
                "--data",
                data.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--max-steps",
                "1",
            ]);
        c
    };
    let o = args(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("SYNTHETIC"), "{stderr}");
    assert_eq!(facerecon_imaging::io::list_images(&data).len(), 24);
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(facerecon_train::checkpoint::STATE_FILE)).unwrap())
            .unwrap();
    assert_eq!(state["synthetic"], true);
    // A second run reuses the generated set; a foreign non-empty directory is refused.
    let o = args(&tmp.path().join("run2")).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("reusing 24"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let real = tmp.path().join("real");
    common::write_images(&real, 2, 16, 16);
    let o = train()
        .args([
            "--config",
            common::tiny_config().to_str().unwrap(),
            "--synthetic",
            "4",
            "--data",
            real.to_str().unwrap(),
        ])
        .args(["--out", tmp.path().join("run3").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not generate"));
}
