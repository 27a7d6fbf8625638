//! int8 export: the sub-pixel rewrite, the QDQ structure, calibration, and the CLI end to end
//! (tiny config, random weights, generated faces).

mod common;

use candle_core::{DType, Device, Tensor};
use facerecon_contract::checkpoint::MODEL_FILE;
use facerecon_contract::keys;
use facerecon_export::calibrate::{self, Method};
use facerecon_export::onnx::{tensor_proto::DataType, ModelProto, TensorProto};
use facerecon_export::quantize::{self, QuantizeOptions, Range};
use facerecon_export::{Metadata, OPSET};
use facerecon_model::layers::{Backend, ConvParams};
use facerecon_model::{random_weights, ModelSpec};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_facerecon-export");

fn tiny_config() -> (String, facerecon_train::Config) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = facerecon_train::Config::from_yaml(&text, &path).unwrap();
    (text, config)
}

fn ramp(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// DepthToSpace, DCR mode, on an NCHW tensor.
fn depth_to_space(x: &Tensor, s: usize) -> Tensor {
    let (n, c, h, w) = x.dims4().unwrap();
    let co = c / (s * s);
    x.reshape((n, s, s, co, h, w))
        .unwrap()
        .permute((0, 3, 4, 1, 5, 2))
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((n, co, h * s, w * s))
        .unwrap()
}

#[test]
fn subpixel_form_equals_the_transposed_convolution() {
    // (kernel, stride, pad, output_padding): the unet's "same" 3/2, and other shapes with an exact form.
    for (k, s, p, op) in [
        (3, 2, 1, 1),
        (4, 2, 1, 0),
        (2, 2, 0, 0),
        (5, 2, 2, 1),
        (3, 1, 1, 0),
        (6, 3, 0, 0),
    ] {
        let (ci, co, h) = (3, 5, 6);
        let w = ramp(ci * co * k * k, k as u32);
        let b = ramp(co, 7);
        let x = Tensor::from_vec(ramp(2 * ci * h * h, 3), (2, ci, h, h), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), (ci, co, k, k), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b.clone(), co, &Device::Cpu).unwrap();
        let params = ConvParams {
            stride: s,
            padding: p,
            output_padding: op,
            ..ConvParams::default()
        };
        let want = Backend::Kernels.conv_transpose2d(&x, &wt, Some(&bt), params).unwrap();

        let (wc, bc, t, pb, pe) = quantize::subpixel_weights(&w, Some(&b), [ci, co, k, k], s, p, op)
            .unwrap_or_else(|| panic!("no sub-pixel form for k{k} s{s} p{p} op{op}"));
        let wc = Tensor::from_vec(wc, (s * s * co, ci, t, t), &Device::Cpu).unwrap();
        let bc = Tensor::from_vec(bc.unwrap(), s * s * co, &Device::Cpu).unwrap();
        let xp = x.pad_with_zeros(2, pb, pe).unwrap().pad_with_zeros(3, pb, pe).unwrap();
        let conv = Backend::Kernels
            .conv2d(&xp, &wc, Some(&bc), ConvParams::default())
            .unwrap();
        let got = depth_to_space(&conv, s);
        assert_eq!(got.dims(), want.dims(), "k{k} s{s} p{p} op{op}");
        let diff: f32 = (got - &want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "k{k} s{s} p{p} op{op}: max |diff| {diff}");
    }
    // No exact form: an output length that is not a whole number of phases.
    assert!(quantize::subpixel_weights(&ramp(4 * 9, 0), None, [2, 2, 3, 3], 2, 1, 0).is_none());
}

#[test]
fn subpixel_rewrite_of_the_fp32_graph_runs_like_the_original_in_onnx_runtime() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        panic!("ORT_DYLIB_PATH is not set: run the tests via `make test`, which fetches ONNX Runtime and sets it");
    }
    let (_, config) = tiny_config();
    let spec = &config.model;
    let weights = random_weights(spec, 11, 0.1, &Device::Cpu).unwrap();
    let meta = Metadata {
        name: "tiny".into(),
        ..Default::default()
    };
    let fp32 = facerecon_export::export(spec, &weights, &meta).unwrap();
    let (sub, added) = quantize::subpixel_rewrite(&fp32, spec, &Default::default()).unwrap();
    assert_eq!(
        added.len(),
        10,
        "5 new tensors for each of the 2 transposed convolutions: {added:?}"
    );
    assert_eq!(quantize::op_counts(&sub).get("ConvTranspose"), None);
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.onnx"), tmp.path().join("b.onnx"));
    facerecon_export::write_model(&a, &fp32).unwrap();
    facerecon_export::write_model(&b, &sub).unwrap();
    let opts = facerecon_runtime::RuntimeOptions::default();
    let (ra, rb) = (
        facerecon_runtime::Runtime::load(&a, &opts).unwrap(),
        facerecon_runtime::Runtime::load(&b, &opts).unwrap(),
    );
    let (image, mask) = facerecon_export::verify::random_batch(spec, 3, 5).unwrap();
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (x, y) = (
        ra.run_tensors(&v(&image), &v(&mask), 3).unwrap().0,
        rb.run_tensors(&v(&image), &v(&mask), 3).unwrap().0,
    );
    let diff = x.iter().zip(&y).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(diff < 1e-5, "max |diff| {diff}");
}

