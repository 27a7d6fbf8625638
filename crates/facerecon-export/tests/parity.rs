//! candle vs ONNX Runtime on exported models: every config in configs/ and every layer kind.
//!
//! Needs ONNX Runtime: `ORT_DYLIB_PATH` must name libonnxruntime.so (`make test` sets it). Without
//! it these tests fail, on purpose, rather than pass without checking anything.

use candle_core::Device;
use facerecon_export::{check_model, export, verify, Metadata};
use facerecon_model::{random_weights, ModelSpec};
use prost::Message;
use std::path::Path;

fn require_ort() {
    let lib = std::env::var_os(verify::ORT_DYLIB_ENV).unwrap_or_default();
    if !Path::new(&lib).is_file() {
        panic!("ORT_DYLIB_PATH={lib:?} is not a file\nThe parity tests need ONNX Runtime: run them via `make test`, which fetches it and sets ORT_DYLIB_PATH");
    }
}

/// Export `spec` with seeded random weights, check the structure, and compare candle with ORT
/// for each batch size.
fn assert_parity(what: &str, spec: &ModelSpec, batches: &[usize]) {
    require_ort();
    let weights = random_weights(spec, 42, 0.1, &Device::Cpu).unwrap();
    let model = export(
        spec,
        &weights,
        &Metadata {
            name: what.into(),
            ..Default::default()
        },
    )
    .unwrap();
    let bytes = model.encode_to_vec();
    let back = facerecon_export::onnx::ModelProto::decode(bytes.as_slice()).unwrap();
    check_model(&back, spec, Path::new(what)).unwrap();
    // For scripts/check_onnx.py over every test model: FACERECON_DUMP_ONNX=DIR cargo test ...
    if let Some(dir) = std::env::var_os("FACERECON_DUMP_ONNX") {
        facerecon_export::write_model(&Path::new(&dir).join(format!("{what}.onnx")), &model).unwrap();
    }
    for (i, &b) in batches.iter().enumerate() {
        let p = verify::parity(spec, &weights, &bytes, b, i as u64).unwrap();
        eprintln!(
            "{what} batch {b}: max |diff| rec {:.2e} inpainted {:.2e}",
            p.reconstruction, p.inpainted
        );
        assert!(p.ok(), "{what} batch {b}: candle and ORT differ: {p:?}");
    }
}

fn config_spec(file: &str) -> ModelSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let spec: ModelSpec = serde_yaml::from_value(v["model"].clone()).unwrap();
    spec.resolve().unwrap();
    spec
}

#[test]
fn config_seed() {
    assert_parity("seed.yaml", &config_spec("seed.yaml"), &[1, 5]);
}

#[test]
fn config_tiny() {
    assert_parity("tiny.yaml", &config_spec("tiny.yaml"), &[1, 5]);
}

/// Every config in configs/ (new ones are picked up automatically).
#[test]
fn every_config() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && name != "seed.yaml" && name != "tiny.yaml" {
            assert_parity(&name, &config_spec(&name), &[2]);
        }
        n += 1;
    }
    assert!(n >= 2, "no configs found in {}", dir.display());
}

/// A tiny spec (8x8 unless `size` says otherwise) around the layers under test.
fn op_spec(size: usize, mask_channel: bool, layers: &str) -> ModelSpec {
    let y = format!("image_size: {size}\nchannels: 3\nmask_channel: {mask_channel}\nlayers:\n{layers}");
    ModelSpec::from_yaml(&y).unwrap_or_else(|e| panic!("{e}\n{y}"))
}

macro_rules! op_test {
    ($name:ident, $size:expr, $mask:expr, $layers:expr) => {
        #[test]
        fn $name() {
            assert_parity(stringify!($name), &op_spec($size, $mask, $layers), &[2]);
        }
    };
}

