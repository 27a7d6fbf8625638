//! `facerecon-export` on a checkpoint whose weights hold NaN / infinity (a diverged or corrupted
//! run): refused before anything is written, naming the weight (issue 15, item 9).

use candle_core::{Device, Tensor};
use facerecon_model::{random_weights, ModelSpec};
use std::path::Path;
use std::process::Command;

#[test]
fn a_checkpoint_with_nan_weights_is_not_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("runs/tiny");
    std::fs::create_dir_all(&ck).unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml")).unwrap();
    std::fs::write(ck.join("config.yaml"), &text).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let spec: ModelSpec = serde_yaml::from_value(v["model"].clone()).unwrap();
    let mut w = random_weights(&spec, 5, 0.1, &Device::Cpu).unwrap();
    // Poison one value of the first parameter.
    let (name, shape) = spec.parameters().unwrap().into_iter().next().unwrap();
    let mut values: Vec<f32> = w[&name].flatten_all().unwrap().to_vec1().unwrap();
    let mid = values.len() / 2;
    values[mid] = f32::NAN;
    w.insert(name.clone(), Tensor::from_vec(values, shape, &Device::Cpu).unwrap());
    candle_core::safetensors::save(&w, ck.join("model.safetensors")).unwrap();

    let out = tmp.path().join("exported/tiny.onnx");
    let run = Command::new(env!("CARGO_BIN_EXE_facerecon-export"))
        .args(["--checkpoint", ck.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-verify"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert!(!run.status.success(), "exported NaN weights:\n{text}");
    assert!(text.contains(&format!("weight '{name}': 1 of")) && text.contains("not finite (NaN or infinity)"), "{text}");
    assert!(!out.exists(), "an ONNX file was written");
    assert!(!tmp.path().join("exported").exists() || std::fs::read_dir(tmp.path().join("exported")).unwrap().next().is_none());
}
