//! Property / fuzz tests of model loading (issue 15, systematic part): random byte mutations of a valid
//! model and randomly broken hand-encoded models never crash or hang the runtime; each load is a
//! validated model or an `InvalidModel` error naming the file.
//!
//! Cases per property: FACERECON_FUZZ_CASES (default small, for `make test`); `make fuzz` runs many.
//! A failure prints proptest's minimised input: keep it as a case in tests/hostile.rs.

mod common;

use common::{fuzz_cases, options, Spec, Tensor, DOUBLE, FLOAT, FLOAT16};
use facerecon_runtime::{model::scan_onnx, Runtime, RuntimeError};
use proptest::prelude::*;

/// Load `bytes` as a model file: Ok (it must then be a 32x32 model) or InvalidModel naming the file.
fn load_is_total(dir: &std::path::Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = dir.join("fuzzed.onnx");
    std::fs::write(&path, bytes).unwrap();
    match Runtime::load(&path, &options()) {
        Ok(rt) => {
            prop_assert!(rt.info().image_size > 0 && rt.info().image_size <= 4096);
        }
        Err(e @ RuntimeError::InvalidModel { .. }) => {
            prop_assert!(e.to_string().contains("fuzzed.onnx"), "{}", e);
        }
        Err(e) => return Err(TestCaseError::fail(format!("not an InvalidModel error: {e}"))),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x ^= b;
            }
        }
        Mutation::Set(i, b) => {
            if let Some(x) = bytes.get_mut(i % len) {
                *x = *b;
            }
        }
        Mutation::Insert(i, v) => {
            let at = i % (bytes.len() + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let at = i % len;
            let end = (at + n).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::Truncate(n) => bytes.truncate(n % len),
    }
}

/// A hand-encoded model with one random defect (or none).
fn broken_spec() -> impl Strategy<Value = Spec> {
    let value = prop_oneof![
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(3e38f32),
        -2.0f32..2.0,
    ];
    let dim = prop_oneof![
        Just(None),
        Just(Some(-1i64)),
        Just(Some(0)),
        (1i64..70).prop_map(Some),
        Just(Some(1 << 31)),
        Just(Some((1 << 32) + 32)),
        Just(Some(i64::MAX))
    ];
    (
        value.clone(),
        prop::array::uniform3(value),
        0usize..10,
        prop::collection::vec(dim, 3..6),
        prop::collection::vec(-5i64..70, 0..5),
        prop_oneof![Just(FLOAT), Just(DOUBLE), Just(FLOAT16), 0u64..25],
        any::<bool>(),
        prop_oneof![
            Just("32".to_string()),
            Just("0".to_string()),
            Just("99999".to_string()),
            "[0-9a-z-]{0,6}"
        ],
    )
        .prop_map(|(half, bias, defect, dims, init_dims, dtype, external, size)| {
            let mut s = Spec::identity(half, bias);
            match defect {
                0 => {}
                1 => s.inputs[0].dims = dims,
                2 => s.outputs[1].dims = dims,
                3 => s.initializers[1].dims = init_dims,
                4 => s.initializers[2].dtype = dtype,
                5 => s.initializers[0].external = external,
                6 => s.metadata = vec![(facerecon_runtime::model::keys::IMAGE_SIZE.into(), size)],
                7 => s.inputs[1].dtype = dtype,
                8 => {
                    s.outputs.swap(0, 1);
                }
                _ => s.initializers.push(Tensor {
                    dtype,
                    dims: init_dims,
                    ..Tensor::f32("extra", &[], &[half])
                }),
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_valid_model_never_crashes_the_loader(muts in prop::collection::vec(mutation(), 1..6)) {
        let mut bytes = std::fs::read(common::fixture("identity.onnx")).unwrap();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let dir = tempfile::tempdir().unwrap();
        load_is_total(dir.path(), &bytes)?;
    }

    #[test]
    fn broken_models_are_loaded_valid_or_refused(spec in broken_spec()) {
        let dir = tempfile::tempdir().unwrap();
        load_is_total(dir.path(), &spec.encode())?;
        // Whatever loaded has finite weights: the load check let nothing non-finite through.
        let nonfinite = |t: &Tensor| t.dtype == FLOAT && t.raw.chunks_exact(4).any(|c| !f32::from_le_bytes(c.try_into().unwrap()).is_finite());
        if spec.initializers.iter().any(|t| nonfinite(t) && !t.external) {
            prop_assert!(Runtime::load(dir.path().join("fuzzed.onnx"), &options()).is_err());
        }
    }
}

proptest! {
    // The scanner alone is pure Rust and fast: many more cases.
    #![proptest_config(ProptestConfig { cases: fuzz_cases(48) * 20, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn scanner_is_total_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = scan_onnx(&bytes);
    }

    #[test]
    fn scanner_is_total_on_mutated_models(muts in prop::collection::vec(mutation(), 1..10)) {
        let mut bytes = Spec::default().encode();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let _ = scan_onnx(&bytes);
    }
}
