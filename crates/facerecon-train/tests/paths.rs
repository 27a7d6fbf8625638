//! Issue 15, the trainer's paths: the data walk (symlink loops, duplicates, skipped files
//! reported), --out vs --data (neither inside the other), and messages that say what is wrong
//! with which path.
mod common;

use std::path::Path;
use std::process::{Command, Output};

fn train(data: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_facerecon-train"))
        .args([
            "--config",
            common::tiny_config().to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ])
        .args(["--out", out.to_str().unwrap(), "--threads", "2", "--max-steps", "1"])
        .args(extra)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_in_the_data_is_walked_once_and_reported() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("faces");
    common::write_images(&data, 12, 32, 32);
    symlink("..", data.join("nested/loop")).unwrap();
    let first = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .unwrap();
    symlink(&first, data.join("zz_alias.png")).unwrap();
    std::fs::write(data.join("anim.gif"), b"GIF89a").unwrap();
    let out = tmp.path().join("run");
    let o = train(&data, &out, &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // "data: DIR — A training, B validation images": every real file once.
    let line = err
        .lines()
        .find(|l| l.starts_with("data:"))
        .unwrap_or_else(|| panic!("{err}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    let n = numbers.len();
    assert_eq!(numbers[n - 2] + numbers[n - 1], 12, "{line}");
    for (name, why) in [
        ("loop", "loop"),
        ("zz_alias.png", "same file as"),
        ("anim.gif", "not a supported image"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(name) && l.contains(why)),
            "{name} ({why}) not reported:\n{err}"
        );
    }
    let val = std::fs::read_to_string(out.join(facerecon_train::setup::VAL_FILES)).unwrap();
    assert!(!val.contains("loop"), "{val}");
}

#[test]
fn out_and_data_may_not_contain_each_other() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("faces");
    common::write_images(&data, 8, 32, 32);
    let before = facerecon_imaging::io::list_images(&data);
    let o = train(&data, &data.join("run"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--out") && stderr(&o).contains("inside the data directory"),
        "{}",
        stderr(&o)
    );
    assert!(
        !data.join("run").exists(),
        "the run directory was created inside the data"
    );
    let o = train(&data, &data, &[]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert_eq!(facerecon_imaging::io::list_images(&data), before);
    // The data in the run's samples directory: the run writes grids there, --force deletes them.
    let run = tmp.path().join("run2");
    let samples = run.join("samples");
    common::write_images(&samples, 4, 32, 32);
    let o = train(&samples, &run, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("inside --out"), "{}", stderr(&o));
    // --out in the run it is initialised from: --force would delete the weights it starts from.
    let o = train(&data, &run, &["--init-from", run.to_str().unwrap(), "--force"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is (inside) the --init-from run"), "{}", stderr(&o));
    // Elsewhere inside --out the data is fine.
    let o = train(&data, tmp.path(), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn path_messages_say_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("faces");
    common::write_images(&data, 4, 32, 32);
    let file = tmp.path().join("file.txt");
    std::fs::write(&file, b"x").unwrap();

    let o = train(&file, &tmp.path().join("run"), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is a file, expected a directory of images") && stderr(&o).contains("file.txt"),
        "{}",
        stderr(&o)
    );
    let o = train(&tmp.path().join("missing"), &tmp.path().join("run"), &[]);
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains("missing"),
        "{}",
        stderr(&o)
    );

    let o = train(&data, &file, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--out") && stderr(&o).contains("exists and is not a directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// A run that fails on its arguments leaves no trace: before this test the run lock created --out
/// (and its `train.lock`) before the config was read, so a typo in the YAML left an empty run
/// directory behind that a later `--resume` or a directory listing would mistake for a run.
#[test]
fn a_run_refused_for_its_config_or_data_creates_no_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("faces");
    common::write_images(&data, 4, 32, 32);
    let bad_yaml = tmp.path().join("bad.yaml");
    std::fs::write(&bad_yaml, "model: [unclosed\n").unwrap();
    let invalid = tmp.path().join("invalid.yaml");
    let text = std::fs::read_to_string(common::tiny_config()).unwrap();
    std::fs::write(&invalid, text.replace("batch_size:", "batch_size: 0 #")).unwrap();
    let run = |config: Option<&Path>, data: &Path, out: &Path| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_facerecon-train"));
        if let Some(config) = config {
            cmd.args(["--config", config.to_str().unwrap()]);
        }
        cmd.args(["--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()])
            .args(["--threads", "1", "--max-steps", "1"])
            .output()
            .unwrap()
    };
    let (tiny, missing, nope) = (
        common::tiny_config(),
        tmp.path().join("missing"),
        tmp.path().join("nope.yaml"),
    );
    let cases: [(Option<&Path>, &Path, &str); 5] = [
        (Some(&bad_yaml), &data, "bad.yaml"),
        (Some(&invalid), &data, "batch_size"),
        (Some(&nope), &data, "nope.yaml"),
        (None, &data, "--config is required"),
        (Some(&tiny), &missing, "missing"),
    ];
    for (i, (config, data, says)) in cases.into_iter().enumerate() {
        let out = tmp.path().join(format!("run{i}"));
        let o = run(config, data, &out);
        assert!(!o.status.success(), "case {i}");
        assert!(stderr(&o).contains(says), "case {i}: {}", stderr(&o));
        assert!(!out.exists(), "case {i}: {} was created: {}", out.display(), stderr(&o));
    }
}
