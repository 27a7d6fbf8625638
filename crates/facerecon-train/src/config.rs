//! The run configuration (`configs/*.yaml`): plain data, read with serde.
//!
//! Every section but `model` has defaults; unknown keys are errors (a typo in a hyper-parameter
//! must not silently train with the default). The resolved config (defaults filled in, command
//! line overrides applied) is written next to each checkpoint as `config.yaml`.

use facerecon_imaging::masks::{MaskSampler, MaskSpec};
use facerecon_model::ModelSpec;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Errors reading or checking a config file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The YAML does not parse or does not fit the schema (unknown key, wrong type).
    #[error("cannot parse config {path}: {source}")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// The YAML parser's error.
        source: serde_yaml::Error,
    },
    /// The values are inconsistent (the message says which and why).
    #[error("invalid config {path}: {msg}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// A whole run: the network, the masks it learns to fill, and how to train it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run / model name (the default output directory is `runs/NAME`).
    #[serde(default = "default_name")]
    pub name: String,
    /// The architecture (see `facerecon_model::spec`).
    pub model: ModelSpec,
    /// Weighted mixture of mask generators; default: the tutorial's one 28x28 box.
    #[serde(default = "default_masks")]
    pub masks: Vec<MaskSpec>,
    /// Batch size, epochs, optimiser, schedule, loss, validation, checkpoints.
    #[serde(default)]
    pub train: TrainConfig,
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Images per optimiser step.
    pub batch_size: usize,
    /// Epochs in the whole run (a resumed run continues up to it).
    pub epochs: usize,
    /// Which optimiser and its settings.
    pub optimizer: OptimizerConfig,
    /// How the learning rate changes over the run.
    pub lr_schedule: LrSchedule,
    /// The per-pixel loss and its hole weight.
    pub loss: LossConfig,
    /// Fraction of the files (by file-name hash) held out for validation.
    pub validation_fraction: f64,
    /// Cap on the validation set, which is decoded once and kept in memory.
    pub max_val_images: usize,
    /// Random horizontal flips of training images.
    pub flip: bool,
    /// Seed of the initial weights, shuffles, masks and flips (the command line's `--seed` overrides it).
    pub seed: u64,
    /// Minutes between mid-epoch checkpoints (0 = only at the end of each epoch).
    pub checkpoint_minutes: f64,
    /// Steps between plain log lines when stderr is not a terminal.
    pub log_every: usize,
    /// Adversarial fine-tuning (a discriminator and its losses, [`crate::adversarial`]); absent = the
    /// pixel loss alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adversarial: Option<AdversarialConfig>,
    /// Data augmentation of the training images ([`crate::data::augment`]); absent = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub augment: Option<AugmentConfig>,
    /// Distillation from a trained model ([`crate::distill`]); absent = the original images alone are
    /// the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillConfig>,
}

/// `train.distill`: a teacher (an exported fp32 facerecon model, e.g. `exported/unet.onnx`) whose fill
/// becomes part of the target inside the hole. With the per-pixel loss `L(r, t)`, the step minimises
/// `L(r, original + weight * mask * (teacher - original))`: for MSE that is, up to a constant,
/// `(1 - weight) * L(r, original) + weight * L(r, teacher)` inside the hole, and the original outside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// The teacher's ONNX file (as facerecon-export writes it: fp32, its config in the metadata), relative
    /// to the working directory.
    pub teacher: std::path::PathBuf,
    /// Share of the teacher's fill in the hole's target, in (0, 1].
    #[serde(default = "default_distill_weight")]
    pub weight: f64,
}

fn default_distill_weight() -> f64 {
    0.5
}

/// `train.adversarial`: the discriminator and the generator's extra losses (see [`crate::adversarial`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdversarialConfig {
    /// Weight of the generator's hinge term `-mean(D(fake))`.
    pub weight: f64,
    /// Weight of the feature-matching term (L1 between the discriminator's hidden features of fake and real).
    pub feature_matching: f64,
    /// Weight of an L1 loss on image gradients (finite differences) in the crop; 0 = off.
    pub gradient: f64,
    /// The discriminator's Adam learning rate (scaled by the generator's schedule).
    pub d_lr: f64,
    /// The discriminator's Adam beta1.
    pub d_beta1: f64,
    /// The discriminator's Adam beta2.
    pub d_beta2: f64,
    /// Channels of the discriminator's first layer (doubled by each further stride-2 layer).
    pub d_channels: usize,
    /// Stride-2 layers (the patch logits are `crop / 2^d_layers` on a side).
    pub d_layers: usize,
    /// Side of the square crop around each hole that the discriminator sees.
    pub crop: usize,
}