op_test!(
    conv_stride1_same,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n"
);
op_test!(
    conv_stride2_same,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 5, kernel: 3, stride: 2}\n  - {op: conv_transpose2d, name: t, filters: 3, kernel: 3, stride: 2}\n"
);
op_test!(
    conv_valid_then_explicit,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 4, kernel: 3, padding: valid}\n  - {op: conv2d, name: p, filters: 3, kernel: 1, padding: 1}\n"
);
op_test!(
    conv_explicit_no_bias,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 5, padding: 2, bias: false}\n"
);
op_test!(
    conv_dilation2,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3, dilation: 2, padding: same}\n"
);
op_test!(
    conv_stride2_k4_explicit_and_convt_k4_same,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 4, kernel: 4, stride: 2, padding: 1}\n  - {op: conv_transpose2d, name: t, filters: 3, kernel: 4, stride: 2, padding: same}\n"
);
op_test!(
    convt_k3_stride2_valid,
    7,
    false,
    "  - {op: conv2d, name: c, filters: 4, kernel: 3, stride: 2, padding: valid}\n  - {op: conv_transpose2d, name: t, filters: 3, kernel: 3, stride: 2, padding: valid}\n"
);
op_test!(
    convt_k4_stride2_valid_no_bias,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 4, kernel: 4, stride: 2, padding: valid}\n  - {op: conv_transpose2d, name: t, filters: 3, kernel: 4, stride: 2, padding: valid, bias: false}\n"
);
op_test!(
    dense_flatten_reshape,
    8,
    false,
    "  - {op: flatten}\n  - {op: dense, name: d1, units: 10}\n  - {op: dense, name: d2, units: 192, bias: false}\n  - {op: reshape, shape: [3, 8, 8]}\n"
);
op_test!(
    leaky_relu,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: leaky_relu, slope: 0.1}\n"
);
op_test!(
    relu,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: relu}\n"
);
op_test!(
    sigmoid,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: sigmoid}\n"
);
op_test!(
    tanh,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: tanh}\n"
);
op_test!(
    upsample_2_and_4,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3, stride: 4}\n  - {op: upsample, name: u, scale: 4}\n  - {op: conv2d, name: d, filters: 3, kernel: 3, stride: 2}\n  - {op: upsample, scale: 2}\n"
);
op_test!(
    concat_with_image_and_mask,
    8,
    false,
    "  - {op: conv2d, name: c, filters: 4, kernel: 3}\n  - {op: concat, name: cat, from: [c, image, mask]}\n  - {op: conv2d, name: out, filters: 3, kernel: 1}\n"
);
op_test!(
    add_three_inputs,
    8,
    false,
    "  - {op: conv2d, name: a, filters: 3, kernel: 3}\n  - {op: conv2d, name: b, from: input, filters: 3, kernel: 1}\n  - {op: add, name: sum, from: [a, b, image]}\n"
);
op_test!(
    mask_channel,
    8,
    true,
    "  - {op: conv2d, name: c, filters: 3, kernel: 3}\n  - {op: sigmoid}\n"
);
op_test!(
    layer_named_like_an_output,
    8,
    false,
    "  - {op: conv2d, name: reconstruction, filters: 3, kernel: 3}\n  - {op: relu, name: inpainted}\n  - {op: tanh, name: composite}\n"
);

/// The comparison is sensitive: a lowering that is slightly wrong (LeakyRelu alpha 0.2 -> 0.21,
/// or transposed-conv output padding moved to the start) fails it.
#[test]
fn parity_detects_a_wrong_lowering() {
    require_ort();
    let spec = config_spec("tiny.yaml");
    let weights = random_weights(&spec, 42, 0.1, &Device::Cpu).unwrap();
    let good = export(&spec, &weights, &Metadata::default()).unwrap();
    let mutate = |f: &dyn Fn(&mut facerecon_export::onnx::NodeProto)| {
        let mut m = good.clone();
        m.graph.as_mut().unwrap().node.iter_mut().for_each(f);
        verify::parity(&spec, &weights, &m.encode_to_vec(), 2, 0).unwrap()
    };
    let p = mutate(&|n| {
        if n.op_type == "LeakyRelu" {
            n.attribute[0].f = 0.21;
        }
    });
    assert!(!p.ok(), "alpha change not detected: {p:?}");
    let p = mutate(&|n| {
        if n.op_type == "ConvTranspose" {
            for a in n.attribute.iter_mut().filter(|a| a.name == "pads") {
                a.ints = vec![0, 0, 2, 2];
            }
        }
    });
    assert!(!p.ok(), "shifted transposed conv not detected: {p:?}");
}
