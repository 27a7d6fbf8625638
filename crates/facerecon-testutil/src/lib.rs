//! Helpers shared by the tests of facerecon-runtime, facerecon-infer and facerecon-capi: where the
//! ONNX Runtime library and the tiny test models are, small deterministic test images, and the
//! property tests' case count. A dev-dependency only; nothing here ships.
//!
//! ```
//! let photo = facerecon_testutil::noise(8, 6, 1);
//! let mask = facerecon_testutil::box_mask(8, 6, 2, 1, 3, 2);
//! assert_eq!(photo.dimensions(), mask.dimensions());
//! assert_eq!(mask.pixels().filter(|p| p.0[0] == 255).count(), 6);
//! assert_eq!(photo, facerecon_testutil::noise(8, 6, 1)); // the same seed, the same image
//! ```

use std::path::PathBuf;
use std::process::Output;

use image::{GrayImage, Luma, Rgb, RgbImage};

/// The ONNX Runtime library the tests load: `ORT_DYLIB_PATH`, which `make test` sets (it fetches the
/// library first). Panics with the command to run when it is not set, so a missing library is never
/// mistaken for a failure of the code under test.
pub fn ort_library() -> String {
    std::env::var("ORT_DYLIB_PATH")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| {
            panic!(
                "ORT_DYLIB_PATH is not set: these tests need the ONNX Runtime library. \
             Run `make test` (it sets it), or export ORT_DYLIB_PATH=$(scripts/setup-ort.sh)"
            )
        })
}

/// A file of `crates/facerecon-runtime/tests/data/` (the tiny ONNX models; see `make_identity.py`
/// there).
pub fn runtime_data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../facerecon-runtime/tests/data")
        .join(name)
}

/// `identity.onnx`: the model file contract at 32x32 with `reconstruction = 0.5 * image + bias`, so
/// every hole pixel (zeroed input) comes out as [`HOLE_COLOUR`].
pub fn identity_model() -> PathBuf {
    runtime_data("identity.onnx")
}

/// What [`identity_model`] writes into every hole pixel: RGB (0.1, 0.3, 0.5) in 8 bits.
pub const HOLE_COLOUR: Rgb<u8> = Rgb([26, 77, 128]);

/// Cases per property test: `FACERECON_FUZZ_CASES` (`make fuzz` raises it), else `default` (small,
/// for `make test`).
pub fn fuzz_cases(default: u32) -> u32 {
    std::env::var("FACERECON_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A process's stderr as text (lossy), for assertions on messages.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A `w x h` image of xorshift noise over the full 0-255 range, the same for the same `seed`.
pub fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    noise_with(w, h, seed, |b| b)
}

/// Like [`noise`] but every sample in 40..=239: no near-black pixel, so the CLI's detector of
/// blacked-out boxes never sees a hole that the test did not paint.
pub fn bright_noise(w: u32, h: u32, seed: u32) -> RgbImage {
    noise_with(w, h, seed, |b| 40 + b % 200)
}

fn noise_with(w: u32, h: u32, seed: u32, sample: impl Fn(u8) -> u8) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761) | 1;
    RgbImage::from_fn(w, h, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            sample((state >> 24) as u8)
        };
        Rgb([next(), next(), next()])
    })
}

/// A `w x h` mask with one hole (255), the rectangle at (`x0`, `y0`) of `bw x bh`; 0 elsewhere.
pub fn box_mask(w: u32, h: u32, x0: u32, y0: u32, bw: u32, bh: u32) -> GrayImage {
    GrayImage::from_fn(w, h, |x, y| {
        let inside = x >= x0 && x < x0 + bw && y >= y0 && y < y0 + bh;
        Luma([if inside { 255 } else { 0 }])
    })
}
