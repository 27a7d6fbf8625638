//! Compile examples/c/camera.c with the system C compiler against include/facerecon.h and the
//! libfacerecon.so cargo built for this test, run it on the identity fixture model, and check what it
//! printed. This is the test that the hand-kept header matches the library.
//!
//! Needs ONNX Runtime: `make test` sets ORT_DYLIB_PATH.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The directory holding the libfacerecon.so built with this test: the test executable's own,
/// target/<profile>/deps/. (`cargo test` builds this package's lib with all its crate types, cdylib
/// included, but copies it up to target/<profile>/ only for `cargo build`: that copy may be stale.)
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("target/<profile>/deps/").to_path_buf();
    let so = dir.join(format!(
        "{}facerecon{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        so.is_file(),
        "{} was not built next to the test executable",
        so.display()
    );
    dir
}

#[test]
fn camera_example_compiles_runs_and_passes_its_checks() {
    let ort = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()).unwrap_or_else(|| {
        panic!("ORT_DYLIB_PATH is not set: this test runs the C example through ONNX Runtime. Run `make test` (it runs `make setup` and sets it), or export ORT_DYLIB_PATH=$(scripts/setup-ort.sh)")
    });
    let root = repo_root();
    let lib_dir = library_dir();
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("camera");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());

    let compiled = Command::new(&cc)
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("examples/c/camera.c"))
        .arg("-L")
        .arg(&lib_dir)
        .arg("-lfacerecon")
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(
        compiled.status.success(),
        "{cc} failed on examples/c/camera.c:\n{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let model = root.join("crates/facerecon-runtime/tests/data/identity.onnx");
    // 6 frames of 160x120: enough to see the loop, fast in a debug build.
    let ran = Command::new(&exe)
        .arg(&model)
        .args(["6", "160", "120"])
        .env("ORT_DYLIB_PATH", &ort)
        .output()
        .expect("run the compiled example");
    let stdout = String::from_utf8_lossy(&ran.stdout);
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(
        ran.status.success(),
        "camera exited with {}:\n{stdout}\n{stderr}",
        ran.status
    );

    assert!(
        stdout.contains(&format!("libfacerecon {}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("32x32 input, batch 3"), "{stdout}");
    for check in [
        "a missing model file is reported, naming it",
        "NULL arguments are rejected",
        "options reach the runtime",
        "every frame: known pixels unchanged, hole pixels filled",
        "in-place reconstruction equals out-of-place, padding untouched",
        "a known hole box gives the same frame; a box that cuts the hole is refused",
        "batch results equal one-by-one results",
        "a bad frame in a batch is named",
        "the model closes",
        "a closed model is refused",
        "a second close is an error",
    ] {
        assert!(
            stdout.contains(&format!("check: {check}: OK")),
            "missing passed check {check:?}:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    let frames = stdout.lines().filter(|l| l.starts_with("frame ")).count();
    assert_eq!(frames, 6, "{stdout}");
    // The identity model fills every hole pixel (its hole colour is never black).
    for line in stdout.lines().filter(|l| l.starts_with("frame ")) {
        let filled = line
            .split(": ")
            .nth(2)
            .and_then(|s| s.split(' ').next())
            .expect("n/m hole pixels filled");
        let (n, m) = filled.split_once('/').unwrap();
        assert_eq!(n, m, "not every hole pixel filled: {line}");
        assert!(line.ends_with(", 0 known pixels changed"), "{line}");
    }
    assert!(stdout.contains("latency over 6 frames: mean"), "{stdout}");
}
