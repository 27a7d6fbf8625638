//! `facerecon-export` on a checkpoint whose weights hold NaN / infinity (a diverged or corrupted
//! run): refused before anything is written, naming the weight (issue 15, item 9).

mod common;

use candle_core::{Device, Tensor};
use std::process::Command;

#[test]
fn a_checkpoint_with_nan_weights_is_not_exported() {
    let tmp = tempfile::tempdir().unwrap();
    // Poison one value of the first parameter.
    let mut poisoned = String::new();
    let ck = common::checkpoint_with(tmp.path(), |spec, w| {
        let (name, shape) = spec.parameters().unwrap().into_iter().next().unwrap();
        let mut values: Vec<f32> = w[&name].flatten_all().unwrap().to_vec1().unwrap();
        let mid = values.len() / 2;
        values[mid] = f32::NAN;
        w.insert(name.clone(), Tensor::from_vec(values, shape, &Device::Cpu).unwrap());
        poisoned = name;
    });
    let name = poisoned;

    let out = tmp.path().join("exported/tiny.onnx");
    let run = Command::new(env!("CARGO_BIN_EXE_facerecon-export"))
        .args([
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-verify",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.status.success(), "exported NaN weights:\n{text}");
    assert!(
        text.contains(&format!("weight '{name}': 1 of")) && text.contains("not finite (NaN or infinity)"),
        "{text}"
    );
    assert!(!out.exists(), "an ONNX file was written");
    assert!(
        !tmp.path().join("exported").exists()
            || std::fs::read_dir(tmp.path().join("exported")).unwrap().next().is_none()
    );
}
