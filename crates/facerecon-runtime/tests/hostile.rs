//! Hostile model files (issue 15, item 9 and the fuzzing part): every one is refused at load with an
//! `InvalidModel` error naming the file and the problem, or — for weights that are finite but overflow
//! — fails per image at run time instead of writing black holes with a success status.
//! Needs ONNX Runtime (`make test` sets ORT_DYLIB_PATH).

mod common;

use std::path::Path;

use common::{fixture, node, options, Io, Spec, Tensor, DOUBLE, FLOAT16};
use facerecon_runtime::{Runtime, RuntimeError};
use image::{GrayImage, Luma, Rgb, RgbImage};

/// Load `path` and return the InvalidModel message, checking that the error names the file.
fn refused(path: &Path) -> String {
    match Runtime::load(path, &options()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e @ RuntimeError::InvalidModel { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&path.display().to_string()), "{text}");
            text
        }
        Err(e) => panic!("{}: not an InvalidModel error: {e}", path.display()),
    }
}

fn assert_refused(path: &Path, want: &str) {
    let text = refused(path);
    assert!(text.contains(want), "{} should mention {want:?}", text);
}

#[test]
fn the_hand_encoded_identity_model_loads_and_runs() {
    // The encoder itself is right: the default spec is identity.onnx's graph.
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::load(Spec::default().write(dir.path(), "ok.onnx"), &options()).unwrap();
    assert_eq!(rt.info().image_size, 32);
    let image = RgbImage::from_pixel(40, 40, Rgb([200, 10, 60]));
    let mask = GrayImage::from_fn(40, 40, |x, y| {
        Luma([if (10..20).contains(&x) && (5..15).contains(&y) {
            255
        } else {
            0
        }])
    });
    let out = rt.reconstruct(&image, &mask).unwrap();
    assert_eq!(out.get_pixel(15, 10), &Rgb([26, 77, 128]));
    assert_eq!(out.get_pixel(0, 0), &Rgb([200, 10, 60]));
}

#[test]
fn non_finite_weights_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // NaN in a raw_data float initializer.
    assert_refused(
        &Spec::identity(f32::NAN, [0.1, 0.3, 0.5]).write(d, "nan.onnx"),
        "initializer `half` has 1 non-finite value",
    );
    // Infinity among others.
    assert_refused(
        &Spec::identity(0.5, [0.1, f32::INFINITY, f32::NEG_INFINITY]).write(d, "inf.onnx"),
        "initializer `bias` has 2 non-finite values (NaN or infinity) of 3",
    );
    // NaN stored in float_data instead of raw_data.
    let mut s = Spec::default();
    s.initializers[1].float_data = Some(vec![0.1, f32::NAN, 0.5]);
    assert_refused(&s.write(d, "float_data.onnx"), "initializer `bias` has 1 non-finite");
    // A double and a half-float initializer (not used by the graph: checked all the same).
    let mut s = Spec::default();
    s.initializers.push(Tensor {
        dtype: DOUBLE,
        raw: f64::NAN.to_le_bytes().to_vec(),
        ..Tensor::f32("d", &[], &[])
    });
    assert_refused(&s.write(d, "double.onnx"), "initializer `d` has 1 non-finite");
    let mut s = Spec::default();
    s.initializers.push(Tensor {
        dtype: FLOAT16,
        raw: vec![0x00, 0x3c, 0x00, 0x7c],
        ..Tensor::f32("h", &[2], &[])
    });
    assert_refused(&s.write(d, "half.onnx"), "initializer `h` has 1 non-finite");
    // A NaN constant inside a node rather than an initializer.
    let mut s = Spec::default();
    s.initializers.remove(0);
    let mut c = node("Constant", &[], &["half"]);
    c.value = Some(Tensor::f32("", &[], &[f32::NAN]));
    s.nodes.insert(0, c);
    assert_refused(&s.write(d, "constant.onnx"), "attribute of node `n0`");
}

#[test]
fn overflowing_weights_fail_the_image_not_the_run() {
    // Finite weights that overflow to infinity on bright pixels: the load check cannot see it, the
    // output check must. rec = 3e38 * image + 3e38: finite where the image is 0, infinite elsewhere.
    let dir = tempfile::tempdir().unwrap();
    let path = Spec::identity(3e38, [3e38; 3]).write(dir.path(), "overflow.onnx");
    let rt = Runtime::load(&path, &options()).unwrap();
    let mask = GrayImage::from_fn(32, 32, |x, _| Luma([if x < 8 { 255 } else { 0 }]));
    let dark = RgbImage::new(32, 32);
    let bright = RgbImage::from_pixel(32, 32, Rgb([250, 250, 250]));

    let err = rt.reconstruct(&bright, &mask).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("non-finite values (NaN or infinity)"),
        "{err}"
    );
    assert!(err.contains("of 3072"), "{err}");

    // Per item: the dark image (all values finite) succeeds beside the bright one in the same batch.
    let p_dark = rt.prepare(&dark, &mask).unwrap();
    let p_bright = rt.prepare(&bright, &mask).unwrap();
    let each = rt.infer_each(&[&p_dark, &p_bright, &p_dark]).unwrap();
    assert_eq!(each.len(), 3);
    assert!(each[0].as_ref().unwrap().iter().all(|v| *v == 3e38));
    assert!(each[1].as_ref().unwrap_err().to_string().contains("non-finite"));
    assert!(each[2].is_ok());
    // The all-or-nothing calls fail as a whole.
    assert!(rt.infer(&[&p_dark, &p_bright]).is_err());
    assert!(rt
        .reconstruct_batch(&[(dark.clone(), mask.clone()), (bright, mask.clone())])
        .is_err());
}

