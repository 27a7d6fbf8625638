//! `--precision fp16`: float16 network behind the contract's float32 inputs and outputs.

mod common;

use candle_core::{Device, Tensor};
use facerecon_contract::checkpoint::CONFIG_FILE;
use facerecon_contract::keys;
use facerecon_export::fp16;
use facerecon_export::onnx::tensor_proto::DataType;
use facerecon_export::Metadata;
use facerecon_model::{random_weights, ModelSpec};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_facerecon-export");

#[test]
fn fp16_graph_structure() {
    // An upsample (Resize: its scales must stay float32) and the mask channel.
    let spec = ModelSpec::from_yaml(
        "image_size: 16\nmask_channel: true\nlayers:\n  - {op: conv2d, name: c1, filters: 4, kernel: 3, stride: 2}\n  - {op: leaky_relu, slope: 0.2}\n  - {op: upsample, name: up, scale: 2}\n  - {op: concat, name: s, from: [up, input]}\n  - {op: conv2d, name: out, filters: 3, kernel: 3}\n  - {op: sigmoid}\n",
    )
    .unwrap();
    let w = random_weights(&spec, 2, 0.1, &Device::Cpu).unwrap();
    let fp32 = facerecon_export::export(&spec, &w, &Metadata::default()).unwrap();
    let e = fp16::check_fp16(&fp32, &spec).unwrap_err();
    assert!(
        e.contains("initializer 'c1.weight'") && e.contains("expected float16"),
        "{e}"
    );
    let m = fp16::to_fp16(&fp32).unwrap();
    fp16::check_fp16(&m, &spec).unwrap();
    let g = m.graph.as_ref().unwrap();
    let ty = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap().data_type;
    assert_eq!(ty("c1.weight"), DataType::Float16 as i32);
    assert_eq!(ty("out.bias"), DataType::Float16 as i32);
    assert_eq!(
        ty("up/scales"),
        DataType::Float as i32,
        "Resize scales are float32 in ONNX"
    );
    assert_eq!(ty("composite/one"), DataType::Float as i32);
    // The weights are the float32 values rounded to float16.
    let t = g.initializer.iter().find(|t| t.name == "c1.weight").unwrap();
    let want: Vec<f32> = w["c1.weight"].flatten_all().unwrap().to_vec1().unwrap();
    let got: Vec<f32> = t
        .raw_data
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect();
    for (a, b) in want.iter().zip(&got) {
        assert!((a - b).abs() <= a.abs() * 1e-3 + 1e-7, "{a} -> {b}");
    }
    // The network reads the float16 casts; the composite reads the float32 inputs and reconstruction.
    let concat = g.node.iter().find(|n| n.name == "input/concat").unwrap();
    assert_eq!(concat.input, ["image/fp16", "mask/fp16"]);
    for n in g.node.iter().filter(|n| n.name.starts_with("composite/")) {
        assert!(
            n.input.iter().all(|i| !i.ends_with("/fp16")),
            "{}: {:?}",
            n.name,
            n.input
        );
    }
    let last = g.node.iter().find(|n| n.op_type == "Sigmoid").unwrap();
    assert_eq!(last.output, ["reconstruction/fp16"]);
    let props: std::collections::HashMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(props[keys::PRECISION], facerecon_contract::PRECISION_FLOAT16);
}

fn checkpoint(dir: &Path) -> PathBuf {
    common::checkpoint(dir)
}

#[test]
fn fp16_export_verifies_and_runs_through_the_runtime() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        panic!("ORT_DYLIB_PATH is not set: run the tests via `make test`, which fetches ONNX Runtime and sets it");
    }
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("tiny-fp16.onnx");
    let o = Command::new(BIN)
        .args([
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--precision",
            "fp16",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("fp16 vs candle fp32") && text.contains("tolerance 1e-2"),
        "{text}"
    );

    // Through the runtime: known pixels of `inpainted` are exactly the input's (composite in fp32).
    let rt = facerecon_runtime::Runtime::load(&out, &facerecon_runtime::RuntimeOptions::default()).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(ck.join(CONFIG_FILE)).unwrap()).unwrap();
    let spec: ModelSpec = serde_yaml::from_value(v["model"].clone()).unwrap();
    let (image, mask) = facerecon_export::verify::random_batch(&spec, 2, 9).unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (im, ma) = (flat(&image), flat(&mask));
    let (_, inpainted) = rt.run_tensors(&im, &ma, 2).unwrap();
    let plane = 32 * 32;
    for (k, (a, b)) in inpainted.iter().zip(&im).enumerate() {
        let (img, px) = (k / (3 * plane), k % plane);
        if ma[img * plane + px] == 0.0 {
            assert_eq!(a.to_bits(), b.to_bits(), "known value {k} changed");
        }
    }

    // int8 and fp16 are exclusive.
    let o = Command::new(BIN)
        .args([
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--precision",
            "fp16",
            "--quantize",
            "int8",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cannot be used with"));
}