impl Default for AdversarialConfig {
    fn default() -> Self {
        AdversarialConfig {
            weight: 0.01,
            feature_matching: 0.1,
            gradient: 0.0,
            d_lr: 2e-4,
            d_beta1: 0.5,
            d_beta2: 0.999,
            d_channels: 32,
            d_layers: 3,
            crop: 64,
        }
    }
}

/// `train.augment`: random framing, rotation and colour changes of each training image (before the
/// mask is drawn), deterministic given the run's seed, the epoch and the file. Validation images are
/// never augmented.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AugmentConfig {
    /// Smallest zoom factor (< 1 zooms out: the face gets smaller, the border is filled by reflection).
    pub scale_min: f64,
    /// Largest zoom factor (> 1 zooms in).
    pub scale_max: f64,
    /// Largest shift, as a fraction of the image side, in each direction.
    pub translate: f64,
    /// Largest rotation in degrees, either way.
    pub rotate_deg: f64,
    /// Largest brightness change (added, fraction of full scale), either way.
    pub brightness: f64,
    /// Largest contrast change (relative, about the image's mean), either way.
    pub contrast: f64,
    /// Largest saturation change (relative, about each pixel's grey), either way.
    pub saturation: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            scale_min: 0.75,
            scale_max: 1.15,
            translate: 0.05,
            rotate_deg: 10.0,
            brightness: 0.08,
            contrast: 0.1,
            saturation: 0.1,
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 64,
            epochs: 50,
            optimizer: OptimizerConfig::default(),
            lr_schedule: LrSchedule::default(),
            loss: LossConfig::default(),
            validation_fraction: 0.05,
            max_val_images: 500,
            flip: false,
            seed: 42,
            checkpoint_minutes: 10.0,
            log_every: 50,
            adversarial: None,
            augment: None,
            distill: None,
        }
    }
}

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (Keras' defaults: beta1 0.9, beta2 0.999, eps 1e-7).
    Adam,
    /// Stochastic gradient descent, with optional momentum.
    Sgd,
    /// RMSprop (Keras' semantics: `rho`, `momentum`, `eps`).
    Rmsprop,
}

/// Optimiser settings (Keras names and defaults; fields a kind does not use are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimizerConfig {
    /// Which optimiser.
    pub kind: OptimizerKind,
    /// Base learning rate (the schedule scales it).
    pub lr: f64,
    /// Adam.
    pub beta1: f64,
    /// Adam.
    pub beta2: f64,
    /// Adam and RMSprop.
    pub eps: f64,
    /// SGD and RMSprop.
    pub momentum: f64,
    /// RMSprop's decay of the mean square.
    pub rho: f64,
    /// Decoupled weight decay (`w -= lr * weight_decay * w`), all kinds.
    pub weight_decay: f64,
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig {
            kind: OptimizerKind::Adam,
            lr: 0.001,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            momentum: 0.0,
            rho: 0.9,
            weight_decay: 0.0,
        }
    }
}

/// Shape of the learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// The base rate throughout (after any warm-up).
    #[default]
    Constant,
    /// Cosine decay from the base rate to `min_lr` by the run's last step.
    Cosine,
    /// Multiplied by `gamma` every `step_epochs` epochs.
    Step,
}

/// Learning-rate schedule: linear warm-up from 0 over `warmup_steps`, then constant, cosine decay
/// to `min_lr` by the last step, or multiplied by `gamma` every `step_epochs` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LrSchedule {
    /// The schedule's shape.
    pub kind: ScheduleKind,
    /// Steps of linear warm-up from 0 (0 = none).
    pub warmup_steps: usize,
    /// Where the cosine ends.
    pub min_lr: f64,
    /// `step`: epochs between two decays.
    pub step_epochs: usize,
    /// `step`: the factor of each decay.
    pub gamma: f64,
}

impl Default for LrSchedule {
    fn default() -> Self {
        LrSchedule {
            kind: ScheduleKind::Constant,
            warmup_steps: 0,
            min_lr: 0.0,
            step_epochs: 10,
            gamma: 0.5,
        }
    }
}

