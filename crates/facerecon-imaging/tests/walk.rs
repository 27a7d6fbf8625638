//! Issue 15: directory walks (cycles, duplicates, skipped files reported), protected output paths
//! and our temp files (stale ones of dead processes removed).

use facerecon_imaging::io::{self, Protected};
use std::path::{Path, PathBuf};

fn rel(root: &Path, files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"))
        .collect()
}

fn touch(p: &Path) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, b"x").unwrap();
}

#[cfg(unix)]
#[test]
fn loops_are_not_followed_and_each_file_is_listed_once() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    touch(&d.join("a.png"));
    touch(&d.join("sub/b.jpg"));
    touch(&d.join("real/c.png"));
    symlink("..", d.join("sub/0loop")).unwrap(); // back to the root: a cycle
    symlink("real", d.join("alias")).unwrap(); // a second way into real/
    symlink("a.png", d.join("z.png")).unwrap(); // a second name of a.png
    std::fs::hard_link(d.join("sub/b.jpg"), d.join("sub/hard.jpg")).unwrap();
    symlink("nowhere.png", d.join("dangling.png")).unwrap();
    symlink("self.png", d.join("self.png")).unwrap(); // a link to itself
    touch(&d.join("anim.gif"));
    touch(&d.join(".hidden.png"));

    let listing = io::walk_images(d);
    // First path in sorted order wins: alias/ (before real/), a.png (before z.png), sub/b.jpg.
    assert_eq!(rel(d, &listing.files), ["a.png", "alias/c.png", "sub/b.jpg"]);
    let reasons: Vec<(String, String)> = listing
        .skipped
        .iter()
        .map(|s| (rel(d, std::slice::from_ref(&s.path))[0].clone(), s.reason.clone()))
        .collect();
    let reason = |name: &str| {
        reasons
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{name} not skipped: {reasons:?}"))
    };
    assert!(reason("sub/0loop").contains("loop"), "{reasons:?}");
    assert!(
        reason("real").contains("same directory as") && reason("real").contains("alias"),
        "{reasons:?}"
    );
    assert!(
        reason("z.png").contains("same file as") && reason("z.png").contains("a.png"),
        "{reasons:?}"
    );
    assert!(reason("sub/hard.jpg").contains("same file as"), "{reasons:?}");
    assert!(reason("dangling.png").contains("dangling symbolic link"), "{reasons:?}");
    assert!(reason("self.png").contains("cannot follow"), "{reasons:?}");
    assert!(reason("anim.gif").contains("not a supported image"), "{reasons:?}");
    assert_eq!(reasons.len(), 7, "{reasons:?}"); // hidden files are skipped silently
                                                 // Deterministic: the same listing twice; list_images is its file list.
    assert_eq!(io::walk_images(d), listing);
    assert_eq!(io::list_images(d), listing.files);
}

#[cfg(unix)]
#[test]
fn unreadable_directories_and_a_missing_root_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = io::walk_images(&d.join("missing"));
    assert!(missing.files.is_empty());
    assert!(
        missing.skipped[0].reason.contains("cannot read directory"),
        "{:?}",
        missing.skipped
    );
    touch(&d.join("ok.png"));
    touch(&d.join("locked/in.png"));
    std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let listing = io::walk_images(d);
    std::fs::set_permissions(d.join("locked"), std::fs::Permissions::from_mode(0o755)).unwrap();
    if std::fs::read_dir(d.join("locked")).is_ok() && is_root() {
        return; // root reads everything: nothing to observe
    }
    assert_eq!(rel(d, &listing.files), ["ok.png"]);
    assert_eq!(listing.skipped.len(), 1, "{:?}", listing.skipped);
    assert!(listing.skipped[0].path.ends_with("locked") && listing.skipped[0].reason.contains("cannot read directory"));
}

/// Whether we run as root (permission bits do not stop root).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn protected_paths_refuse_outputs_inside_equal_or_linked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    touch(&d.join("in/a.png"));
    touch(&d.join("model.onnx"));
    let mut p = Protected::default();
    p.add("the input directory", &d.join("in"));
    p.add("the model", &d.join("model.onnx"));
    let err = p.check("--report", &d.join("in/a.png")).unwrap_err();
    assert!(
        err.contains("--report") && err.contains("lies inside the input directory"),
        "{err}"
    );
    assert!(
        p.check("--report", &d.join("in/new/x.json")).is_err(),
        "a path not created yet inside an input"
    );
    assert!(p
        .check("--report", &d.join("in/../model.onnx"))
        .unwrap_err()
        .contains("is the model"));
    assert!(p.check("--report", &d.join("in")).is_err());
    p.check("--report", &d.join("report.json")).unwrap();
    p.check("--out", &d.join("out")).unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(d.join("in"), d.join("link")).unwrap();
        assert!(
            p.check("--out", &d.join("link/x.png")).is_err(),
            "through a symbolic link"
        );
        std::fs::hard_link(d.join("model.onnx"), d.join("hard.json")).unwrap();
        let err = p.check("--report", &d.join("hard.json")).unwrap_err();
        assert!(err.contains("same file as the model"), "{err}");
    }
}

#[test]
fn probe_writable_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    io::probe_writable(&d.join("new/dir/r.json")).unwrap();
    assert!(d.join("new/dir").is_dir());
    assert_eq!(
        std::fs::read_dir(d.join("new/dir")).unwrap().count(),
        0,
        "the probe left a file"
    );
    assert!(io::probe_writable(d).unwrap_err().contains("is a directory"));
    touch(&d.join("file"));
    let err = io::probe_writable(&d.join("file/r.json")).unwrap_err();
    assert!(err.contains("r.json"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn temp_files_are_hidden_and_stale_ones_of_dead_processes_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = io::temp_path(&d.join("x.png"));
    assert_eq!(tmp, d.join(format!(".x.png.tmp-{}", std::process::id())));
    // 9999999 > pid_max (2^22): never a live process.
    let stale = [".a.png.tmp-9999999", "b.png.tmp-9999999", ".m.onnx.tmp-9999998"];
    let kept = [
        format!(".c.png.tmp-{}", std::process::id()), // ours, alive
        ".d.png.tmp-1".to_string(),                   // PID 1 is alive
        "e.tmp-12x".to_string(),                      // not our pattern
        ".tmp-9999999".to_string(),                   // no name
        "f.png".to_string(),
    ];
    for n in stale.iter().map(|s| s.to_string()).chain(kept.iter().cloned()) {
        touch(&d.join(n));
    }
    assert_eq!(io::clean_stale_temps(d), 3);
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want = kept.to_vec();
    want.sort();
    assert_eq!(left, want);
    // A write into a fresh directory cleans it first (once per process).
    let d2 = d.join("out");
    touch(&d2.join(".old.png.tmp-9999999"));
    io::write_atomic(&d2.join("r.json"), b"{}").unwrap();
    let names: Vec<_> = std::fs::read_dir(&d2)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("r.json")]);
}
