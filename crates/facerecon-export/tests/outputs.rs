//! Issue 15, output paths of `facerecon-export`: --out / --reference may not name or lie inside the
//! checkpoint (nor be a hard link to one of its files), are checked before the export runs, and a
//! failed export or verification leaves nothing at --out (no temp file either).

mod common;

use common::names;
use facerecon_contract::checkpoint::{CONFIG_FILE, MODEL_FILE};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A checkpoint directory like the trainer's: config.yaml (tiny), model.safetensors.
fn checkpoint(dir: &Path) -> PathBuf {
    common::checkpoint(dir)
}

/// Runs the exporter; `ort` false removes ORT_DYLIB_PATH (verification then fails).
fn run(args: &[&Path], ort: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facerecon-export"));
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
fn outputs_may_not_name_or_lie_inside_the_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let weights = std::fs::read(ck.join(MODEL_FILE)).unwrap();
    let p = |s: &'static str| Path::new(s);
    for target in [
        ck.join(MODEL_FILE),
        ck.join(CONFIG_FILE),
        ck.join("tiny.onnx"),
        ck.clone(),
    ] {
        let (ok, text) = run(&[p("--checkpoint"), &ck, p("--out"), &target, p("--no-verify")], false);
        assert!(!ok, "{}: {text}", target.display());
        assert!(
            text.contains("--out") && text.contains(&*target.to_string_lossy()),
            "{text}"
        );
        let (ok, text) = run(
            &[
                p("--checkpoint"),
                &ck,
                p("--out"),
                &tmp.path().join("x.onnx"),
                p("--reference"),
                &target,
                p("--no-verify"),
            ],
            false,
        );
        assert!(!ok, "{}: {text}", target.display());
        assert!(text.contains("--reference"), "{text}");
        assert!(
            !tmp.path().join("x.onnx").exists(),
            "the export ran before --reference was checked"
        );
    }
    assert_eq!(
        std::fs::read(ck.join(MODEL_FILE)).unwrap(),
        weights,
        "the trained weights were replaced"
    );
    assert_eq!(names(&ck), [CONFIG_FILE, MODEL_FILE]);

    // A hard link to the weights, outside the checkpoint.
    #[cfg(unix)]
    {
        let link = tmp.path().join("linked.onnx");
        std::fs::hard_link(ck.join(MODEL_FILE), &link).unwrap();
        let (ok, text) = run(&[p("--checkpoint"), &ck, p("--out"), &link, p("--no-verify")], false);
        assert!(
            !ok && text.contains("linked.onnx") && text.contains("same file"),
            "{text}"
        );
        assert_eq!(std::fs::read(ck.join(MODEL_FILE)).unwrap(), weights);
    }
    // --reference and --out the same file.
    let same = tmp.path().join("same.onnx");
    let (ok, text) = run(
        &[
            p("--checkpoint"),
            &ck,
            p("--out"),
            &same,
            p("--reference"),
            &same,
            p("--no-verify"),
        ],
        false,
    );
    assert!(!ok && text.contains("--reference"), "{text}");
    // --out a directory.
    let d = tmp.path().join("adir");
    std::fs::create_dir_all(&d).unwrap();
    let (ok, text) = run(&[p("--checkpoint"), &ck, p("--out"), &d, p("--no-verify")], false);
    assert!(!ok && text.contains("is a directory"), "{text}");
}

#[test]
fn a_failed_verification_leaves_nothing_at_out() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let dir = tmp.path().join("exported");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("tiny.onnx");
    let p = |s: &'static str| Path::new(s);
    // No ONNX Runtime: verification fails, so the model must not appear at --out.
    let (ok, text) = run(
        &[
            p("--checkpoint"),
            &ck,
            p("--out"),
            &out,
            p("--reference"),
            &dir.join("ref.npz"),
        ],
        false,
    );
    assert!(!ok, "{text}");
    assert!(names(&dir).is_empty(), "a failed export left {:?}", names(&dir));
    // An earlier good export at --out survives a failed one untouched.
    std::fs::write(&out, b"previous model").unwrap();
    let (ok, _) = run(&[p("--checkpoint"), &ck, p("--out"), &out], false);
    assert!(!ok);
    assert_eq!(std::fs::read(&out).unwrap(), b"previous model");
    assert_eq!(names(&dir), ["tiny.onnx"]);
}

#[cfg(target_os = "linux")]
#[test]
fn stale_temp_files_of_killed_exports_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let dir = tmp.path().join("exported");
    std::fs::create_dir_all(&dir).unwrap();
    // What a SIGKILLed export leaves (PID above pid_max: cannot be alive).
    std::fs::write(dir.join(".tiny.onnx.tmp-9999999"), b"partial").unwrap();
    let p = |s: &'static str| Path::new(s);
    let (ok, text) = run(
        &[
            p("--checkpoint"),
            &ck,
            p("--out"),
            &dir.join("tiny.onnx"),
            p("--no-verify"),
        ],
        false,
    );
    assert!(ok, "{text}");
    assert_eq!(names(&dir), ["tiny.onnx"]);
}

/// The other inputs of an export are protected too: an ONNX checkpoint, the `--config` given with it and
/// the `--calibrate` images may not be overwritten by `--out` / `--reference`.
#[test]
fn outputs_may_not_name_the_onnx_checkpoint_the_config_or_the_calibration_images() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let p = |s: &'static str| Path::new(s);
    let onnx = tmp.path().join("tiny.onnx");
    let (ok, text) = run(&[p("--checkpoint"), &ck, p("--out"), &onnx, p("--no-verify")], false);
    assert!(ok, "{text}");
    let model = std::fs::read(&onnx).unwrap();
    let config = tmp.path().join("tiny.yaml");
    std::fs::copy(ck.join(CONFIG_FILE), &config).unwrap();
    let faces = tmp.path().join("faces");
    std::fs::create_dir_all(&faces).unwrap();
    let face = faces.join("a.png");
    std::fs::write(&face, b"not really a png").unwrap();

    let (ok, text) = run(&[p("--checkpoint"), &onnx, p("--out"), &onnx, p("--no-verify")], false);
    assert!(!ok && text.contains("checkpoint (ONNX file)"), "{text}");
    let (ok, text) = run(
        &[
            p("--checkpoint"),
            &onnx,
            p("--config"),
            &config,
            p("--out"),
            &config,
            p("--no-verify"),
        ],
        false,
    );
    assert!(!ok && text.contains("--config"), "{text}");
    let (ok, text) = run(
        &[
            p("--checkpoint"),
            &onnx,
            p("--quantize"),
            p("int8"),
            p("--calibrate"),
            &faces,
            p("--out"),
            &face,
            p("--no-verify"),
        ],
        false,
    );
    assert!(!ok && text.contains("--calibrate directory"), "{text}");
    assert_eq!(std::fs::read(&onnx).unwrap(), model);
    assert_eq!(std::fs::read(&face).unwrap(), b"not really a png");
    assert!(std::fs::read_to_string(&config).unwrap().contains("model:"));
}
