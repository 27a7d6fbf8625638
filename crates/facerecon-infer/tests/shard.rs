//! Issue 16, fleet use, end to end on the identity fixture model: `--shard I/N` splits the inputs
//! into disjoint shards covering every input, by a hash of the path relative to the INPUT
//! directory (stable when files are added, whatever the mount point); `--skip-existing` resumes a
//! partial run; bad `--shard` values are refused clearly; the Slurm and Kubernetes examples of
//! examples/fleet run every shard (with the job array's variables faked).
//! They need ONNX Runtime: `make test` sets ORT_DYLIB_PATH.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use facerecon_testutil::{identity_model as model, ort_library as ort, stderr};
use image::{Rgb, RgbImage};

fn fleet_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/fleet")
}

fn infer(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .args(&args)
        .env("ORT_DYLIB_PATH", ort())
        .output()
        .unwrap()
}

fn photo(seed: u8) -> RgbImage {
    RgbImage::from_fn(24, 20, |x, y| {
        Rgb([60 + (x as u8 * 7) % 150, 70 + (y as u8 * 11) % 150, 90 + seed])
    })
}

/// A nested photo tree: `photos/p*.png`, `photos/sub/q*.png`, `photos/sub/deeper/r*.png`.
fn make_tree(root: &Path) -> PathBuf {
    let photos = root.join("photos");
    for (k, rel) in tree_names().iter().enumerate() {
        let p = photos.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        photo(k as u8).save(&p).unwrap();
    }
    photos
}

fn tree_names() -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..6 {
        v.push(format!("p{i}.png"));
        v.push(format!("sub/q{i}.png"));
    }
    for i in 0..4 {
        v.push(format!("sub/deeper/r{i}.png"));
    }
    v
}

/// Every regular file under `dir` (not following links), relative.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Runs every shard of `n` on `inputs`, each into `outs/<n>-<i>`; returns each shard's outputs.
fn run_shards(inputs: &[&Path], n: u64, outs: &Path) -> Vec<BTreeSet<PathBuf>> {
    (0..n)
        .map(|i| {
            let out = outs.join(format!("{n}-{i}"));
            let report = outs.join(format!("{n}-{i}.json"));
            let shard = format!("{i}/{n}");
            let m = model();
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"--model", &m];
            for input in inputs {
                args.push(input);
            }
            args.extend([
                &"--out" as &dyn AsRef<std::ffi::OsStr>,
                &out,
                &"--box",
                &"2,2,4,4",
                &"--shard",
                &shard,
                &"--report",
                &report,
            ]);
            let o = infer(&args);
            assert_eq!(o.status.code(), Some(0), "shard {shard}: {}", stderr(&o));
            let files = files_under(&out);
            let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
            assert_eq!(json["summary"]["total"], files.len(), "shard {shard}");
            assert_eq!(json["shard"]["index"], i);
            assert_eq!(json["shard"]["count"], n);
            files
        })
        .collect()
}

/// The expected outputs of the tree (and of `solo.png` given as a file).
fn expected(with_solo: bool) -> BTreeSet<PathBuf> {
    let mut e: BTreeSet<PathBuf> = tree_names().into_iter().map(PathBuf::from).collect();
    if with_solo {
        e.insert(PathBuf::from("solo.png"));
    }
    e
}

#[test]
fn shards_are_disjoint_and_cover_every_input() {
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    // A file given directly: its relative path is its file name.
    let solo = dir.path().join("elsewhere/solo.png");
    std::fs::create_dir_all(solo.parent().unwrap()).unwrap();
    photo(99).save(&solo).unwrap();
    let outs = dir.path().join("outs");
    for n in [1u64, 2, 3, 7] {
        let shards = run_shards(&[&photos, &solo], n, &outs);
        let mut union = BTreeSet::new();
        for (i, s) in shards.iter().enumerate() {
            for f in s {
                assert!(
                    union.insert(f.clone()),
                    "n={n}: {} is in two shards (again in {i})",
                    f.display()
                );
            }
        }
        assert_eq!(union, expected(true), "n={n}: shards {shards:?}");
        if n == 3 {
            // 17 files over 3 shards: not all in one (the hash spreads them).
            assert!(shards.iter().all(|s| s.len() < 17), "{shards:?}");
        }
    }
}

/// The shard of each output under `outs` (run by `run_shards` for `n`).
fn assignment(shards: &[BTreeSet<PathBuf>]) -> BTreeMap<PathBuf, usize> {
    let mut m = BTreeMap::new();
    for (i, s) in shards.iter().enumerate() {
        for f in s {
            m.insert(f.clone(), i);
        }
    }
    m
}

