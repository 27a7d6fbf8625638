//! Adversarial training (`train.adversarial`) and augmentation (`train.augment`) through the binary: a
//! run killed at the trainer's crash points (inside checkpoint writes, the discriminator's file included)
//! and resumed each time ends with the same generator, discriminator, optimiser states and metrics as an
//! uninterrupted run; its metrics carry the discriminator's and generator's losses; a config without the
//! sections writes nothing new.
mod common;

use facerecon_train::checkpoint::{DISCRIMINATOR_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use facerecon_train::MetricsRecord;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// tiny.yaml with the adversarial and augmentation sections and a checkpoint after every step.
fn config(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(common::tiny_config()).unwrap();
    assert!(yaml.contains("max_val_images: 16"));
    let yaml = yaml.replace(
        "max_val_images: 16",
        "max_val_images: 16\n  checkpoint_minutes: 1.0e-9\n  \
         adversarial: {weight: 0.1, feature_matching: 0.5, gradient: 0.2, crop: 16, d_channels: 4, d_layers: 2}\n  \
         augment: {scale_min: 0.8, scale_max: 1.1, rotate_deg: 8.0}",
    );
    let path = dir.join("adv.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn train(config: &Path, data: &Path, out: &Path, crash_at: Option<u64>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facerecon-train"));
    c.args([
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["--seed", "7", "--batch-size", "4", "--threads", "2", "--resume"]);
    match crash_at {
        Some(n) => c.env("FACERECON_CRASH_POINT", n.to_string()),
        None => c.env_remove("FACERECON_CRASH_POINT"),
    };
    c.output().unwrap()
}

fn read(p: PathBuf) -> Vec<u8> {
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn metrics(out: &Path) -> Vec<MetricsRecord> {
    MetricsRecord::parse_all(&std::fs::read_to_string(out.join(METRICS_FILE)).unwrap()).unwrap()
}

#[test]
fn a_killed_and_resumed_adversarial_run_equals_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, reference, crashed) = (
        tmp.path().join("faces"),
        tmp.path().join("ref"),
        tmp.path().join("crashed"),
    );
    common::write_images(&data, 24, 40, 36);
    let cfg = config(tmp.path());
    let o = train(&cfg, &data, &reference, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Kill points spread over the run: between the files of a checkpoint (the discriminator's file is
    // the sixth), before and after the switch, after a step. Each resume counts its crash points anew.
    let mut kills = 0;
    for point in [3u64, 8, 6, 13, 2, 9, 7, 5] {
        let o = train(&cfg, &data, &crashed, Some(point));
        if o.status.success() {
            break;
        }
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("FACERECON_CRASH_POINT"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        kills += 1;
    }
    assert!(kills >= 3, "the run was killed {kills} times");
    let o = train(&cfg, &data, &crashed, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Tensors bit for bit, metadata as a map (safetensors does not fix the order of its keys; see crash.rs).
    let tensors = |dir: &Path, f: &str| {
        let bytes = read(dir.join("current").join(f));
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut t: Vec<(String, Vec<usize>, Vec<u8>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec(), v.data().to_vec()))
            .collect();
        t.sort();
        (t, meta.metadata().clone())
    };
    for f in [MODEL_FILE, OPTIMIZER_FILE, DISCRIMINATOR_FILE] {
        let (a, b) = (tensors(&reference, f), tensors(&crashed, f));
        assert!(!a.0.is_empty(), "{f}");
        assert!(a == b, "{f} differs after {kills} kills: {:?} vs {:?}", a.1, b.1);
    }
    let (a, b) = (metrics(&reference), metrics(&crashed));
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 2);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.epoch, x.step, x.train_loss), (y.epoch, y.step, y.train_loss));
        assert_eq!((x.psnr_full, x.psnr_hole), (y.psnr_full, y.psnr_hole));
        for name in ["d_loss", "g_adv", "feature_matching", "gradient_loss"] {
            let v = x.extra[name].as_f64().unwrap();
            assert!(v.is_finite(), "{name} {v}");
            assert_eq!(x.extra[name], y.extra[name], "{name}");
        }
        // The hinge loss of a discriminator that has not won yet: around 2 (1 + 1), never negative.
        assert!(x.extra["d_loss"].as_f64().unwrap() > 0.0);
    }
    // The generator-only weights file: the discriminator is in its own file.
    let (model, _) =
        facerecon_train::checkpoint::load_tensors(&reference.join(MODEL_FILE), &candle_core::Device::Cpu).unwrap();
    assert!(
        model.keys().all(|k| !k.starts_with("d0") && !k.contains('/')),
        "{:?}",
        model.keys()
    );
}

/// Without `train.adversarial` / `train.augment` nothing new is written: no discriminator file, no
/// new keys in config.yaml, state.json or the metrics.
#[test]
fn without_the_sections_a_run_writes_what_it_wrote_before() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("faces"), tmp.path().join("plain"));
    common::write_images(&data, 12, 32, 32);
    let o = train(&common::tiny_config(), &data, &out, None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.join("current").join(DISCRIMINATOR_FILE).exists());
    let config = std::fs::read_to_string(out.join("config.yaml")).unwrap();
    assert!(
        !config.contains("adversarial") && !config.contains("augment"),
        "{config}"
    );
    let state = std::fs::read_to_string(out.join(STATE_FILE)).unwrap();
    assert!(!state.contains("epoch_adversarial"), "{state}");
    assert!(metrics(&out).iter().all(|r| r.extra.is_empty()));
}

/// A crop that does not fit the image, or is not a multiple of the discriminator's strides, is refused
/// with the key named.
#[test]
fn bad_adversarial_and_augment_settings_are_refused() {
    let tiny = std::fs::read_to_string(common::tiny_config()).unwrap();
    let p = Path::new("adv.yaml");
    let cases = [
        ("adversarial: {crop: 64}", "crop 64"),
        ("adversarial: {crop: 18, d_layers: 2}", "crop 18"),
        ("adversarial: {d_lr: 0.0, crop: 16}", "d_lr"),
        ("adversarial: {crop: 16, d_chanels: 4}", "d_chanels"),
        ("augment: {scale_min: 1.2, scale_max: 1.1}", "train.augment"),
    ];
    for (section, expect) in cases {
        let yaml = tiny.replace("max_val_images: 16", &format!("max_val_images: 16\n  {section}"));
        let e = facerecon_train::Config::from_yaml(&yaml, p).unwrap_err().to_string();
        assert!(e.contains("adv.yaml") && e.contains(expect), "{section}: {e}");
    }
}
