//! Distillation (`train.distill`): a trained teacher's fill becomes part of the target inside the hole.
//!
//! Why: a small network (the edge model, 157 MFLOP) trained on the originals alone chases each face's
//! unpredictable detail; the teacher's fill (exported/unet.onnx, 669 MFLOP, ~1 dB better in the hole) is
//! an estimate of the conditional mean that the MSE-optimal student wants anyway, with less noise. The
//! target blends both: `original + weight * mask * (teacher - original)`. Outside the hole the target
//! stays the original (the teacher's raw output there is never used by the composite either).
//!
//! The teacher is an exported fp32 facerecon model: its initializers are the weights and its metadata
//! holds the config it was trained from, so the trainer rebuilds it as a candle [`Model`] with plain
//! tensors (no variables: nothing of the teacher is tracked for the backward pass) and runs it on the
//! same input as the student, in the same step.

use crate::checkpoint::OnnxExport;
use crate::config::DistillConfig;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use facerecon_model::{Model, ModelSpec};
use std::collections::HashMap;
use std::path::Path;

/// A loaded teacher and the share of its fill in the target.
pub struct Teacher {
    model: Model,
    weight: f64,
    name: String,
}

impl Teacher {
    /// Load `cfg.teacher` for a student of `student` (same image size and channels: the teacher sees
    /// the student's input).
    pub fn load(cfg: &DistillConfig, student: &ModelSpec, device: &Device) -> Result<Teacher> {
        let (spec, weights, name) = read_onnx_model(&cfg.teacher, device)?;
        let path = cfg.teacher.display();
        if (spec.image_size, spec.channels) != (student.image_size, student.channels) {
            bail!(
                "train.distill.teacher {path}: the teacher takes {}x{} images with {} channels, this model {}x{} with {}",
                spec.image_size,
                spec.image_size,
                spec.channels,
                student.image_size,
                student.image_size,
                student.channels
            );
        }
        let model = Model::new(&spec, VarBuilder::from_tensors(weights, DType::F32, device))
            .with_context(|| format!("train.distill.teacher {path}: building its model"))?;
        Ok(Teacher {
            model,
            weight: cfg.weight,
            name,
        })
    }

    /// The teacher's name (its config's `name`, else the file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The step's target for the student: `image` (the originals, `[N,C,S,S]`) with the teacher's fill
    /// of `input` (holes zeroed) blended in where `mask` (`[N,1,S,S]`, 1 = hole) says.
    pub fn target(&self, input: &Tensor, mask: &Tensor, image: &Tensor) -> Result<Tensor> {
        let fill = self.model.reconstruct(input, mask)?.detach();
        let share = mask.affine(self.weight, 0.0)?;
        Ok((image + (fill - image)?.broadcast_mul(&share)?)?)
    }
}

/// The teacher file read back: its model spec (from the config in its metadata, which a teacher must
/// have), its weights by parameter name, and its name.
fn read_onnx_model(path: &Path, device: &Device) -> Result<(ModelSpec, HashMap<String, Tensor>, String)> {
    let label = format!("train.distill.teacher {}", path.display());
    let export = OnnxExport::read(path, &label)?;
    let spec = export.spec.clone().with_context(|| {
        format!(
            "{label}: no '{}' metadata, so its network is unknown (not a facerecon export?)",
            facerecon_contract::keys::CONFIG
        )
    })?;
    let shapes = spec.parameters().with_context(|| format!("{label}: its model spec"))?;
    let weights = export.weights(&shapes, "its model", device)?;
    Ok((spec, weights, export.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_spec() -> ModelSpec {
        let c = crate::Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml")).unwrap();
        c.model
    }

    /// The blended target: the original outside the hole (bit for bit), the teacher's fill inside it at
    /// weight 1, and the mean of both at weight 0.5.
    #[test]
    fn target_blends_the_fill_into_the_hole_only() {
        let spec = tiny_spec();
        let dev = Device::Cpu;
        let weights = facerecon_model::random_weights(&spec, 7, 0.1, &dev).unwrap();
        let model = Model::new(&spec, VarBuilder::from_tensors(weights, DType::F32, &dev)).unwrap();
        let s = spec.image_size;
        let image = Tensor::rand(0f32, 1f32, (2, spec.channels, s, s), &dev).unwrap();
        let mut m = vec![0f32; 2 * s * s];
        for y in 4..12 {
            for x in 6..14 {
                m[y * s + x] = 1.0;
                m[s * s + (y + 3) * s + x + 5] = 1.0;
            }
        }
        let mask = Tensor::from_vec(m.clone(), (2, 1, s, s), &dev).unwrap();
        let input = image.broadcast_mul(&mask.affine(-1.0, 1.0).unwrap()).unwrap();
        let fill: Vec<f32> = model
            .reconstruct(&input, &mask)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let orig: Vec<f32> = image.flatten_all().unwrap().to_vec1().unwrap();
        for weight in [1.0, 0.5] {
            let t = Teacher {
                model: Model::new(
                    &spec,
                    VarBuilder::from_tensors(
                        facerecon_model::random_weights(&spec, 7, 0.1, &dev).unwrap(),
                        DType::F32,
                        &dev,
                    ),
                )
                .unwrap(),
                weight,
                name: "t".into(),
            };
            let got: Vec<f32> = t
                .target(&input, &mask, &image)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let c = spec.channels;
            for (i, (&g, (&o, &f))) in got.iter().zip(orig.iter().zip(&fill)).enumerate() {
                let (n, p) = (i / (c * s * s), i % (s * s));
                if m[n * s * s + p] == 0.0 {
                    assert_eq!(g, o, "outside the hole the target is the original ({i})");
                } else {
                    let want = o + weight as f32 * (f - o);
                    assert!((g - want).abs() < 1e-6, "{i}: {g} vs {want} (weight {weight})");
                }
            }
            assert!(
                got.iter().zip(&orig).any(|(g, o)| (g - o).abs() > 1e-3),
                "the fill changes the hole"
            );
        }
    }
}