#[test]
fn weights_are_symmetric_int8_per_output_channel() {
    let w = [
        0.5, -1.0, 0.25, /* channel 1 */ 0.0, 0.0, 0.0, /* channel 2 */ 2.54, 1.27, -0.01,
    ];
    let (q, s) = quantize::quantize_weight(&w, 3);
    assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.54 / 127.0]);
    assert_eq!(q, vec![64, -127, 32, 0, 0, 0, 127, 64, -1]);
    // Activations: the range is widened to hold 0 exactly.
    let q = Range { min: 0.2, max: 1.0 }.qparams();
    assert_eq!((q.scale, q.zero_point), (1.0 / 255.0, 0));
    let q = Range { min: -1.0, max: 0.275 }.qparams();
    assert_eq!(q.zero_point, 200);
    assert!((q.scale - 1.275 / 255.0).abs() < 1e-9);
}

fn tiny_quantized(opts: &QuantizeOptions) -> (ModelSpec, HashMap<String, Tensor>, ModelProto, BTreeMap<String, Range>) {
    let (_, config) = tiny_config();
    let spec = config.model.clone();
    let weights = random_weights(&spec, 3, 0.1, &Device::Cpu).unwrap();
    let fp32 = facerecon_export::export(&spec, &weights, &Metadata::default()).unwrap();
    let mut ranges: BTreeMap<String, Range> = spec
        .resolve()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, l)| {
            (
                l.name.clone(),
                Range {
                    min: -1.0 - i as f32,
                    max: 2.0,
                },
            )
        })
        .collect();
    ranges.insert("input".into(), Range { min: 0.0, max: 1.0 });
    let q = quantize::quantize(&fp32, &spec, &ranges, opts).unwrap();
    (spec, weights, q, ranges)
}

fn init<'a>(m: &'a ModelProto, name: &str) -> &'a TensorProto {
    m.graph
        .as_ref()
        .unwrap()
        .initializer
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no initializer {name}"))
}

