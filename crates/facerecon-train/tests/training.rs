//! End-to-end runs of the trainer on the tiny config and a few generated images.
mod common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use facerecon_model::Model;
use facerecon_train::checkpoint::{self, State};
use facerecon_train::checkpoint::{CONFIG_FILE, METRICS_FILE, MODEL_FILE, OPTIMIZER_FILE, STATE_FILE};
use facerecon_train::config::Config;
use facerecon_train::optim::Optimizer;
use facerecon_train::MetricsRecord;
use facerecon_train::{run, TrainOptions};
use std::path::Path;

fn options(data: &Path, out: &Path) -> TrainOptions {
    TrainOptions {
        config: Some(common::tiny_config()),
        data: Some(data.to_path_buf()),
        out: out.to_path_buf(),
        device: "cpu".into(),
        ..Default::default()
    }
}

fn metrics(out: &Path) -> Vec<MetricsRecord> {
    MetricsRecord::parse_all(&std::fs::read_to_string(out.join(METRICS_FILE)).unwrap()).unwrap()
}

#[test]
fn train_resume_and_refuse_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("faces"), tmp.path().join("runs/tiny"));
    common::write_images(&data, 40, 40, 36);
    common::write_corrupt(&data, "corrupt.png");

    // Two epochs (tiny.yaml): one metrics line each, samples, a complete checkpoint.
    let summary = run(&options(&data, &out)).unwrap();
    assert_eq!((summary.epochs_run, summary.epochs_done), (2, 2));
    assert_eq!(summary.skipped, 1, "the corrupt file is skipped, not fatal");
    let lines = metrics(&out);
    assert_eq!(lines.len(), 2);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l.epoch, i + 1);
        let wait = l.data_wait.expect("data_wait");
        assert!((0.0..=1.0).contains(&wait), "data_wait {wait}");
        for (k, v) in [
            ("train_loss", Some(l.train_loss)),
            ("val_loss", l.val_loss),
            ("psnr_full", l.psnr_full),
            ("psnr_hole", l.psnr_hole),
            ("ssim", l.ssim),
            ("l1_hole", l.l1_hole),
            ("psnr_raw", l.psnr_raw),
            ("images_per_sec", Some(l.images_per_sec)),
        ] {
            let v = v.unwrap_or_else(|| panic!("{k} missing in {l:?}"));
            assert!(v.is_finite(), "{k} = {v}");
        }
        // The composite keeps the known pixels, so it beats the raw reconstruction.
        assert!(l.psnr_full.unwrap() > l.psnr_raw.unwrap());
        assert!(l.psnr_full.unwrap() > l.psnr_hole.unwrap());
    }
    let steps_per_epoch = lines[0].step;
    assert!(steps_per_epoch >= 3, "{steps_per_epoch}");
    assert_eq!(lines[1].step, 2 * steps_per_epoch);
    for f in [
        MODEL_FILE,
        OPTIMIZER_FILE,
        STATE_FILE,
        CONFIG_FILE,
        "samples/epoch_001.png",
        "samples/epoch_002.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let grid = image::open(out.join("samples/epoch_002.png")).unwrap();
    assert!(
        grid.width() >= 3 * 32 && grid.height() >= 32,
        "{}x{}",
        grid.width(),
        grid.height()
    );
    let state = checkpoint::load_state(&out).unwrap();
    assert_eq!(
        (state.epoch, state.step, state.batch_in_epoch),
        (2, 2 * steps_per_epoch, 0)
    );
    assert!(!state.synthetic);
    let saved = Config::load(&out.join(CONFIG_FILE)).unwrap();
    assert_eq!(saved, Config::load(&common::tiny_config()).unwrap());
    // No temporary files are left behind.
    assert!(std::fs::read_dir(&out)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp")));

    // A fresh run into the same directory is refused...
    let err = run(&options(&data, &out)).unwrap_err().to_string();
    assert!(err.contains("--resume") && err.contains("--force"), "{err}");
    assert_eq!(metrics(&out).len(), 2, "nothing was touched");

    // ...--resume continues from epoch 2 to 3 (config and data come from the checkpoint).
    let resume = TrainOptions {
        config: None,
        data: None,
        epochs: Some(3),
        resume: true,
        ..options(&data, &out)
    };
    let summary = run(&resume).unwrap();
    assert_eq!((summary.epochs_run, summary.epochs_done), (1, 3));
    let lines = metrics(&out);
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2].epoch, 3);
    assert_eq!(lines[2].step, 3 * steps_per_epoch);
    let loss = |i: usize| lines[i].train_loss;
    assert!(
        loss(2) < loss(0),
        "the loss keeps going down: {} -> {}",
        loss(0),
        loss(2)
    );
    assert!(out.join("samples/epoch_003.png").is_file());

    // --force starts over.
    let forced = TrainOptions {
        epochs: Some(1),
        force: true,
        ..options(&data, &out)
    };
    run(&forced).unwrap();
    let lines = metrics(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].step, steps_per_epoch);
    assert!(!out.join("samples/epoch_003.png").exists());
}