/// Which per-pixel loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Mean squared error (PSNR is an MSE metric).
    #[default]
    Mse,
    /// Binary cross-entropy (the tutorial's other loss; pixels in `[0,1]`).
    Bce,
    /// Mean absolute error (sharper fills than MSE).
    L1,
}

/// The loss: per-pixel `kind`, weighted `hole_weight` inside holes and 1 outside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// The per-pixel loss.
    pub kind: LossKind,
    /// Weight of hole pixels (known pixels weigh 1); > 1 focuses the training on the fill.
    pub hole_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            kind: LossKind::Mse,
            hole_weight: 1.0,
        }
    }
}

fn default_name() -> String {
    "run".into()
}

/// The tutorial's mask: one 28x28 box at a uniformly random position.
fn default_masks() -> Vec<MaskSpec> {
    // Parsed rather than constructed so this does not depend on the variant's field layout.
    serde_yaml::from_str("[{kind: box, min: 28, max: 28, weight: 1.0}]").expect("default mask spec parses")
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Config::from_yaml(&text, path)
    }

    /// Parse and validate YAML text; `path` is only used in error messages.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        config
            .validate()
            .map_err(|msg| ConfigError::Invalid { path: path.into(), msg })?;
        Ok(config)
    }

    /// Check everything that would otherwise fail later (or silently train nonsense).
    pub fn validate(&self) -> Result<(), String> {
        self.model.resolve().map_err(|e| format!("model: {e}"))?;
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            return Err(format!(
                "name '{}' must be non-empty and contain no path separator",
                self.name
            ));
        }
        if self.masks.is_empty() {
            return Err("masks: at least one mask generator is needed".into());
        }
        MaskSampler::new(&self.masks).map_err(|e| format!("masks: {e}"))?;
        let t = &self.train;
        let o = &t.optimizer;
        let checks: [(bool, &str); 12] = [
            (t.batch_size > 0, "train.batch_size must be > 0"),
            (t.epochs > 0, "train.epochs must be > 0"),
            (o.lr > 0.0 && o.lr.is_finite(), "train.optimizer.lr must be > 0"),
            ((0.0..1.0).contains(&o.beta1), "train.optimizer.beta1 must be in [0, 1)"),
            ((0.0..1.0).contains(&o.beta2), "train.optimizer.beta2 must be in [0, 1)"),
            (o.eps > 0.0, "train.optimizer.eps must be > 0"),
            (
                (0.0..1.0).contains(&o.momentum),
                "train.optimizer.momentum must be in [0, 1)",
            ),
            ((0.0..1.0).contains(&o.rho), "train.optimizer.rho must be in [0, 1)"),
            (o.weight_decay >= 0.0, "train.optimizer.weight_decay must be >= 0"),
            (t.loss.hole_weight > 0.0, "train.loss.hole_weight must be > 0"),
            (
                (0.0..1.0).contains(&t.validation_fraction),
                "train.validation_fraction must be in [0, 1)",
            ),
            (t.checkpoint_minutes >= 0.0, "train.checkpoint_minutes must be >= 0"),
        ];
        if let Some((_, msg)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(msg.to_string());
        }
        let s = &t.lr_schedule;
        if s.min_lr < 0.0 || s.min_lr > o.lr {
            return Err("train.lr_schedule.min_lr must be in [0, lr]".into());
        }
        if s.kind == ScheduleKind::Step && (s.step_epochs == 0 || s.gamma <= 0.0) {
            return Err("train.lr_schedule: step needs step_epochs > 0 and gamma > 0".into());
        }
        if t.log_every == 0 {
            return Err("train.log_every must be > 0".into());
        }
        if let Some(a) = &t.adversarial {
            let size = self.model.image_size;
            let checks: [(bool, String); 6] = [
                (
                    a.weight >= 0.0 && a.feature_matching >= 0.0 && a.gradient >= 0.0,
                    "train.adversarial: weight, feature_matching and gradient must be >= 0".into(),
                ),
                (a.d_lr > 0.0 && a.d_lr.is_finite(), "train.adversarial.d_lr must be > 0".into()),
                (
                    (0.0..1.0).contains(&a.d_beta1) && (0.0..1.0).contains(&a.d_beta2),
                    "train.adversarial: d_beta1 and d_beta2 must be in [0, 1)".into(),
                ),
                ((1..=5).contains(&a.d_layers), "train.adversarial.d_layers must be 1 to 5".into()),
                ((1..=256).contains(&a.d_channels), "train.adversarial.d_channels must be 1 to 256".into()),
                (
                    a.crop <= size && a.crop >= 1 << a.d_layers && a.crop.is_multiple_of(1 << a.d_layers),
                    format!(
                        "train.adversarial.crop {} must be at most the image size {size} and a multiple of 2^d_layers = {}",
                        a.crop,
                        1 << a.d_layers
                    ),
                ),
            ];
            if let Some((_, msg)) = checks.into_iter().find(|(ok, _)| !ok) {
                return Err(msg);
            }
        }
        if let Some(g) = &t.augment {
            let ok = g.scale_min > 0.0
                && g.scale_min <= g.scale_max
                && g.scale_max <= 4.0
                && (0.0..=0.5).contains(&g.translate)
                && (0.0..=45.0).contains(&g.rotate_deg)
                && (0.0..=1.0).contains(&g.brightness)
                && (0.0..=1.0).contains(&g.contrast)
                && (0.0..=1.0).contains(&g.saturation);
            if !ok {
                return Err("train.augment: needs 0 < scale_min <= scale_max <= 4, translate in [0, 0.5], rotate_deg in [0, 45], brightness, contrast and saturation in [0, 1]".into());
            }
        }
        if let Some(d) = &t.distill {
            if !(d.weight > 0.0 && d.weight <= 1.0) {
                return Err(format!("train.distill.weight must be in (0, 1], got {}", d.weight));
            }
            if d.teacher.as_os_str().is_empty() {
                return Err("train.distill.teacher must name the teacher's ONNX file".into());
            }
        }
        Ok(())
    }

    /// The config as YAML (what a checkpoint stores).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a config always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs")
    }

    #[test]
    fn repository_configs_load() {
        let seed = Config::load(&configs_dir().join("seed.yaml")).unwrap();
        assert_eq!(seed.name, "seed");
        assert_eq!(seed.train.batch_size, 64);
        assert_eq!(seed.train.epochs, 50);
        assert_eq!(seed.train.optimizer.kind, OptimizerKind::Adam);
        assert_eq!(seed.train.optimizer.lr, 0.001);
        assert_eq!(seed.train.optimizer.eps, 1e-7);
        assert_eq!(seed.train.loss.kind, LossKind::Mse);
        assert_eq!(seed.model.image_size, 128);
        let tiny = Config::load(&configs_dir().join("tiny.yaml")).unwrap();
        assert_eq!(tiny.model.image_size, 32);
        assert_eq!(tiny.train.loss.kind, LossKind::L1);
        assert_eq!(tiny.train.loss.hole_weight, 4.0);
        // Defaults fill what the file leaves out.
        assert_eq!(tiny.train.optimizer.beta2, 0.999);
        assert_eq!(tiny.train.lr_schedule.kind, ScheduleKind::Constant);
        assert_eq!(tiny.train.checkpoint_minutes, 10.0);
        // The resolved config round-trips.
        let again = Config::from_yaml(&tiny.to_yaml(), Path::new("x.yaml")).unwrap();
        assert_eq!(again, tiny);
    }

    #[test]
    fn only_the_model_is_required() {
        let tiny = std::fs::read_to_string(configs_dir().join("tiny.yaml")).unwrap();
        let model_only: String = {
            let v: serde_yaml::Value = serde_yaml::from_str(&tiny).unwrap();
            serde_yaml::to_string(&serde_yaml::Mapping::from_iter([("model".into(), v["model"].clone())])).unwrap()
        };
        let c = Config::from_yaml(&model_only, Path::new("m.yaml")).unwrap();
        assert_eq!(c.train, TrainConfig::default());
        assert_eq!(c.masks.len(), 1);
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let tiny = std::fs::read_to_string(configs_dir().join("tiny.yaml")).unwrap();
        let p = Path::new("bad.yaml");

        let e = Config::from_yaml(&tiny.replace("epochs: 2", "epochs: 2\n  epoch: 3"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("epoch"), "{e}");

        let e = Config::from_yaml(&tiny.replace("lr: 0.003", "lr: 0.0"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("lr must be > 0"), "{e}");

        let e = Config::from_yaml(&tiny.replace("batch_size: 8", "batch_size: 0"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size"), "{e}");

        let e = Config::from_yaml(&tiny.replace("kind: adam", "kind: adagrad"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("adagrad"), "{e}");

        // The model is checked too (reshape no longer matches the dense layer).
        let e = Config::from_yaml(&tiny.replace("units: 512", "units: 500"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("reshape"), "{e}");

        let e = Config::load(Path::new("/nonexistent/dir/c.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/dir/c.yaml"), "{e}");
    }

    #[test]
    fn distill_section_defaults_and_checks() {
        let tiny = std::fs::read_to_string(configs_dir().join("tiny.yaml")).unwrap();
        let p = Path::new("kd.yaml");
        let with = |section: &str| tiny.replace("batch_size: 8", &format!("batch_size: 8\n  distill: {section}"));
        let c = Config::from_yaml(&with("{teacher: exported/unet.onnx}"), p).unwrap();
        let d = c.train.distill.as_ref().unwrap();
        assert_eq!((d.teacher.as_path(), d.weight), (Path::new("exported/unet.onnx"), 0.5));
        assert_eq!(Config::from_yaml(&c.to_yaml(), p).unwrap(), c, "round-trips");
        for bad in ["0.0", "1.5", "-0.2", ".nan"] {
            let e = Config::from_yaml(&with(&format!("{{teacher: t.onnx, weight: {bad}}}")), p)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("kd.yaml") && e.contains("train.distill.weight"),
                "{bad}: {e}"
            );
        }
        let e = Config::from_yaml(&with("{weight: 0.5}"), p).unwrap_err().to_string();
        assert!(e.contains("teacher"), "{e}");
        let e = Config::from_yaml(&with("{teacher: t.onnx, wieght: 0.5}"), p)
            .unwrap_err()
            .to_string();
        assert!(e.contains("wieght"), "{e}");
    }

    /// Every section rejects keys it does not know, with the key in the message: the train section and
    /// its subsections, each mask kind (internally tagged by `kind`), each layer kind of the model.
    #[test]
    fn unknown_keys_anywhere_are_errors() {
        let tiny = std::fs::read_to_string(configs_dir().join("tiny.yaml")).unwrap();
        let p = Path::new("typo.yaml");
        let cases = [
            (
                "batch_size: 8",
                "batch_size: 8\n  checkpoint_step: 5",
                "checkpoint_step",
            ),
            ("{kind: adam, lr: 0.003}", "{kind: adam, lr: 0.003, beta: 0.5}", "beta"),
            (
                "{kind: l1, hole_weight: 4.0}",
                "{kind: l1, hole_weigth: 4.0}",
                "hole_weigth",
            ),
            (
                "max_val_images: 16",
                "max_val_images: 16\n  lr_schedule: {kind: cosine, warmup: 3}",
                "warmup",
            ),
            (
                "{kind: box, min: 6, max: 12, weight: 1.0}",
                "{kind: box, min: 6, max: 12, wieght: 1.0}",
                "wieght",
            ),
            (
                "{kind: box, min: 6, max: 12, weight: 1.0}",
                "{kind: boxes, min: 6, max: 12, count_min: 1, count_max: 2, count: 3}",
                "count",
            ),
            (
                "{kind: box, min: 6, max: 12, weight: 1.0}",
                "{kind: strokes, width_min: 2, width_max: 4, count_min: 1, count_max: 2, widht: 3}",
                "widht",
            ),
            (
                "{op: conv2d, name: enc1, filters: 8, kernel: 3, stride: 2, padding: same}",
                "{op: conv2d, name: enc1, filters: 8, kernel: 3, stride: 2, padding: same, dilaton: 2}",
                "dilaton",
            ),
            ("{op: sigmoid}", "{op: sigmoid, slope: 5}", "slope"),
            ("name: tiny", "name: tiny\nmodle: {}", "modle"),
        ];
        for (from, to, key) in cases {
            assert!(tiny.contains(from), "{from}");
            let e = Config::from_yaml(&tiny.replacen(from, to, 1), p)
                .unwrap_err()
                .to_string();
            assert!(e.contains("typo.yaml") && e.contains(key), "{to}: {e}");
        }
    }
}
