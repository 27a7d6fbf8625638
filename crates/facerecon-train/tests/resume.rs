//! What a resume may trust and what it must refuse (issue 15, items 1-4), through the binary: a
//! checkpoint whose files do not belong together, metrics records of resumed epochs, changed settings in
//! the middle of an epoch, unreadable data, two trainers on one run directory.
mod common;

use facerecon_train::checkpoint::{CHECKPOINT_FILES, CONFIG_FILE, CURRENT_LINK, METRICS_FILE, MODEL_FILE, STATE_FILE};
use facerecon_train::MetricsRecord;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// tiny.yaml with a checkpoint after every step.
fn config(dir: &Path) -> PathBuf {
    let yaml = std::fs::read_to_string(common::tiny_config()).unwrap();
    let path = dir.join("every-step.yaml");
    std::fs::write(
        &path,
        yaml.replace("max_val_images: 16", "max_val_images: 16\n  checkpoint_minutes: 1.0e-9"),
    )
    .unwrap();
    path
}

/// The trainer on `data` into `out`: 24 images, batch 4 (5 steps per epoch), 2 epochs, seed 7.
fn train(config: &Path, data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facerecon-train"));
    c.args([
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
    .args(["--seed", "7", "--batch-size", "4", "--threads", "2"])
    .args(extra)
    .env_remove("FACERECON_CRASH_POINT");
    c
}

fn ok(o: Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    stderr
}

fn fails(o: Output) -> String {
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(
        !o.status.success() && o.status.code().is_some(),
        "expected a clean failure: {stderr}"
    );
    stderr
}

fn metrics(out: &Path) -> Vec<MetricsRecord> {
    MetricsRecord::parse_all(&std::fs::read_to_string(out.join(METRICS_FILE)).unwrap_or_default()).unwrap()
}

fn state(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join(STATE_FILE)).unwrap()).unwrap()
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("faces");
    common::write_images(&data, 24, 32, 32);
    let config = config(tmp.path());
    (tmp, data, config)
}

