//! Return codes, the per-thread last error, and the guard that keeps panics and errors on the Rust
//! side of the boundary.

use std::{
    cell::RefCell,
    ffi::{c_char, c_int, CString},
    panic::{catch_unwind, AssertUnwindSafe},
};

use facerecon_runtime::RuntimeError;

/// `facerecon_status` of include/facerecon.h; the values are part of the ABI.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// A NULL pointer, a zero size, a stride shorter than a row, a frame too large...
    InvalidArgument = 1,
    /// The model file is missing, not ONNX, or breaks the model contract.
    Model = 2,
    /// ONNX Runtime failed while running the model.
    Inference = 3,
    /// The ONNX Runtime library could not be loaded.
    OrtLibrary = 4,
    /// The requested execution provider is unavailable.
    Provider = 5,
    /// Reserved (a pixel operation failed, in 0.1.0 before the runtime's error kinds were audited);
    /// not returned by this version. Kept so that no value is ever reused with another meaning.
    Image = 6,
    /// A caught panic: a bug in the library.
    Internal = 7,
    /// A model handle that is not open: closed already (use after close, double close) or never
    /// returned by `facerecon_open`.
    InvalidHandle = 8,
}

/// A failed call: its code and the message `facerecon_last_error` will return.
#[derive(Debug)]
pub struct Failure {
    /// What kind of failure.
    pub status: Status,
    /// What went wrong, for a human.
    pub message: String,
}

impl Failure {
    /// An [`Status::InvalidArgument`] failure.
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: Status::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        let status = match &e {
            RuntimeError::OrtLibrary { .. } => Status::OrtLibrary,
            RuntimeError::InvalidModel { .. } => Status::Model,
            RuntimeError::Provider { .. } => Status::Provider,
            RuntimeError::Ort { .. } | RuntimeError::Inference(_) => Status::Inference,
            RuntimeError::MaskSize { .. } | RuntimeError::HoleBox(_) => Status::InvalidArgument,
            // `RuntimeError` is `#[non_exhaustive]`: a kind added to the runtime but not mapped here
            // is this library's omission, reported as such (the message still says what happened).
            _ => Status::Internal,
        };
        Failure {
            status,
            message: e.to_string(),
        }
    }
}

struct LastError {
    status: Status,
    message: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<LastError> = RefCell::new(LastError {
        status: Status::Ok,
        message: CString::default(),
    });
}

fn record(status: Status, message: &str) {
    // Interior NULs cannot be represented in a C string; no message of ours has one, but be total.
    let message = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = LastError { status, message });
}

/// The last recorded message; the pointer lives until the next `record` on this thread (the
/// thread-local `CString` owns the bytes and is only replaced by `record`).
pub fn last_error_ptr() -> *const c_char {
    // `try_with`: during thread teardown the slot may be gone; never panic in an extern "C" fn.
    LAST_ERROR
        .try_with(|last| last.borrow().message.as_ptr())
        .unwrap_or(c"".as_ptr())
}

/// The last recorded status.
pub fn last_status() -> Status {
    LAST_ERROR.try_with(|last| last.borrow().status).unwrap_or(Status::Ok)
}

/// Run one fallible entry point: clear the last error, run `body` with panics caught, record the
/// outcome. Returns the value on success, else records the failure and returns `None`.
pub fn guard<T>(body: impl FnOnce() -> Result<T, Failure>) -> Option<T> {
    record(Status::Ok, "");
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => return Some(value),
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Failure {
                status: Status::Internal,
                message: format!("internal error in libfacerecon (please report): {what}"),
            }
        }
    };
    record(failure.status, &failure.message);
    None
}

/// [`guard`] for entry points that return a status code.
pub fn guard_status(body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    match guard(body) {
        Some(()) => Status::Ok as c_int,
        None => last_status() as c_int,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every runtime error kind gets the status include/facerecon.h documents for it, and keeps its
    /// message (ONNX Runtime's own message included for an ORT failure).
    #[test]
    fn runtime_errors_map_to_their_documented_status() {
        let ort = std::io::Error::other("ORT says: bad broadcast");
        let cases = [
            (
                RuntimeError::OrtLibrary {
                    tried: "/x/libonnxruntime.so".into(),
                    msg: "not found".into(),
                },
                Status::OrtLibrary,
                "/x/libonnxruntime.so",
            ),
            (
                RuntimeError::InvalidModel {
                    path: "m.onnx".into(),
                    msg: "no such file".into(),
                },
                Status::Model,
                "m.onnx",
            ),
            (
                RuntimeError::Provider {
                    provider: "CUDA:0".into(),
                    msg: "no GPU".into(),
                },
                Status::Provider,
                "CUDA:0",
            ),
            (
                RuntimeError::Ort {
                    context: "m.onnx (run)".into(),
                    source: Box::new(ort),
                },
                Status::Inference,
                "ORT says: bad broadcast",
            ),
            (
                RuntimeError::Inference("output `reconstruction` missing".into()),
                Status::Inference,
                "reconstruction",
            ),
            (
                RuntimeError::MaskSize {
                    width: 4,
                    height: 3,
                    mask_width: 2,
                    mask_height: 3,
                },
                Status::InvalidArgument,
                "mask is 2x3",
            ),
            (
                RuntimeError::HoleBox("0x4 at (1, 2) is empty".into()),
                Status::InvalidArgument,
                "hole box: 0x4",
            ),
        ];
        for (error, status, text) in cases {
            let f = Failure::from(error);
            assert_eq!(f.status, status, "{}", f.message);
            assert!(f.message.contains(text), "{} should contain {text:?}", f.message);
        }
    }

    #[test]
    fn records_errors_and_panics_per_call() {
        // SAFETY: `last_error_ptr` returns a NUL-terminated string owned by this thread, alive until its next call.
        let text = || unsafe { CStr::from_ptr(last_error_ptr()) }.to_str().unwrap().to_owned();
        assert_eq!(guard_status(|| Err(Failure::invalid("bad width"))), 1);
        assert_eq!((last_status(), text()), (Status::InvalidArgument, "bad width".into()));
        assert_eq!(guard_status(|| panic!("boom")), Status::Internal as c_int);
        assert!(text().contains("boom"), "{}", text());
        // A successful call clears the previous error.
        assert_eq!(guard_status(|| Ok(())), 0);
        assert_eq!((last_status(), text()), (Status::Ok, String::new()));
        // Other threads have their own.
        guard_status(|| Err(Failure::invalid("mine")));
        std::thread::spawn(|| assert_eq!(last_status(), Status::Ok))
            .join()
            .unwrap();
        assert_eq!(text(), "mine");
    }
}