#[test]
fn max_steps_stops_mid_epoch_and_resume_finishes_the_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out) = (tmp.path().join("faces"), tmp.path().join("run"));
    common::write_images(&data, 30, 32, 32);
    let opts = TrainOptions {
        epochs: Some(1),
        max_steps: Some(2),
        batch_size: Some(4),
        ..options(&data, &out)
    };
    let summary = run(&opts).unwrap();
    assert!(summary.stopped_early);
    let state = checkpoint::load_state(&out).unwrap();
    assert_eq!((state.epoch, state.step, state.batch_in_epoch), (0, 2, 2));
    assert_eq!(
        std::fs::read_to_string(out.join(METRICS_FILE)).unwrap_or_default(),
        "",
        "no epoch finished"
    );

    let resume = TrainOptions {
        max_steps: None,
        resume: true,
        ..opts
    };
    let summary = run(&resume).unwrap();
    assert!(!summary.stopped_early);
    let state = checkpoint::load_state(&out).unwrap();
    let per_epoch = 24usize.div_ceil(4) as u64; // ~24 of the 30 files train (the rest validate)
    assert_eq!(state.epoch, 1);
    assert_eq!(state.batch_in_epoch, 0);
    // Only the remaining batches were trained: the epoch's total equals one epoch's batch count.
    let m = metrics(&out);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].step, state.step);
    assert!(state.step.abs_diff(per_epoch) <= 2, "{} vs ~{per_epoch}", state.step);
}

/// Save mid-training, load into a fresh model and optimiser: the state is bit-identical, and the
/// next step gives bit-identical weights.
#[test]
fn resuming_restores_the_optimiser_state_exactly() {
    let config = Config::load(&common::tiny_config()).unwrap();
    let dev = Device::Cpu;
    let build = || {
        let varmap = VarMap::new();
        let model = Model::new(&config.model, VarBuilder::from_varmap(&varmap, DType::F32, &dev)).unwrap();
        let params = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let opt = Optimizer::new(&config.train.optimizer, params).unwrap();
        (varmap, model, opt)
    };
    let image = Tensor::rand(0f32, 1f32, (4, 3, 32, 32), &dev).unwrap();
    let mut m = vec![0f32; 4 * 32 * 32];
    m.iter_mut()
        .enumerate()
        .filter(|(i, _)| i % 32 < 8 && (i / 32) % 32 < 8)
        .for_each(|(_, v)| *v = 1.0);
    let mask = Tensor::from_vec(m, (4, 1, 32, 32), &dev).unwrap();
    let step = |model: &Model, opt: &mut Optimizer| {
        let zeroed = facerecon_train::validate::zero_holes(&image, &mask).unwrap();
        let (rec, _) = model.forward(&zeroed, &mask).unwrap();
        let loss = facerecon_train::loss::loss(&config.train.loss, &rec, &image, &mask).unwrap();
        opt.step(&loss.backward().unwrap(), 0.003).unwrap();
    };

    let (varmap, model, mut opt) = build();
    for _ in 0..3 {
        step(&model, &mut opt);
    }
    let dir = tempfile::tempdir().unwrap();
    let state = State {
        step: 3,
        batch_in_epoch: 3,
        ..State::new(1, "x".into(), false, None)
    };
    checkpoint::save(dir.path(), &varmap, &opt, &config, &state, &[]).unwrap();

    let (varmap2, model2, mut opt2) = build();
    let ck = checkpoint::open(dir.path()).unwrap().unwrap();
    checkpoint::load_weights(dir.path(), &ck, &varmap2, &mut opt2, &dev).unwrap();
    assert_eq!(opt2.steps(), 3);
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (s1, s2) = (opt.state(), opt2.state());
    assert_eq!(s1.len(), s2.len());
    assert!(!s1.is_empty());
    for ((n1, t1), (n2, t2)) in s1.iter().zip(&s2) {
        assert_eq!(n1, n2);
        assert_eq!(flat(t1), flat(t2), "{n1}");
    }
    step(&model, &mut opt);
    step(&model2, &mut opt2);
    let (w1, w2) = (checkpoint::model_tensors(&varmap), checkpoint::model_tensors(&varmap2));
    for ((n1, t1), (_, t2)) in w1.iter().zip(&w2) {
        assert_eq!(flat(t1), flat(t2), "{n1} after one more step");
    }
}

