//! The runtime's errors keep ONNX Runtime's error as their source. Needs ONNX Runtime (`make test`
//! sets ORT_DYLIB_PATH).

mod common;

use std::error::Error;

use common::{options, Spec, Tensor};
use facerecon_runtime::{Runtime, RuntimeError};

/// A model that loads (the batch is symbolic) but fails inside ONNX Runtime for a batch of 3: its
/// bias has a batch axis of 2, which does not broadcast against 3 images.
#[test]
fn an_ort_failure_keeps_ort_error_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = Spec::default();
    let bias = spec.initializers.iter_mut().find(|t| t.name == "bias").unwrap();
    *bias = Tensor::f32("bias", &[2, 3, 1, 1], &[0.1, 0.3, 0.5, 0.1, 0.3, 0.5]);
    let rt = Runtime::load(spec.write(dir.path(), "batch2.onnx"), &options()).unwrap();
    let s = rt.info().image_size as usize;
    // Batch 2 runs: the model itself is fine.
    rt.run_tensors(&vec![0.5; 2 * 3 * s * s], &vec![0.0; 2 * s * s], 2)
        .unwrap();

    let err = rt
        .run_tensors(&vec![0.5; 3 * 3 * s * s], &vec![0.0; 3 * s * s], 3)
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Ort { .. }), "{err:?}");
    let source = err.source().expect("ONNX Runtime's error as the source");
    let ort = source
        .downcast_ref::<ort::Error>()
        .unwrap_or_else(|| panic!("the source is not an ort::Error: {source:?}"));
    assert!(!ort.message().is_empty());
    // The message names the model and the step, and still carries ONNX Runtime's words.
    let text = err.to_string();
    assert!(text.contains("batch2.onnx (run)"), "{text}");
    assert!(text.ends_with(&source.to_string()), "{text}");
}