#[test]
fn adding_files_moves_no_other_file_and_the_root_does_not_matter() {
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    let before = assignment(&run_shards(&[&photos], 3, &dir.path().join("before")));
    assert_eq!(before.keys().cloned().collect::<BTreeSet<_>>(), expected(false));

    // The same tree at another, deeper absolute path (another machine's mount point): same shards.
    let moved_root = dir.path().join("mnt/other/place");
    let moved = make_tree(&moved_root);
    let elsewhere = assignment(&run_shards(&[&moved], 3, &dir.path().join("moved")));
    assert_eq!(elsewhere, before);
    // Given as a relative path from another working directory: same shards too.
    let o = Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .current_dir(&moved_root)
        .args(["--shard", "1/3", "--box", "2,2,4,4", "photos", "--out"])
        .arg(dir.path().join("relative-1"))
        .arg("--model")
        .arg(model())
        .env("ORT_DYLIB_PATH", ort())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let want: BTreeSet<PathBuf> = before.iter().filter(|(_, &s)| s == 1).map(|(f, _)| f.clone()).collect();
    assert_eq!(files_under(&dir.path().join("relative-1")), want);

    // New files (including a new sub-directory): every old file stays in its shard.
    for (k, rel) in [
        "p100.png",
        "sub/q100.png",
        "new/n0.png",
        "new/n1.png",
        "new/deep/n2.png",
    ]
    .iter()
    .enumerate()
    {
        let p = photos.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        photo(200 + k as u8).save(&p).unwrap();
    }
    let after = assignment(&run_shards(&[&photos], 3, &dir.path().join("after")));
    assert_eq!(after.len(), before.len() + 5);
    for (f, s) in &before {
        assert_eq!(after[f], *s, "{} moved from shard {s} to {}", f.display(), after[f]);
    }
}

fn report_of(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Inputs (relative to `root`) of the report's files with `status`.
fn with_status(report: &serde_json::Value, status: &str, root: &Path) -> BTreeSet<PathBuf> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == status)
        .map(|f| {
            Path::new(f["input"].as_str().unwrap())
                .strip_prefix(root)
                .unwrap()
                .to_path_buf()
        })
        .collect()
}