#[test]
fn hostile_tensors_and_shapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    type Break = Box<dyn Fn(&mut Spec)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "external.onnx",
            Box::new(|s| s.initializers[0].external = true),
            "initializer `half` keeps its data in an external file",
        ),
        (
            "short.onnx",
            Box::new(|s| s.initializers[1].dims = vec![1, 4, 1, 1]),
            "has dims [1, 4, 1, 1] (4 values) but holds 3 values",
        ),
        (
            "huge_init.onnx",
            Box::new(|s| s.initializers[1].dims = vec![1 << 40, 1 << 40]),
            "more values than a model file can hold",
        ),
        (
            "negative.onnx",
            Box::new(|s| s.initializers[1].dims = vec![-3]),
            "negative dimension",
        ),
        (
            "ragged.onnx",
            Box::new(|s| s.initializers[1].raw.push(0)),
            "not a whole number of 4-byte values",
        ),
        // Input dims past u32 used to wrap (2^32 + 32 read as 32).
        (
            "wrap.onnx",
            Box::new(|s| {
                s.metadata.clear();
                for io in s.inputs.iter_mut().chain(s.outputs.iter_mut()) {
                    io.dims[2] = Some((1 << 32) + 32);
                    io.dims[3] = Some((1 << 32) + 32);
                }
            }),
            "has a dimension of 4294967328",
        ),
        (
            "big_meta.onnx",
            Box::new(|s| {
                s.metadata = vec![(facerecon_runtime::model::keys::IMAGE_SIZE.into(), "100000".into())];
                for io in s.inputs.iter_mut().chain(s.outputs.iter_mut()) {
                    io.dims[2] = None;
                    io.dims[3] = None;
                }
            }),
            "image size 100000 is larger than the 4096 accepted",
        ),
        (
            "big_batch.onnx",
            Box::new(|s| {
                for io in s.inputs.iter_mut().chain(s.outputs.iter_mut()) {
                    io.dims[0] = Some(1 << 20);
                }
            }),
            "has a dimension of 1048576",
        ),
        (
            "f64_input.onnx",
            Box::new(|s| s.inputs[0].dtype = DOUBLE),
            "bound to different types",
        ),
        (
            "no_inpainted.onnx",
            Box::new(|s| {
                s.outputs.pop();
                s.nodes.pop();
            }),
            "no output named `inpainted`",
        ),
        (
            "extra_input.onnx",
            Box::new(|s| s.inputs.push(Io::new("extra", &[None, Some(1), Some(32), Some(32)]))),
            "the model has 3 inputs",
        ),
        (
            "rank3.onnx",
            Box::new(|s| {
                s.inputs[0].dims.remove(0);
            }),
            "rank 3",
        ),
    ];
    for (name, edit, want) in cases {
        let mut s = Spec::default();
        edit(&mut s);
        assert_refused(&s.write(d, name), want);
    }
}

#[test]
fn garbage_and_truncated_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, bytes, want) in [
        ("empty.onnx", Vec::new(), "no graph"),
        ("text.onnx", b"this is not a model\n".to_vec(), ""),
        ("ff.onnx", vec![0xff; 64], "malformed protobuf"),
        ("group.onnx", vec![0x0b, 0x0c], "wire type 3"),
    ] {
        let path = d.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_refused(&path, want);
    }
    // Every prefix of a valid model: refused with the file named, or (cut between whole fields that
    // are not needed, e.g. before the metadata) a model that loads and validates.
    let good = std::fs::read(fixture("identity.onnx")).unwrap();
    let path = d.join("cut.onnx");
    let mut truncated_msgs = 0;
    for len in (0..good.len()).step_by(7) {
        std::fs::write(&path, &good[..len]).unwrap();
        match Runtime::load(&path, &options()) {
            Ok(rt) => assert_eq!(rt.info().image_size, 32),
            Err(e @ RuntimeError::InvalidModel { .. }) => {
                let text = e.to_string();
                assert!(text.contains("cut.onnx"), "{text}");
                truncated_msgs += text.contains("truncated") as usize;
            }
            Err(e) => panic!("prefix {len}: {e}"),
        }
    }
    assert!(truncated_msgs > 10, "{truncated_msgs}");
}
