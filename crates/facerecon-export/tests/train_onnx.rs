//! The trainer and the exporter together: `facerecon-train --init-from FILE.onnx` starts from an exported
//! model's weights exactly as `--init-from RUN_DIR` starts from the run's (same first-step loss, same
//! weights after the step); a model that does not match the config is refused with the file and the
//! tensor named; and the export of an adversarial run holds the generator alone.

use candle_onnx::onnx;
use facerecon_contract::checkpoint::MODEL_FILE;
use facerecon_train::{run, TrainOptions};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_facerecon-export");

fn tiny_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.yaml")).unwrap()
}

/// Generated 32x32 images (a smooth face-ish blob, varied per image).
fn write_images(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(32, 32, |x, y| {
            let d = ((x as f32 - 16.0).powi(2) + (y as f32 - 15.0).powi(2)).sqrt();
            let t = (i as f32 * 0.61).sin() * 0.5 + 0.5;
            let v = if d < 11.0 { 200.0 } else { 70.0 };
            image::Rgb([(v * (0.7 + 0.3 * t)) as u8, (v * 0.8) as u8, (40.0 + 150.0 * t) as u8])
        });
        img.save(dir.join(format!("f{i:03}.png"))).unwrap();
    }
}

fn options(config: &Path, data: &Path, out: &Path) -> TrainOptions {
    TrainOptions {
        config: Some(config.to_path_buf()),
        data: Some(data.to_path_buf()),
        out: out.to_path_buf(),
        device: "cpu".into(),
        batch_size: Some(4),
        seed: Some(3),
        ..Default::default()
    }
}

/// Export the run in `run` to `out` (no ONNX Runtime verification: these tests need only the file).
fn export(run: &Path, out: &Path) {
    let o = Command::new(BIN)
        .args([
            "--checkpoint",
            run.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-verify",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn setup(tmp: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    let (data, base) = (tmp.join("faces"), tmp.join("base"));
    write_images(&data, 20);
    let config = tmp.join("tiny.yaml");
    std::fs::write(&config, tiny_yaml()).unwrap();
    run(&TrainOptions {
        max_steps: Some(3),
        ..options(&config, &data, &base)
    })
    .unwrap();
    let onnx = tmp.join("exported/base.onnx");
    export(&base, &onnx);
    (data, config, base, onnx)
}

#[test]
fn init_from_an_onnx_file_equals_init_from_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config, base, onnx) = setup(tmp.path());
    let mut losses = Vec::new();
    for (name, src) in [("from-run", &base), ("from-onnx", &onnx)] {
        let out = tmp.path().join(name);
        let s = run(&TrainOptions {
            init_from: Some(src.clone()),
            max_steps: Some(1),
            ..options(&config, &data, &out)
        })
        .unwrap();
        losses.push(s.step_losses[0]);
    }
    assert_eq!(losses[0], losses[1], "the first step's loss");
    let a = std::fs::read(tmp.path().join("from-run").join(MODEL_FILE)).unwrap();
    let b = std::fs::read(tmp.path().join("from-onnx").join(MODEL_FILE)).unwrap();
    assert!(a == b, "the weights after one step");
    // A fresh run (no --init-from) starts elsewhere.
    let s = run(&TrainOptions {
        max_steps: Some(1),
        seed: Some(99),
        ..options(&config, &data, &tmp.path().join("fresh"))
    })
    .unwrap();
    assert_ne!(s.step_losses[0], losses[0]);
}

#[test]
fn an_onnx_file_of_another_model_is_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, _, onnx) = setup(tmp.path());
    let other = tmp.path().join("other.yaml");
    std::fs::write(&other, tiny_yaml().replace("units: 16", "units: 17")).unwrap();
    let e = format!(
        "{:#}",
        run(&TrainOptions {
            init_from: Some(onnx.clone()),
            ..options(&other, &data, &tmp.path().join("ft1"))
        })
        .unwrap_err()
    );
    assert!(e.contains("base.onnx") && e.contains("differs"), "{e}");

    // Without the recorded config, the initializers' shapes decide: the first (by name) that does not fit is named.
    let mut model = onnx::ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    model.metadata_props.clear();
    let bare = tmp.path().join("bare.onnx");
    std::fs::write(&bare, model.encode_to_vec()).unwrap();
    let e = format!(
        "{:#}",
        run(&TrainOptions {
            init_from: Some(bare.clone()),
            ..options(&other, &data, &tmp.path().join("ft2"))
        })
        .unwrap_err()
    );
    assert!(
        e.contains("bare.onnx") && e.contains("initializer 'dec_fc.weight'") && e.contains("17]"),
        "{e}"
    );
    let garbage = tmp.path().join("garbage.onnx");
    std::fs::write(&garbage, b"not a model").unwrap();
    let e = format!(
        "{:#}",
        run(&TrainOptions {
            init_from: Some(garbage),
            ..options(&other, &data, &tmp.path().join("ft3"))
        })
        .unwrap_err()
    );
    assert!(e.contains("garbage.onnx") && e.contains("ONNX"), "{e}");
}

