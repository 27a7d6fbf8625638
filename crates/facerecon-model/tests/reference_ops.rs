//! `layers::set_reference_ops`: candle's plain ops must give the fast kernels' forward values and
//! gradients (up to summation order). Its own test binary, because the switch is process-wide and
//! would otherwise change the ops under the crate's other tests running in parallel.
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use facerecon_model::{layers, random_weights, Model, ModelSpec};
use std::collections::HashMap;

fn tiny_spec() -> ModelSpec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/tiny.yaml");
    let config: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    ModelSpec::from_yaml(&serde_yaml::to_string(&config["model"]).unwrap()).unwrap()
}

/// Reconstruction and every parameter's gradient of `mean(rec^2)`, with the current ops.
fn forward_backward(
    spec: &ModelSpec,
    vars: &HashMap<String, Var>,
    img: &Tensor,
    mask: &Tensor,
) -> (Vec<f32>, HashMap<String, Vec<f32>>) {
    let dev = Device::Cpu;
    let tensors = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    let model = Model::new(spec, VarBuilder::from_tensors(tensors, DType::F32, &dev)).unwrap();
    let (rec, _) = model.forward(img, mask).unwrap();
    let grads = rec.sqr().unwrap().mean_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let g = vars
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                flat(grads.get(v).unwrap_or_else(|| panic!("no gradient for {k}"))),
            )
        })
        .collect();
    (flat(&rec), g)
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn reference_ops_match_fast_kernels_forward_and_backward() {
    let spec = tiny_spec();
    let dev = Device::Cpu;
    let weights = random_weights(&spec, 7, 0.2, &dev).unwrap();
    let vars: HashMap<String, Var> = weights
        .into_iter()
        .map(|(k, t)| (k, Var::from_tensor(&t).unwrap()))
        .collect();
    let s = spec.image_size;
    let img = Tensor::rand(0f32, 1.0, (3, 3, s, s), &dev).unwrap();
    let mask = Tensor::zeros((3, 1, s, s), DType::F32, &dev)
        .unwrap()
        .slice_assign(
            &[0..3, 0..1, 4..12, 10..20],
            &Tensor::ones((3, 1, 8, 10), DType::F32, &dev).unwrap(),
        )
        .unwrap();

    assert!(!layers::reference_ops());
    let (fast_rec, fast_grads) = forward_backward(&spec, &vars, &img, &mask);
    layers::set_reference_ops(true);
    assert!(layers::reference_ops());
    let (ref_rec, ref_grads) = forward_backward(&spec, &vars, &img, &mask);
    layers::set_reference_ops(false);

    let d = max_rel_diff(&ref_rec, &fast_rec);
    assert!(
        d < 1e-5,
        "reconstruction differs by {d} (relative to its largest value)"
    );
    assert_eq!(fast_grads.len(), ref_grads.len());
    for (name, g) in &ref_grads {
        let d = max_rel_diff(g, &fast_grads[name]);
        assert!(
            d < 1e-4,
            "gradient of {name} differs by {d} (relative to its largest value)"
        );
    }
}
