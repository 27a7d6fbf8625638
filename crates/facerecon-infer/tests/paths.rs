//! Issue 15, directory walks / output paths / messages, end to end on the identity fixture model:
//! symlink loops and duplicate files are walked once and reported, skipped files are reported (on
//! stderr and in --report), no output may name or lie inside an input / the model / a mask, every
//! output path is checked before any image runs, and decode errors are not hidden by name clashes.
//! They need ONNX Runtime: `make test` sets ORT_DYLIB_PATH.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use facerecon_testutil::{identity_model as model, stderr};
use image::{Rgb, RgbImage};

fn infer(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .args(&args)
        .env("ORT_DYLIB_PATH", facerecon_testutil::ort_library())
        .output()
        .unwrap()
}

fn photo(seed: u8) -> RgbImage {
    RgbImage::from_fn(24, 20, |x, y| {
        Rgb([60 + (x as u8 * 7) % 150, 70 + (y as u8 * 11) % 150, 90 + seed])
    })
}

/// Every regular file under `dir` (not following links), relative.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_duplicates_are_walked_once_and_skipped_files_reported() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(photos.join("sub")).unwrap();
    photo(1).save(photos.join("a.png")).unwrap();
    photo(2).save(photos.join("sub/b.png")).unwrap();
    // sub/0loop -> photos: a cycle, named to sort before the files (the old walk kept the deepest path).
    symlink("..", photos.join("sub/0loop")).unwrap();
    symlink("a.png", photos.join("z_same.png")).unwrap(); // the same file under a second name
    symlink("gone.png", photos.join("dangling.png")).unwrap();
    std::fs::write(photos.join("anim.gif"), b"GIF89a").unwrap();
    let out = dir.path().join("out");
    let report = dir.path().join("r.json");
    let o = infer(&[
        &"--model",
        &model(),
        &photos,
        &"--out",
        &out,
        &"--box",
        &"2,2,4,4",
        &"--report",
        &report,
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // Each real file once, at its first path in sorted order; nothing written down the loop.
    assert_eq!(
        files_under(&out),
        [PathBuf::from("a.png"), PathBuf::from("sub/b.png")],
        "{err}"
    );
    for (name, why) in [
        ("dangling.png", "dangling"),
        ("anim.gif", "not a supported image"),
        ("z_same.png", "same file as"),
        ("0loop", "loop"),
    ] {
        assert!(
            err.lines().any(|l| l.contains(name) && l.contains(why)),
            "{name} ({why}) not reported:\n{err}"
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["summary"]["total"], 2);
    let skipped = json["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(skipped.iter().any(|s| s["path"].as_str().unwrap().ends_with("anim.gif")
        && s["reason"].as_str().unwrap().contains("not a supported image")));
}

#[test]
fn no_output_may_name_an_input_the_model_or_a_mask() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    photo(1).save(photos.join("a.png")).unwrap();
    let input_bytes = std::fs::read(photos.join("a.png")).unwrap();
    let model_copy = dir.path().join("m.onnx");
    std::fs::copy(model(), &model_copy).unwrap();
    let model_bytes = std::fs::read(&model_copy).unwrap();
    let out = dir.path().join("out");

    // --report onto an input photo, onto the model, inside the input directory: refused up front.
    for target in [photos.join("a.png"), model_copy.clone(), photos.join("report.json")] {
        let o = infer(&[
            &"--model",
            &model_copy,
            &photos,
            &"--out",
            &out,
            &"--box",
            &"2,2,4,4",
            &"--report",
            &target,
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", target.display());
        assert!(
            err.contains("--report") && err.contains(&*target.to_string_lossy()),
            "{err}"
        );
        assert!(!out.exists(), "work started before the --report check: {err}");
    }
    // A hard link to the model under another name is the model too.
    #[cfg(unix)]
    {
        let link = dir.path().join("hard.json");
        std::fs::hard_link(&model_copy, &link).unwrap();
        let o = infer(&[
            &"--model",
            &model_copy,
            &photos.join("a.png"),
            &"--out",
            &out,
            &"--box",
            &"2,2,4,4",
            &"--report",
            &link,
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("hard.json"), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(photos.join("a.png")).unwrap(), input_bytes);
    assert_eq!(std::fs::read(&model_copy).unwrap(), model_bytes);

    // --out into the mask directory would overwrite the masks (both are <stem>.png).
    let masks = dir.path().join("masks");
    std::fs::create_dir_all(&masks).unwrap();
    image::GrayImage::new(24, 20).save(masks.join("a.png")).unwrap();
    let o = infer(&[
        &"--model",
        &model_copy,
        &photos,
        &"--out",
        &masks,
        &"--masks",
        &masks,
        &"--overwrite",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--masks"), "{}", stderr(&o));

    // An input directory inside --out whose outputs would land back inside it.
    let outer = dir.path().join("outer");
    let inner = outer.join("photos");
    std::fs::create_dir_all(inner.join("photos")).unwrap();
    photo(3).save(inner.join("photos/c.jpg")).unwrap();
    let o = infer(&[&"--model", &model_copy, &inner, &"--out", &outer, &"--box", &"2,2,4,4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("inside the input directory"), "{}", stderr(&o));
    assert!(!inner.join("c.png").exists());
}

#[cfg(unix)]
#[test]
fn an_unwritable_report_fails_before_any_image_runs() {
    let dir = tempfile::tempdir().unwrap();
    photo(1).save(dir.path().join("a.png")).unwrap();
    let out = dir.path().join("out");
    // The report's "directory" is a file: nothing can be created there.
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    let report = dir.path().join("file/r.json");
    let o = infer(&[
        &"--model",
        &model(),
        &dir.path().join("a.png"),
        &"--out",
        &out,
        &"--box",
        &"2,2,4,4",
        &"--report",
        &report,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("r.json"), "{}", stderr(&o));
    assert!(
        !out.join("a.png").exists(),
        "images ran before the report path was checked"
    );
    // A directory as the report.
    let o = infer(&[
        &"--model",
        &model(),
        &dir.path().join("a.png"),
        &"--out",
        &out,
        &"--box",
        &"2,2,4,4",
        &"--report",
        &dir.path(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
}

#[test]
fn messages_name_the_path_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    photo(1).save(photos.join("x.jpg")).unwrap();
    let good = std::fs::read(photos.join("x.jpg")).unwrap();
    photo(2).save(photos.join("x.png")).unwrap();
    let png = std::fs::read(photos.join("x.png")).unwrap();
    std::fs::write(photos.join("x.png"), &png[..png.len() / 2]).unwrap();
    assert!(!good.is_empty());

    // --out is a file.
    let file = dir.path().join("plain.txt");
    std::fs::write(&file, b"keep").unwrap();
    let o = infer(&[&"--model", &model(), &photos, &"--out", &file, &"--box", &"2,2,4,4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("exists and is not a directory") && stderr(&o).contains("plain.txt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");

    // The truncated x.png clashes with x.jpg's output: its decode error is still reported.
    let out = dir.path().join("out");
    let o = infer(&[&"--model", &model(), &photos, &"--out", &out, &"--box", &"2,2,4,4"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("x.png") && l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        line.contains("decod") || line.contains("truncated") || line.contains("corrupt") || line.contains("invalid"),
        "decode error hidden: {line}"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn stale_temp_files_of_dead_runs_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    photo(1).save(dir.path().join("a.png")).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // A PID that cannot be alive (above the kernel's pid_max limit of 2^22).
    let dead = out.join(".b.png.tmp-9999999");
    let old_style = out.join("c.png.tmp-9999998");
    let alive = out.join(format!(".d.png.tmp-{}", std::process::id()));
    let foreign = out.join("notes.tmp-12ab");
    for f in [&dead, &old_style, &alive, &foreign] {
        std::fs::write(f, b"partial").unwrap();
    }
    let o = infer(&[
        &"--model",
        &model(),
        &dir.path().join("a.png"),
        &"--out",
        &out,
        &"--box",
        &"2,2,4,4",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("a.png").exists());
    assert!(!dead.exists() && !old_style.exists(), "stale temp files left");
    assert!(
        alive.exists() && foreign.exists(),
        "a live process's temp file or a foreign file was removed"
    );
}
