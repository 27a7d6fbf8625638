//! Loading ONNX Runtime: the shared library is opened at run time (`ort`'s `load-dynamic`), once per
//! process, so the build never downloads or links anything.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, OnceLock},
};

use ort::environment::Environment;

use crate::RuntimeError;

static ENVIRONMENT: OnceLock<Environment> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The process-wide ONNX Runtime environment, loading the library on first use from `explicit`, else
/// `ORT_DYLIB_PATH`, else the platform's default name on the loader's search path. A failed attempt
/// is not remembered, so a caller may retry with another path.
pub(crate) fn environment(explicit: Option<&Path>) -> Result<&'static Environment, RuntimeError> {
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    // One loader at a time; the loser of a race finds the environment set.
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(env) = ENVIRONMENT.get() {
        return Ok(env);
    }
    let (path, origin) = library_path(explicit);
    let tried = format!("{} ({origin})", path.display());
    if origin != "system search path" && !path.exists() {
        return Err(RuntimeError::OrtLibrary {
            tried,
            msg: "no such file".into(),
        });
    }
    let builder = ort::init_from(&path).map_err(|e| RuntimeError::OrtLibrary {
        tried: tried.clone(),
        msg: e.to_string(),
    })?;
    let env = builder
        .with_name("facerecon")
        .build()
        .map_err(|e| RuntimeError::OrtLibrary {
            tried,
            msg: e.to_string(),
        })?;
    Ok(ENVIRONMENT.get_or_init(|| env))
}

fn library_path(explicit: Option<&Path>) -> (PathBuf, &'static str) {
    if let Some(p) = explicit {
        return (p.to_path_buf(), "RuntimeOptions.ort_library");
    }
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "ORT_DYLIB_PATH"),
        _ => (
            PathBuf::from(format!(
                "{}onnxruntime{}",
                std::env::consts::DLL_PREFIX,
                std::env::consts::DLL_SUFFIX
            )),
            "system search path",
        ),
    }
}
