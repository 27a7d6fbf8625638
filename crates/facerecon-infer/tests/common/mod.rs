//! Helpers shared by facerecon-infer's integration tests that need the binary itself (the crate-independent
//! ones live in facerecon-testutil; `CARGO_BIN_EXE_*` exists only inside this package's tests).

use std::process::{Command, Output};

use facerecon_testutil::ort_library;

/// Run the `facerecon-infer` binary with `args` (strings or paths) and the tests' ONNX Runtime.
pub fn infer<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_facerecon-infer"))
        .args(args)
        .env("ORT_DYLIB_PATH", ort_library())
        .output()
        .expect("running facerecon-infer")
}