/// Item 1: weights from another step beside the state (what a kill between the renames of the old
/// layout left) are refused, naming the run directory and the file.
#[test]
fn resume_refuses_a_checkpoint_whose_files_do_not_belong_together() {
    let (tmp, data, config) = setup();
    let (out, other) = (tmp.path().join("run"), tmp.path().join("other"));
    ok(train(&config, &data, &out, &["--max-steps", "2"]).output().unwrap());
    ok(train(&config, &data, &other, &["--max-steps", "4"]).output().unwrap());
    // Write through the run directory's name (whatever it is: a file, or a link into the checkpoint).
    std::fs::write(out.join(MODEL_FILE), std::fs::read(other.join(MODEL_FILE)).unwrap()).unwrap();
    let err = fails(train(&config, &data, &out, &["--resume"]).output().unwrap());
    assert!(
        err.contains(out.to_str().unwrap()) && err.contains(MODEL_FILE) && err.contains("inconsistent"),
        "{err}"
    );

    // The older layout (five regular files, no manifest): the optimiser's step must be the state's.
    let old = tmp.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    for f in CHECKPOINT_FILES {
        std::fs::write(old.join(f), std::fs::read(other.join(f)).unwrap()).unwrap();
    }
    let two = tmp.path().join("two");
    ok(train(&config, &data, &two, &["--max-steps", "2"]).output().unwrap());
    std::fs::write(old.join(STATE_FILE), std::fs::read(two.join(STATE_FILE)).unwrap()).unwrap();
    let err = fails(train(&config, &data, &old, &["--resume"]).output().unwrap());
    assert!(
        err.contains(old.to_str().unwrap()) && err.contains("step 4") && err.contains("step 2"),
        "{err}"
    );
    // A consistent old-layout run resumes, and its checkpoint moves to the new layout.
    std::fs::write(old.join(STATE_FILE), std::fs::read(other.join(STATE_FILE)).unwrap()).unwrap();
    ok(train(&config, &data, &old, &["--resume", "--max-steps", "6"])
        .output()
        .unwrap());
    assert_eq!(state(&old)["step"], 6);
    assert!(old
        .join(CURRENT_LINK)
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
}

/// Item 2: the records of resumed epochs equal an uninterrupted run's — resumed mid-epoch, resumed from
/// a checkpoint taken at an epoch's last batch, and killed between an epoch's record and its checkpoint
/// (no second record of an epoch, no `train_loss 0`).
#[test]
fn metrics_of_resumed_epochs_equal_an_uninterrupted_runs() {
    let (tmp, data, config) = setup();
    let reference = tmp.path().join("reference");
    ok(train(&config, &data, &reference, &[]).output().unwrap());
    let want = metrics(&reference);
    assert_eq!(want.len(), 2);
    let steps_per_epoch = want[0].step;
    let same = |out: &Path, what: &str| {
        let got = metrics(out);
        assert_eq!(got.len(), want.len(), "{what}: {got:#?}");
        for (a, b) in want.iter().zip(&got) {
            assert_eq!(a.without_timings(), b.without_timings(), "{what}: epoch {}", a.epoch);
        }
    };

    // Stopped after 2 steps of epoch 1, resumed.
    let mid = tmp.path().join("mid");
    ok(train(&config, &data, &mid, &["--max-steps", "2"]).output().unwrap());
    ok(train(&config, &data, &mid, &["--resume"]).output().unwrap());
    same(&mid, "resumed after 2 steps");

    // Killed at crash point 9 * steps + 1: each step has one crash point plus eight in its checkpoint,
    // so this is the first file of epoch 1's end-of-epoch checkpoint, after its record was made. The
    // checkpoint in force is the one taken after the epoch's last batch.
    let last = tmp.path().join("last");
    let point = (9 * steps_per_epoch + 1).to_string();
    let o = train(&config, &data, &last, &[])
        .env("FACERECON_CRASH_POINT", &point)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "the crash point killed the run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let st = state(&last);
    assert_eq!(
        (st["epoch"].as_u64(), st["batch_in_epoch"].as_u64()),
        (Some(0), Some(steps_per_epoch)),
        "{st}"
    );
    assert_eq!(
        metrics(&last).len(),
        0,
        "the record of an epoch its checkpoint does not cover is not shown"
    );
    ok(train(&config, &data, &last, &["--resume"]).output().unwrap());
    same(&last, "resumed at an epoch's last batch");
}

/// Item 3: in the middle of an epoch a resume keeps the run's seed, batch size, subset and data, or
/// says which differs; `--allow-changes` accepts it; at an epoch boundary a change is announced.
#[test]
fn a_mid_epoch_resume_refuses_changed_settings() {
    let (tmp, data, config) = setup();
    let out = tmp.path().join("run");
    ok(train(&config, &data, &out, &["--max-steps", "2"]).output().unwrap());
    let other_data = tmp.path().join("faces2");
    common::write_images(&other_data, 24, 32, 32);
    let resume = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_facerecon-train"));
        c.args(["--out", out.to_str().unwrap(), "--resume", "--threads", "2"])
            .args(extra)
            .env_remove("FACERECON_CRASH_POINT");
        c.output().unwrap()
    };
    let other = other_data.to_str().unwrap();
    for (args, said) in [
        (vec!["--seed", "8"], vec!["--seed 8", "7"]),
        (vec!["--batch-size", "2"], vec!["batch size 2", "4"]),
        (vec!["--max-images", "10"], vec!["--max-images 10", "all images"]),
        (vec!["--data", other], vec![other, data.to_str().unwrap()]),
    ] {
        let err = fails(resume(&args));
        assert!(
            said.iter().all(|s| err.contains(s)) && err.contains("--allow-changes"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(state(&out)["step"], 2, "nothing was changed");
    // The same settings spelled out are fine; --allow-changes accepts a change.
    let o = resume(&[
        "--seed",
        "7",
        "--batch-size",
        "4",
        "--data",
        data.to_str().unwrap(),
        "--max-steps",
        "3",
    ]);
    ok(o);
    let msg = ok(resume(&["--seed", "8", "--allow-changes", "--max-steps", "4"]));
    assert!(msg.contains("--seed 8"), "{msg}");
    assert_eq!(state(&out)["seed"], 8);
    // At an epoch boundary a change applies to the epochs to come.
    ok(resume(&["--epochs", "1"]));
    let msg = ok(resume(&["--seed", "9", "--epochs", "2"]));
    assert!(msg.contains("--seed 9") && msg.contains("next epoch"), "{msg}");
}

/// Item 4a: a folder whose images are all unreadable is an error naming the folder and the count, as is
/// one where more than half are; a few bad files are skipped.
#[test]
fn unreadable_training_data_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path());
    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    for i in 0..20 {
        common::write_corrupt(&bad, &format!("x{i:02}.png"));
    }
    let out = tmp.path().join("run");
    let err = fails(train(&config, &bad, &out, &[]).output().unwrap());
    assert!(
        err.contains(bad.to_str().unwrap()) && err.contains("could not be read"),
        "{err}"
    );
    assert!(
        err.contains(" of the ") && err.contains("files in"),
        "the count is given: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join(METRICS_FILE)).unwrap_or_default(),
        "",
        "no epoch was recorded"
    );

    // 14 of 24 files bad (more than half): refused; 3 of 43: trained.
    let mixed = tmp.path().join("mixed");
    common::write_images(&mixed, 10, 32, 32);
    for i in 0..14 {
        common::write_corrupt(&mixed, &format!("y{i:02}.png"));
    }
    let err = fails(
        train(&config, &mixed, &tmp.path().join("run2"), &["--epochs", "1"])
            .output()
            .unwrap(),
    );
    assert!(
        err.contains(mixed.to_str().unwrap()) && err.contains("could not be read"),
        "{err}"
    );
    let few = tmp.path().join("few");
    common::write_images(&few, 40, 32, 32);
    for i in 0..3 {
        common::write_corrupt(&few, &format!("z{i}.png"));
    }
    let msg = ok(train(&config, &few, &tmp.path().join("run3"), &["--epochs", "1"])
        .output()
        .unwrap());
    assert!(msg.contains("skipping"), "{msg}");
}

/// Item 4c: a second trainer on a run directory in use fails at once; a lock left by a dead process
/// does not block.
#[test]
fn a_run_directory_in_use_is_refused() {
    let (tmp, data, config) = setup();
    let out = tmp.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    let lock = std::fs::File::create(out.join(facerecon_train::checkpoint::LOCK_FILE)).unwrap();
    assert!(facerecon_train::checkpoint::try_lock(&lock).unwrap()); // another trainer
    let err = fails(train(&config, &data, &out, &["--max-steps", "1"]).output().unwrap());
    assert!(err.contains(out.to_str().unwrap()) && err.contains("in use"), "{err}");
    assert!(!out.join(STATE_FILE).exists(), "nothing was written");
    drop(lock); // that trainer ended (or was killed: the OS drops its lock); the file stays
    ok(train(&config, &data, &out, &["--max-steps", "1"]).output().unwrap());
    // And a run killed by SIGKILL leaves a lock file that does not block the resume.
    let o = train(&config, &data, &out, &["--resume", "--max-steps", "3"])
        .env("FACERECON_CRASH_POINT", "2")
        .output()
        .unwrap();
    assert!(!o.status.success());
    ok(train(&config, &data, &out, &["--resume", "--max-steps", "3"])
        .output()
        .unwrap());
    assert_eq!(state(&out)["step"], 3);
}

/// `--force` starts over only once the new run is known to be valid: a `--force` without `--config`, or
/// with a config that does not parse, used to delete every checkpoint first and then fail.
#[test]
fn a_failed_force_deletes_nothing() {
    let (tmp, data, config) = setup();
    let out = tmp.path().join("run");
    ok(train(&config, &data, &out, &["--max-steps", "2"]).output().unwrap());
    let weights = std::fs::read(out.join(MODEL_FILE)).unwrap();
    // No --config at all.
    let o = Command::new(env!("CARGO_BIN_EXE_facerecon-train"))
        .args([
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--force",
        ])
        .output()
        .unwrap();
    let err = fails(o);
    assert!(err.contains("--config is required"), "{err}");
    assert_eq!(
        std::fs::read(out.join(MODEL_FILE)).unwrap(),
        weights,
        "--force without --config deleted the run"
    );
    // A config that does not parse.
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, "model: {layers: [{op: conv, dilaton: 2}]}\n").unwrap();
    let err = fails(train(&bad, &data, &out, &["--force"]).output().unwrap());
    assert!(err.contains("bad.yaml"), "{err}");
    assert_eq!(
        std::fs::read(out.join(MODEL_FILE)).unwrap(),
        weights,
        "--force with a bad config deleted the run"
    );
    // The run's own config as --config: read before the run is cleared, so --force still works.
    let own = out.join(CONFIG_FILE);
    let o = Command::new(env!("CARGO_BIN_EXE_facerecon-train"))
        .args([
            "--config",
            own.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args([
            "--seed",
            "7",
            "--batch-size",
            "4",
            "--threads",
            "2",
            "--force",
            "--max-steps",
            "1",
        ])
        .output()
        .unwrap();
    ok(o);
    assert_eq!(state(&out)["step"], 1);
}

/// Item 3 by class: in the middle of an epoch every setting that decides the rest of the epoch (which
/// files are trained, in which order, with which holes and flips) is the run's, whether it comes from an
/// option or from a changed `--config`.
#[test]
fn a_mid_epoch_resume_refuses_a_config_that_changes_the_epoch() {
    let (tmp, data, config) = setup();
    let out = tmp.path().join("run");
    ok(train(&config, &data, &out, &["--max-steps", "2"]).output().unwrap());
    let base: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let masks: serde_yaml::Value = serde_yaml::from_str("[{kind: box, min: 8, max: 8, weight: 1.0}]").unwrap();
    type Edit = Box<dyn Fn(&mut serde_yaml::Value)>;
    let edits: [(&str, Edit); 4] = [
        (
            "validation_fraction",
            Box::new(|v| v["train"]["validation_fraction"] = 0.3.into()),
        ),
        ("max_val_images", Box::new(|v| v["train"]["max_val_images"] = 4.into())),
        ("flip", Box::new(|v| v["train"]["flip"] = true.into())),
        ("masks", Box::new(move |v| v["masks"] = masks.clone())),
    ];
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        let changed = tmp.path().join(format!("{what}.yaml"));
        std::fs::write(&changed, serde_yaml::to_string(&v).unwrap()).unwrap();
        let err = fails(train(&changed, &data, &out, &["--resume"]).output().unwrap());
        assert!(err.contains(what) && err.contains("--allow-changes"), "{what}: {err}");
    }
    // The run's own settings resume; --allow-changes takes a changed one.
    ok(train(&config, &data, &out, &["--resume", "--max-steps", "3"])
        .output()
        .unwrap());
    let mut v = base.clone();
    v["train"]["flip"] = true.into();
    let changed = tmp.path().join("flip-allowed.yaml");
    std::fs::write(&changed, serde_yaml::to_string(&v).unwrap()).unwrap();
    ok(train(
        &changed,
        &data,
        &out,
        &["--resume", "--allow-changes", "--max-steps", "4"],
    )
    .output()
    .unwrap());
}