/// An adversarial run's export holds exactly the initializers of a plain run's export of the same model:
/// the discriminator never reaches the file.
#[test]
fn the_export_of_an_adversarial_run_is_the_generator_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, _, base, onnx) = setup(tmp.path());
    let adv = tmp.path().join("adv.yaml");
    std::fs::write(
        &adv,
        tiny_yaml().replace(
            "max_val_images: 16",
            "max_val_images: 16\n  adversarial: {crop: 16, d_channels: 4, d_layers: 2}",
        ),
    )
    .unwrap();
    let run_dir = tmp.path().join("adv");
    run(&TrainOptions {
        init_from: Some(base),
        max_steps: Some(2),
        ..options(&adv, &data, &run_dir)
    })
    .unwrap();
    assert!(run_dir
        .join("current")
        .join(facerecon_train::checkpoint::DISCRIMINATOR_FILE)
        .is_file());
    let adv_onnx = tmp.path().join("exported/adv.onnx");
    export(&run_dir, &adv_onnx);
    let names = |p: &Path| {
        let m = facerecon_export::read_model(p).unwrap();
        let mut v: Vec<(String, Vec<i64>)> = m
            .graph
            .unwrap()
            .initializer
            .into_iter()
            .map(|t| (t.name, t.dims))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&adv_onnx), names(&onnx));
}

/// `train.distill`: the teacher's fill enters the hole's target with the configured share. With the
/// student starting from the teacher's own weights, the hole's L1 term (tiny.yaml's loss) at share `w`
/// is `(1 - w)` times the plain run's and the rest is unchanged, so the first step's losses obey
/// `L(0.5) = (L(0) + L(1)) / 2` with `L(1) < L(0)`; a run with a teacher resumes; a teacher of another
/// image size, a missing file and a file without facerecon's metadata are refused with the file named.
#[test]
fn distillation_blends_the_teachers_fill_into_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, config, _, onnx) = setup(tmp.path());
    let with_teacher = |name: &str, teacher: &Path, weight: f64| {
        let p = tmp.path().join(format!("{name}.yaml"));
        let section = format!("distill: {{teacher: '{}', weight: {weight}}}", teacher.display());
        std::fs::write(
            &p,
            tiny_yaml().replace("max_val_images: 16", &format!("max_val_images: 16\n  {section}")),
        )
        .unwrap();
        p
    };
    let first_loss = |name: &str, cfg: &Path| {
        run(&TrainOptions {
            init_from: Some(onnx.clone()),
            max_steps: Some(1),
            ..options(cfg, &data, &tmp.path().join(name))
        })
        .unwrap()
        .step_losses[0]
    };
    let plain = first_loss("plain", &config);
    let half = first_loss("half", &with_teacher("half", &onnx, 0.5));
    let full = first_loss("full", &with_teacher("full", &onnx, 1.0));
    assert!(
        full < 0.9 * plain,
        "the teacher's own fill costs nothing in the hole: {full} vs {plain}"
    );
    assert!(
        (half - (plain + full) / 2.0).abs() < 1e-5 * plain,
        "L(0.5) {half} vs (L(0) {plain} + L(1) {full}) / 2"
    );
    // The run records its teacher and resumes with it.
    let s = run(&TrainOptions {
        resume: true,
        max_steps: Some(2),
        ..options(&with_teacher("full", &onnx, 1.0), &data, &tmp.path().join("full"))
    })
    .unwrap();
    assert_eq!(s.steps, 2);

    // Refusals name the teacher's file.
    let refused = |name: &str, cfg: &Path| {
        format!(
            "{:#}",
            run(&TrainOptions {
                max_steps: Some(1),
                ..options(cfg, &data, &tmp.path().join(name))
            })
            .unwrap_err()
        )
    };
    let missing = tmp.path().join("nope.onnx");
    let e = refused("r1", &with_teacher("r1", &missing, 0.5));
    assert!(e.contains("nope.onnx") && e.contains("train.distill.teacher"), "{e}");
    let mut model = onnx::ModelProto::decode(std::fs::read(&onnx).unwrap().as_slice()).unwrap();
    model.metadata_props.clear();
    let bare = tmp.path().join("bare-teacher.onnx");
    std::fs::write(&bare, model.encode_to_vec()).unwrap();
    let e = refused("r2", &with_teacher("r2", &bare, 0.5));
    assert!(e.contains("bare-teacher.onnx") && e.contains("facerecon.config"), "{e}");
    // A teacher for 32x32 images cannot teach a 64x64 student.
    let big = tmp.path().join("big.yaml");
    let yaml = std::fs::read_to_string(with_teacher("r3", &onnx, 0.5)).unwrap();
    let yaml = yaml
        .replace("image_size: 32", "image_size: 64")
        .replace("units: 512", "units: 2048")
        .replace("[8, 8, 8]", "[8, 16, 16]");
    std::fs::write(&big, yaml).unwrap();
    let e = refused("r3", &big);
    assert!(e.contains("base.onnx") && e.contains("32x32"), "{e}");
}