#[test]
fn bad_settings_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let missing = run(&options(&tmp.path().join("nope"), &out)).unwrap_err().to_string();
    assert!(
        missing.contains("nope") && missing.contains("does not exist"),
        "{missing}"
    );
    let cuda = facerecon_train::setup::parse_device("cuda:0");
    if cfg!(not(feature = "cuda")) {
        assert!(cuda.unwrap_err().to_string().contains("--features cuda"));
    }
    assert!(facerecon_train::setup::parse_device("tpu").is_err());
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = run(&options(&empty, &out)).unwrap_err().to_string();
    assert!(e.contains("no training images"), "{e}");
}

/// `--init-from`: a new run starts from another run's weights (not its optimiser or step count);
/// a different model, a missing checkpoint and an occupied --out are refused with the path named.
#[test]
fn init_from_copies_the_weights_into_a_new_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, base, ft) = (tmp.path().join("faces"), tmp.path().join("base"), tmp.path().join("ft"));
    common::write_images(&data, 24, 32, 32);
    let base_opts = TrainOptions {
        epochs: Some(1),
        max_steps: Some(3),
        batch_size: Some(4),
        ..options(&data, &base)
    };
    run(&base_opts).unwrap();

    // One step after the copy the weights are within ~lr of the source's; a fresh init is far away.
    let dev = Device::Cpu;
    let load = |dir: &Path| {
        checkpoint::load_tensors(&dir.join(checkpoint::MODEL_FILE), &dev)
            .unwrap()
            .0
    };
    let src = load(&base);
    let ft_opts = TrainOptions {
        init_from: Some(base.clone()),
        max_steps: Some(1),
        ..base_opts.clone()
    };
    let ft_opts = TrainOptions {
        out: ft.clone(),
        ..ft_opts
    };
    run(&ft_opts).unwrap();
    let state = checkpoint::load_state(&ft).unwrap();
    assert_eq!(state.step, 1, "a new run counts its own steps");
    let got = load(&ft);
    assert_eq!(got.len(), src.len());
    let fresh = tmp.path().join("fresh");
    // (Another seed: with the base run's seed a fresh run would start from the base run's very init.)
    run(&TrainOptions {
        out: fresh.clone(),
        init_from: None,
        seed: Some(12_345),
        ..ft_opts.clone()
    })
    .unwrap();
    let fresh = load(&fresh);
    let dist = |a: &std::collections::HashMap<String, Tensor>| -> f32 {
        src.iter()
            .map(|(k, v)| {
                (v - &a[k])
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_keepdim(0)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .fold(0.0, f32::max)
    };
    let (d_ft, d_fresh) = (dist(&got), dist(&fresh));
    assert!(
        d_ft < 0.02,
        "one Adam step from the source weights moves each by ~lr: {d_ft}"
    );
    assert!(
        d_fresh > 10.0 * d_ft,
        "a fresh init is far from the source: {d_fresh} vs {d_ft}"
    );

    // Refusals.
    let err = run(&ft_opts).unwrap_err().to_string();
    assert!(err.contains("already holds"), "{err}");
    let missing = TrainOptions {
        init_from: Some(tmp.path().join("nope")),
        out: tmp.path().join("ft2"),
        ..ft_opts.clone()
    };
    let err = format!("{:#}", run(&missing).unwrap_err());
    assert!(err.contains("nope") && err.contains("no checkpoint"), "{err}");
    let yaml = std::fs::read_to_string(common::tiny_config()).unwrap();
    assert!(yaml.contains("units: 16"));
    let other_path = tmp.path().join("other.yaml");
    std::fs::write(&other_path, yaml.replace("units: 16", "units: 17")).unwrap();
    let mismatch = TrainOptions {
        config: Some(other_path),
        out: tmp.path().join("ft3"),
        ..ft_opts
    };
    let err = format!("{:#}", run(&mismatch).unwrap_err());
    assert!(err.contains("differs"), "{err}");
}
