//! Issue 17: the exporter verifies through `facerecon-runtime`, so a file that the runtime would refuse
//! (its contract validation: inputs, outputs, metadata) fails export and is never written, even when
//! ONNX Runtime itself runs it and candle agrees with it. Needs ONNX Runtime (`make test` sets
//! ORT_DYLIB_PATH).

mod common;

use candle_core::Device;
use facerecon_contract::checkpoint::{CONFIG_FILE, MODEL_FILE};
use facerecon_contract::keys;
use facerecon_export::verify::{self, VerifyError};
use facerecon_export::{export, Metadata};
use facerecon_model::{random_weights, ModelSpec};
use prost::Message;
use std::path::Path;
use std::process::Command;

fn require_ort() {
    let lib = std::env::var_os(verify::ORT_DYLIB_ENV).unwrap_or_default();
    assert!(
        Path::new(&lib).is_file(),
        "ORT_DYLIB_PATH={lib:?} is not a file: run the tests via `make test`"
    );
}

/// A metadata value the runtime refuses (the mask convention inverted) in an otherwise perfect export:
/// ONNX Runtime runs it and its outputs equal candle's, but the runtime would read its masks the wrong
/// way round. Verification used to pass it (its own ORT loader never read the metadata).
#[test]
fn verification_fails_a_file_with_metadata_the_runtime_refuses() {
    require_ort();
    let (_, spec) = common::tiny_spec();
    let weights = random_weights(&spec, 42, 0.1, &Device::Cpu).unwrap();
    let good = export(&spec, &weights, &Metadata::default()).unwrap();
    let p = verify::parity(&spec, &weights, &good.encode_to_vec(), 2, 0).unwrap();
    assert!(p.ok(), "{p:?}");

    let mut bad = good.clone();
    let prop = bad
        .metadata_props
        .iter_mut()
        .find(|p| p.key == keys::MASK_CONVENTION)
        .unwrap();
    prop.value = "0=hole,1=known".into();
    match verify::parity(&spec, &weights, &bad.encode_to_vec(), 2, 0) {
        Err(VerifyError::Rejected(msg)) => assert!(msg.contains(keys::MASK_CONVENTION), "{msg}"),
        other => panic!("a file the runtime refuses passed verification: {other:?}"),
    }
}

/// Through the binary: a checkpoint of a one-channel (grey) model exports to a well-formed ONNX file
/// that ONNX Runtime runs and that matches candle, but the runtime takes RGB models only. The export
/// fails, names the reason, and writes nothing; before verification went through the runtime it
/// succeeded and wrote a model that no facerecon tool could load.
#[test]
fn an_export_the_runtime_would_refuse_fails_and_writes_nothing() {
    require_ort();
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("runs/grey");
    std::fs::create_dir_all(&ck).unwrap();
    let (text, _) = common::tiny_spec();
    assert!(text.contains("channels: 3") && text.contains("name: out, filters: 3"));
    let text = text
        .replace("channels: 3", "channels: 1")
        .replace("name: out, filters: 3", "name: out, filters: 1");
    std::fs::write(ck.join(CONFIG_FILE), &text).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let spec: ModelSpec = serde_yaml::from_value(v["model"].clone()).unwrap();
    let w = random_weights(&spec, 5, 0.1, &Device::Cpu).unwrap();
    candle_core::safetensors::save(&w, ck.join(MODEL_FILE)).unwrap();

    let out = tmp.path().join("exported/grey.onnx");
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_facerecon-export"))
            .args(["--checkpoint", ck.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.success(), text)
    };
    let (ok, text) = run(&[]);
    assert!(!ok, "exported a model the runtime refuses: {text}");
    assert!(
        text.contains("facerecon-runtime would refuse") && text.contains("3 (RGB) channels"),
        "{text}"
    );
    assert!(text.contains("nothing written"), "{text}");
    assert!(!out.exists(), "a refused model was written");
    assert_eq!(
        std::fs::read_dir(out.parent().unwrap()).unwrap().count(),
        0,
        "a temp file was left"
    );
    // The file itself is well-formed: only the runtime's contract refuses it (--no-verify writes it).
    let (ok, text) = run(&["--no-verify"]);
    assert!(ok && out.is_file(), "{text}");
}