#[test]
fn skip_existing_reruns_exactly_the_missing_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    let out = dir.path().join("out");
    let report = dir.path().join("r.json");
    let model_path = model();
    let run = |extra: &[&str]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"--model",
            &model_path,
            &photos,
            &"--out",
            &out,
            &"--box",
            &"2,2,4,4",
            &"--shard",
            &"0/2",
            &"--report",
            &report,
        ];
        for e in extra {
            args.push(e);
        }
        infer(&args)
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let first = files_under(&out);
    assert!(first.len() >= 4, "shard 0/2 took only {first:?}");
    let names: Vec<PathBuf> = first.iter().cloned().collect();
    // Without --skip-existing a rerun refuses to replace (exit 1, each existing output named).
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("already exists").count(),
        first.len(),
        "{}",
        stderr(&o)
    );
    // --skip-existing with --overwrite: a usage error.
    let o = run(&["--skip-existing", "--overwrite"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // A partial run: two outputs missing, one truncated (a crash before the data reached the disk).
    std::fs::remove_file(out.join(&names[0])).unwrap();
    std::fs::remove_file(out.join(&names[2])).unwrap();
    let truncated = out.join(&names[3]);
    let bytes = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let kept: BTreeMap<PathBuf, Vec<u8>> = names
        .iter()
        .enumerate()
        .filter(|(k, _)| ![0, 2, 3].contains(k))
        .map(|(_, n)| (n.clone(), std::fs::read(out.join(n)).unwrap()))
        .collect();

    let o = run(&["--skip-existing"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("{} skipped (output exists)", kept.len())),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("not a complete PNG") && l.contains(&*names[3].to_string_lossy())),
        "{err}"
    );
    let json = report_of(&report);
    assert_eq!(json["summary"]["skipped"], kept.len());
    assert_eq!(json["summary"]["reconstructed"], 3);
    assert_eq!(json["summary"]["total"], first.len());
    let redone: BTreeSet<PathBuf> = [0, 2, 3].iter().map(|&k| names[k].clone()).collect();
    assert_eq!(with_status(&json, "ok", &photos), redone);
    assert_eq!(with_status(&json, "skipped", &photos), kept.keys().cloned().collect());
    // Everything is back and complete; the kept outputs are untouched.
    assert_eq!(files_under(&out), first);
    for (n, b) in &kept {
        assert_eq!(&std::fs::read(out.join(n)).unwrap(), b, "{} was rewritten", n.display());
    }
    assert!(
        image::open(&truncated).is_ok(),
        "the truncated output was not written again"
    );

    // A second rerun (a requeued task that had finished): nothing to do.
    let o = run(&["--skip-existing"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = report_of(&report);
    assert_eq!(json["summary"]["skipped"], first.len());
    assert_eq!(json["summary"]["reconstructed"], 0);
}

#[test]
fn bad_shard_values_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    let out = dir.path().join("out");
    for (bad, says) in [
        ("3/3", "below the number of shards"),
        ("0/0", "at least 1"),
        ("2", "expected I/N"),
        ("/4", "index is empty"),
        ("x/4", "not a whole number"),
        ("1/-2", "not a whole number"),
    ] {
        let o = infer(&[&"--model", &model(), &photos, &"--out", &out, &format!("--shard={bad}")]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("--shard") && err.contains(says), "{bad}: {err}");
        assert!(!out.exists(), "{bad}: something was written");
    }
    // Scoring is not sharded (its means and seeded holes are over the whole set).
    let o = infer(&[&"--model", &model(), &photos, &"--eval", &"--shard", &"0/2"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--shard"), "{}", stderr(&o));
}

/// `sh -c SCRIPT` (or `bash FILE`) with the binary on PATH and `env` set.
fn shell(program: &str, script: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, String)]) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_facerecon-infer")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = Command::new(program);
    for a in script {
        c.arg(a);
    }
    c.env("PATH", path).env("ORT_DYLIB_PATH", ort());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// All outputs of a fleet run, checked: every report's shard, and each image in one shard only.
fn check_fleet_run(out: &Path, n: usize) {
    assert_eq!(files_under(&out.join("images")), expected(false));
    let mut total = 0;
    for i in 0..n {
        let json = report_of(&out.join(format!("reports/shard-{i}.json")));
        assert_eq!(json["shard"]["index"], i);
        assert_eq!(json["shard"]["count"], n);
        total += json["summary"]["total"].as_u64().unwrap();
    }
    assert_eq!(total as usize, expected(false).len());
}

#[test]
fn slurm_array_example_runs_every_task() {
    let script = fleet_dir().join("slurm-array.sh");
    let text = std::fs::read_to_string(&script).unwrap();
    // The array is 0..N-1, as --shard I/N needs (I = SLURM_ARRAY_TASK_ID, N = SLURM_ARRAY_TASK_COUNT).
    let array = text
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("#SBATCH --array= line");
    let (lo, hi) = array.split_once('-').unwrap();
    assert_eq!(lo, "0");
    let n: usize = hi.trim().parse::<usize>().unwrap() + 1;
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    let out = dir.path().join("results");
    let env = |i: usize| {
        vec![
            ("SLURM_ARRAY_TASK_ID", i.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", n.to_string()),
            ("SLURM_CPUS_PER_TASK", "1".to_string()),
            ("MODEL", model().display().to_string()),
            ("INPUT", photos.display().to_string()),
            ("OUT", out.display().to_string()),
        ]
    };
    for i in 0..n {
        let o = shell("bash", &[&script], &env(i));
        assert_eq!(o.status.code(), Some(0), "task {i}: {}", stderr(&o));
    }
    check_fleet_run(&out, n);
    // A requeued task finds its shard done.
    let o = shell("bash", &[&script], &env(1));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let json = report_of(&out.join("reports/shard-1.json"));
    assert_eq!(json["summary"]["skipped"], json["summary"]["total"]);
    // Outside a job array: a clear error.
    let o = shell("bash", &[&script], &[]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("SLURM_ARRAY_TASK_ID"), "{}", stderr(&o));
}

#[test]
fn k8s_indexed_job_example_runs_every_index() {
    let text = std::fs::read_to_string(fleet_dir().join("k8s-indexed-job.yaml")).unwrap();
    let job: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap() as usize;
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
    let containers = spec["template"]["spec"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let command: Vec<&str> = c["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(command, ["sh", "-c"]);
    let script = c["args"][0].as_str().unwrap();
    assert!(
        script.contains("--shard \"$JOB_COMPLETION_INDEX/$SHARDS\"") && script.contains("--skip-existing"),
        "{script}"
    );
    let env: BTreeMap<String, String> = c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(env["SHARDS"], n.to_string(), "SHARDS must equal spec.completions");
    // The container's command for every index, with the manifest's env but this machine's paths.
    let dir = tempfile::tempdir().unwrap();
    let photos = make_tree(dir.path());
    let out = dir.path().join("results");
    for i in 0..n {
        let mut vars: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        vars.retain(|(k, _)| !["MODEL", "INPUT", "OUT", "ORT_DYLIB_PATH"].contains(k));
        vars.push(("MODEL", model().display().to_string()));
        vars.push(("INPUT", photos.display().to_string()));
        vars.push(("OUT", out.display().to_string()));
        vars.push(("JOB_COMPLETION_INDEX", i.to_string()));
        let o = shell("sh", &[&"-c", &script], &vars);
        assert_eq!(o.status.code(), Some(0), "index {i}: {}", stderr(&o));
    }
    check_fleet_run(&out, n);
}

#[test]
fn readme_quotes_the_fleet_examples_verbatim() {
    let readme = std::fs::read_to_string(fleet_dir().join("../../docs/usage.md")).unwrap();
    for f in ["slurm-array.sh", "k8s-indexed-job.yaml"] {
        let text = std::fs::read_to_string(fleet_dir().join(f)).unwrap();
        assert!(
            readme.contains(&text),
            "docs/usage.md's Fleet use section does not quote examples/fleet/{f} as it is"
        );
    }
}
