//! `commit_all`: the exporter's `--out` and `--reference` are replaced together or not at all.
//! Before it, the reference was renamed into place first and the model second, so a failing
//! second rename left new reference outputs beside the old model.

mod common;

use common::names;
use facerecon_export::{commit_all, Staged};
use std::path::Path;

/// A staged file for `dest` holding `text`.
fn staged(dest: &Path, text: &str) -> Staged {
    let s = Staged::new(dest).unwrap();
    std::fs::write(s.temp(), text).unwrap();
    s
}

#[test]
fn all_destinations_are_replaced_and_no_temp_file_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, reference) = (tmp.path().join("m.onnx"), tmp.path().join("m.ref.npz"));
    std::fs::write(&model, "old model").unwrap();
    commit_all(vec![staged(&model, "new model"), staged(&reference, "new reference")]).unwrap();
    assert_eq!(std::fs::read_to_string(&model).unwrap(), "new model");
    assert_eq!(std::fs::read_to_string(&reference).unwrap(), "new reference");
    assert_eq!(names(tmp.path()), ["m.onnx", "m.ref.npz"]);
}

#[test]
fn a_failing_second_rename_puts_the_first_file_back() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.onnx");
    // A non-empty directory where the second file goes: renaming a file over it fails.
    let reference = tmp.path().join("ref");
    std::fs::create_dir(&reference).unwrap();
    std::fs::write(reference.join("keep"), "x").unwrap();
    std::fs::write(&model, "old model").unwrap();

    let err = commit_all(vec![staged(&model, "new model"), staged(&reference, "new reference")]).unwrap_err();
    assert!(err.to_string().contains("ref"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&model).unwrap(),
        "old model",
        "the model was replaced alone"
    );
    assert_eq!(std::fs::read_to_string(reference.join("keep")).unwrap(), "x");
    assert_eq!(names(tmp.path()), ["m.onnx", "ref"], "temp or backup files left");
}

#[test]
fn a_first_file_that_did_not_exist_is_removed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.onnx");
    let reference = tmp.path().join("ref");
    std::fs::create_dir(&reference).unwrap();
    std::fs::write(reference.join("keep"), "x").unwrap();

    commit_all(vec![staged(&model, "new model"), staged(&reference, "new reference")]).unwrap_err();
    assert!(!model.exists(), "a model without its reference outputs was left");
    assert_eq!(names(tmp.path()), ["ref"]);
}