fn f32s(t: &TensorProto) -> Vec<f32> {
    t.raw_data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn qdq_structure() {
    let (_, weights, m, ranges) = tiny_quantized(&QuantizeOptions::default());
    quantize::check_quantized(&m).unwrap();
    let g = m.graph.as_ref().unwrap();
    let counts = quantize::op_counts(&m);
    // tiny: 3 convolutions (enc1, enc2, out) + 2 transposed ones as sub-pixel convolutions, each
    // followed by its interleave (3 Transpose, 2 Reshape); 2 dense; the spec's own reshape.
    assert_eq!(counts["Conv"], 5, "{counts:?}");
    assert_eq!(counts["Transpose"], 6, "{counts:?}");
    assert_eq!(counts["Reshape"], 5, "{counts:?}");
    assert_eq!(counts.get("DepthToSpace"), None, "{counts:?}");
    assert_eq!(counts.get("ConvTranspose"), None, "{counts:?}");
    assert_eq!(counts["Gemm"], 2, "{counts:?}");

    // Every Conv/Gemm reads a per-channel int8 weight and an int32 bias through DequantizeLinear.
    let producer: HashMap<&str, _> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    for n in g.node.iter().filter(|n| n.op_type == "Conv" || n.op_type == "Gemm") {
        let x = producer[n.input[0].as_str()];
        assert_eq!(x.op_type, "DequantizeLinear", "{}: activation input", n.name);
        let w = producer[n.input[1].as_str()];
        assert_eq!(w.op_type, "DequantizeLinear", "{}: weight", n.name);
        let wq = init(&m, &w.input[0]);
        assert_eq!(wq.data_type, DataType::Int8 as i32);
        assert_eq!(
            init(&m, &w.input[1]).dims,
            vec![wq.dims[0]],
            "{}: one scale per output channel",
            n.name
        );
        assert!(
            init(&m, &w.input[2]).raw_data.iter().all(|b| *b == 0),
            "symmetric: zero points 0"
        );
        let b = producer[n.input[2].as_str()];
        let bq = init(&m, &b.input[0]);
        assert_eq!(bq.data_type, DataType::Int32 as i32);
        // bias scale = activation scale * weight scale, per channel
        let xs = f32s(init(&m, &x.input[1]))[0];
        let ws = f32s(init(&m, &w.input[1]));
        let bs = f32s(init(&m, &b.input[1]));
        for (c, (wsc, bsc)) in ws.iter().zip(&bs).enumerate() {
            assert_eq!(*bsc, xs * wsc, "{}: bias scale of channel {c}", n.name);
        }
    }
    // enc1's weights: q = round(w / (max|w_c| / 127)).
    let w = weights["enc1.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let per = w.len() / 8;
    let q: Vec<i8> = init(&m, "enc1.weight").raw_data.iter().map(|b| *b as i8).collect();
    let s = f32s(init(&m, "enc1.weight/scale"));
    for c in 0..8 {
        let amax = w[c * per..(c + 1) * per].iter().fold(0f32, |a, v| a.max(v.abs()));
        assert_eq!(s[c], amax / 127.0);
        assert!(q[c * per..(c + 1) * per].iter().any(|v| v.abs() == 127));
    }

    // Activations: a Q -> DQ pair with the calibrated uint8 parameters after enc1, and after the
    // network input; DepthToSpace's input and output share theirs (ORT then runs it on uint8).
    let zp = |name: &str| init(&m, &format!("{name}/zero_point"));
    assert_eq!(zp("enc1").data_type, DataType::Uint8 as i32);
    assert_eq!(f32s(init(&m, "enc1/scale"))[0], ranges["enc1"].qparams().scale);
    assert_eq!(zp("enc1").raw_data, vec![ranges["enc1"].qparams().zero_point]);
    assert_eq!(f32s(init(&m, "input/scale"))[0], 1.0 / 255.0);
    for step in ["subpixel", "nhwc", "split", "interleave", "merge"] {
        assert_eq!(
            f32s(init(&m, &format!("dec1/{step}/scale"))),
            f32s(init(&m, "dec1/scale")),
            "{step}"
        );
    }
    // The reconstruction (graph output) and the composite stay fp32, reading the graph inputs.
    assert!(g.node.iter().all(|n| !n.input.iter().any(|i| i == "reconstruction/dq")));
    for n in g.node.iter().filter(|n| n.name.starts_with("composite/")) {
        assert!(n.input.iter().all(|i| !i.ends_with("/dq")), "{}: {:?}", n.name, n.input);
    }
}

#[test]
fn fp32_layers_and_conv_transpose_stay_fp32_when_asked() {
    let opts = QuantizeOptions {
        fp32_layers: vec!["out".into()],
        subpixel: false,
        ..Default::default()
    };
    let (_, _, m, _) = tiny_quantized(&opts);
    quantize::check_quantized(&m).unwrap();
    assert_eq!(init(&m, "out.weight").data_type, DataType::Float as i32);
    assert_eq!(init(&m, "dec1.weight").data_type, DataType::Float as i32);
    assert_eq!(quantize::op_counts(&m)["ConvTranspose"], 2);
    let g = m.graph.as_ref().unwrap();
    assert!(
        g.initializer.iter().all(|t| t.name != "out/scale"),
        "the fp32 layer's output is not quantized"
    );
    let (_, config) = tiny_config();
    let fp32 = facerecon_export::export(
        &config.model,
        &random_weights(&config.model, 3, 0.1, &Device::Cpu).unwrap(),
        &Metadata::default(),
    )
    .unwrap();
    let bad = QuantizeOptions {
        fp32_layers: vec!["nope".into()],
        ..Default::default()
    };
    let e = quantize::quantize(&fp32, &config.model, &BTreeMap::new(), &bad)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no layer 'nope'"), "{e}");
}

/// A directory of generated faces (the synthetic set of facerecon-imaging).
fn faces(dir: &Path, n: usize) -> PathBuf {
    let d = dir.join("faces");
    facerecon_imaging::synth::write_dataset(&d, n, 32).unwrap();
    d
}

#[test]
fn calibration_is_seeded_and_uses_only_training_side_faces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = faces(tmp.path(), 40);
    let (_, config) = tiny_config();
    let a = calibrate::calibration_files(&dir, &config, 12, 0).unwrap();
    assert_eq!(a.len(), 12);
    assert_eq!(a, calibrate::calibration_files(&dir, &config, 12, 0).unwrap());
    assert_ne!(a, calibrate::calibration_files(&dir, &config, 12, 1).unwrap());
    let split = facerecon_train::data::split_files(
        &dir,
        &facerecon_imaging::io::list_images(&dir),
        config.train.validation_fraction,
        None,
        config.train.max_val_images,
    );
    assert!(!split.val.is_empty());
    assert!(
        a.iter().all(|f| !split.val.contains(f)),
        "a held-out face was used for calibration"
    );

    let spec = &config.model;
    let model = facerecon_model::Model::new(
        spec,
        candle_nn::VarBuilder::from_tensors(
            random_weights(spec, 3, 0.1, &Device::Cpu).unwrap(),
            DType::F32,
            &Device::Cpu,
        ),
    )
    .unwrap();
    let (image, mask) = calibrate::load_batch(&a, &config, 0).unwrap();
    let (image2, mask2) = calibrate::load_batch(&a, &config, 0).unwrap();
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!((v(&image), v(&mask)), (v(&image2), v(&mask2)));
    // Holes are zeroed in the images (the network input contract) and every face has one.
    let (im, ma) = (v(&image), v(&mask));
    let plane = 32 * 32;
    for i in 0..12 {
        assert!(ma[i * plane..(i + 1) * plane].contains(&1.0), "face {i} has no hole");
        for k in 0..plane {
            if ma[i * plane + k] == 1.0 {
                assert_eq!(im[i * 3 * plane + k], 0.0);
            }
        }
    }
    let mm = calibrate::calibrate(&model, &image, &mask, Method::MinMax).unwrap();
    assert_eq!(mm, calibrate::calibrate(&model, &image, &mask, Method::MinMax).unwrap());
    let names: Vec<String> = spec.resolve().unwrap().into_iter().map(|l| l.name).collect();
    for n in names.iter().chain(std::iter::once(&"input".to_string())) {
        assert!(mm.contains_key(n), "no range for {n}");
    }
    assert!(mm["input"].min == 0.0 && mm["input"].max <= 1.0);
    let p = calibrate::calibrate(&model, &image, &mask, Method::Percentile(99.0)).unwrap();
    for (n, r) in &p {
        assert!(
            r.min >= mm[n].min && r.max <= mm[n].max,
            "{n}: percentile {r:?} outside min/max {:?}",
            mm[n]
        );
    }
    assert!(
        p.iter().any(|(n, r)| r.max < mm[n].max),
        "99th percentile clipped nothing"
    );
}

/// A checkpoint directory like the trainer's (tiny config, random weights).
fn checkpoint(dir: &Path) -> PathBuf {
    common::checkpoint(dir)
}

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn onnx_file_as_checkpoint_reexports_the_same_model() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let a = tmp.path().join("a.onnx");
    let b = tmp.path().join("b.onnx");
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        a.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(ok, "{text}");
    let (ok, text) = run(&[
        "--checkpoint",
        a.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(ok, "{text}");
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "weights and metadata survive the round trip"
    );
    // --config replaces the config stored in the file (same model); a run directory refuses it.
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml");
    let c = tmp.path().join("c.onnx");
    let (ok, text) = run(&[
        "--checkpoint",
        a.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(ok, "{text}");
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        c.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(
        !ok && text.contains("only an ONNX --checkpoint takes a config"),
        "{text}"
    );
    // A file that is not a facerecon export is named with the reason.
    let junk = tmp.path().join("junk.onnx");
    std::fs::write(&junk, b"\xff\xff not protobuf").unwrap();
    let (ok, text) = run(&[
        "--checkpoint",
        junk.to_str().unwrap(),
        "--out",
        b.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(
        !ok && text.contains("junk.onnx") && text.contains("not a valid ONNX model"),
        "{text}"
    );
}

#[test]
fn int8_export_runs_through_the_runtime_close_to_fp32() {
    if std::env::var_os("ORT_DYLIB_PATH").is_none() {
        panic!("ORT_DYLIB_PATH is not set: run the tests via `make test`, which fetches ONNX Runtime and sets it");
    }
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let dir = faces(tmp.path(), 48);
    let out = tmp.path().join("tiny-int8.onnx");
    let args = [
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        dir.to_str().unwrap(),
        "--calibration-images",
        "24",
    ];
    let (ok, text) = run(&args);
    assert!(ok, "{text}");
    assert!(
        text.contains("calibrated") && text.contains("24 training-side faces"),
        "{text}"
    );
    assert!(text.contains("int8 vs candle fp32") && text.contains("PSNR"), "{text}");
    let m = facerecon_export::read_model(&out).unwrap();
    quantize::check_quantized(&m).unwrap();
    let props: HashMap<_, _> = m
        .metadata_props
        .iter()
        .map(|p| (p.key.as_str(), p.value.as_str()))
        .collect();
    let info: serde_json::Value = serde_json::from_str(props[keys::QUANTIZATION]).unwrap();
    assert_eq!(info["calibration"]["images"], 24);
    assert_eq!(props[keys::OPSET], OPSET.to_string());

    // Deterministic: the same command writes the same bytes.
    let again = tmp.path().join("again.onnx");
    let mut args2 = args;
    args2[3] = again.to_str().unwrap();
    assert!(run(&args2).0);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    // It loads through facerecon-runtime, and its reconstruction is close to the fp32 candle model's
    // on faces with training holes (PSNR of int8 against fp32; one ORT environment per process, so the
    // exporter's own comparison, which has the same arithmetic, runs in the CLI above).
    let (_, config) = tiny_config();
    let spec = &config.model;
    let weights = facerecon_model::load_weights(spec, &ck.join(MODEL_FILE), &Device::Cpu).unwrap();
    let files: Vec<PathBuf> = facerecon_imaging::io::list_images(&dir).into_iter().take(16).collect();
    let (image, mask) = calibrate::load_batch(&files, &config, 99).unwrap();
    let model = facerecon_model::Model::new(
        spec,
        candle_nn::VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu),
    )
    .unwrap();
    let want = model
        .forward(&image, &mask)
        .unwrap()
        .0
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let rt = facerecon_runtime::Runtime::load(&out, &facerecon_runtime::RuntimeOptions::default()).unwrap();
    let v = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (got, _) = rt.run_tensors(&v(&image), &v(&mask), files.len()).unwrap();
    let mse = want
        .iter()
        .zip(&got)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / want.len() as f64;
    let psnr = -10.0 * mse.log10();
    assert!(psnr > 30.0, "int8 vs fp32 reconstruction PSNR {psnr:.2} dB");

    // The runtime's image path: only hole pixels change.
    let photo = image::RgbImage::from_fn(40, 36, |x, y| image::Rgb([(x * 6) as u8, (y * 7) as u8, 90]));
    let hole = image::GrayImage::from_fn(40, 36, |x, y| {
        image::Luma([if (10..20).contains(&x) && (8..18).contains(&y) {
            255
        } else {
            0
        }])
    });
    let fixed = rt.reconstruct(&photo, &hole).unwrap();
    assert_eq!(fixed.dimensions(), (40, 36));
    for (x, y, p) in fixed.enumerate_pixels() {
        if hole.get_pixel(x, y)[0] == 0 {
            assert_eq!(p, photo.get_pixel(x, y));
        }
    }
    assert!(fixed != photo, "the hole was not filled");

    // The official checker, when the test environment has it (make test sets FACERECON_PYTHON).
    if let Some(py) = std::env::var_os("FACERECON_PYTHON") {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/check_onnx.py");
        let o = Command::new(py).arg(script).arg(&out).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.status.success() && text.contains("passes onnx.checker full_check"),
            "{text}"
        );
    }
}

#[test]
fn int8_needs_calibration_data_and_names_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = checkpoint(tmp.path());
    let out = tmp.path().join("q.onnx");
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
    ]);
    assert!(!ok && text.contains("--calibrate"), "{text}");
    let missing = tmp.path().join("nowhere");
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        missing.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(
        !ok && text.contains("nowhere") && text.contains("does not exist"),
        "{text}"
    );
    assert!(!out.exists());
    // A file where a directory belongs is named as such (not "does not exist").
    let file = tmp.path().join("faces.txt");
    std::fs::write(&file, "x").unwrap();
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        file.to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(!ok && text.contains("faces.txt is a file"), "{text}");
    assert!(!out.exists());
    // An int8 file is not a source for another export.
    let dir = faces(tmp.path(), 20);
    let (ok, text) = run(&[
        "--checkpoint",
        ck.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quantize",
        "int8",
        "--calibrate",
        dir.to_str().unwrap(),
        "--calibration-images",
        "8",
        "--no-verify",
    ]);
    assert!(ok, "{text}");
    let (ok, text) = run(&[
        "--checkpoint",
        out.to_str().unwrap(),
        "--out",
        tmp.path().join("x.onnx").to_str().unwrap(),
        "--no-verify",
    ]);
    assert!(!ok && text.contains("already quantized"), "{text}");
}
