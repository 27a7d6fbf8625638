//! facerecon-contract: the names and conventions that several crates (and files on disk) must agree
//! on, defined once.
//!
//! - [`names`]: the ONNX model's input and output tensor names;
//! - [`keys`] and [`MASK_CONVENTION`]: the model file's `metadata_props`;
//! - [`mask`]: what a mask pixel means (255 = hole, any value >= [`HOLE_THRESHOLD`] counts, [`is_hole`]);
//! - [`checkpoint`]: the file names of a run directory written by the trainer and read by the exporter;
//! - [`metrics`]: one record of `metrics.jsonl` ([`MetricsRecord`]), written by the trainer and read by
//!   the exporter (model metadata) and the tests;
//! - [`fnv1a64`]: the hash behind the checkpoint manifest, the train/validation split and `--shard`.
//!
//! The crate has no code beyond these definitions and depends only on serde (for the metrics record), so
//! the runtime and the C library can use it without growing. Everything else spells a name through it:
//! changing a value here changes the format, and the tests of this crate pin every value.
//!
//! ```
//! use facerecon_contract::{is_hole, keys, names, HOLE_THRESHOLD, MASK_CONVENTION};
//!
//! assert_eq!([names::IMAGE, names::MASK], ["image", "mask"]);
//! assert_eq!(keys::MASK_CONVENTION, "facerecon.mask_convention");
//! assert_eq!(MASK_CONVENTION, "1=hole,0=known");
//! assert!(is_hole(255) && is_hole(HOLE_THRESHOLD) && !is_hole(HOLE_THRESHOLD - 1));
//! ```

pub mod checkpoint;
pub mod mask;
pub mod metrics;

pub use mask::{is_hole, HOLE_THRESHOLD};
pub use metrics::MetricsRecord;

/// Input and output tensor names of an exported model (the model file contract of DESIGN.md).
///
/// The exporter writes them, the runtime checks and feeds them, and the model spec uses the input
/// names for the graph inputs a layer may read.
pub mod names {
    /// Input: `[N,3,S,S]` float32 image in `[0,1]`, holes already zeroed.
    pub const IMAGE: &str = "image";
    /// Input: `[N,1,S,S]` float32 mask, 1 = hole, 0 = known (see [`crate::mask`]).
    pub const MASK: &str = "mask";
    /// Output: the raw network output `[N,3,S,S]`.
    pub const RECONSTRUCTION: &str = "reconstruction";
    /// Output: `mask*reconstruction + (1-mask)*image`, `[N,3,S,S]`.
    pub const INPAINTED: &str = "inpainted";
    /// The inputs, in graph order.
    pub const INPUTS: [&str; 2] = [IMAGE, MASK];
    /// The outputs, in graph order.
    pub const OUTPUTS: [&str; 2] = [RECONSTRUCTION, INPAINTED];
}

/// `metadata_props` keys of an exported model (docs/ARCHITECTURE.md, "ONNX metadata_props keys"),
/// written by the exporter and read by the runtime.
pub mod keys {
    /// Side of the square input, in pixels.
    pub const IMAGE_SIZE: &str = "facerecon.image_size";
    /// Colour channels of `image` (3).
    pub const CHANNELS: &str = "facerecon.channels";
    /// Whether the network reads the mask as an extra channel (`true` / `false`).
    pub const MASK_CHANNEL: &str = "facerecon.mask_channel";
    /// Must be [`crate::MASK_CONVENTION`].
    pub const MASK_CONVENTION: &str = "facerecon.mask_convention";
    /// Version of the exporter that wrote the file.
    pub const PRODUCER_VERSION: &str = "facerecon.producer_version";
    /// The training config (YAML text, verbatim).
    pub const CONFIG: &str = "facerecon.config";
    /// Run / model name (the config's `name`).
    pub const NAME: &str = "facerecon.name";
    /// JSON of the last validation record ([`crate::MetricsRecord`]), `{}` when the run recorded none.
    pub const METRICS: &str = "facerecon.metrics";
    /// ONNX opset of the graph.
    pub const OPSET: &str = "facerecon.opset";
    /// int8 files only: JSON describing the quantization (scheme, layers, calibration).
    pub const QUANTIZATION: &str = "facerecon.quantization";
    /// float16 files only: [`crate::PRECISION_FLOAT16`].
    pub const PRECISION: &str = "facerecon.precision";
}

/// The value of [`keys::MASK_CONVENTION`]: the only mask convention a facerecon model may have.
pub const MASK_CONVENTION: &str = "1=hole,0=known";

/// The value of [`keys::PRECISION`] in a float16 model.
pub const PRECISION_FLOAT16: &str = "float16";

/// 64-bit FNV-1a: a tiny hash that never changes between processes, platforms or Rust versions
/// (unlike std's `RandomState`). On-disk and cross-run contracts rest on it: the checkpoint manifest's
/// file hashes, the trainer's train/validation split by file name, and `facerecon-infer --shard`.
///
/// ```
/// // The published test vectors.
/// assert_eq!(facerecon_contract::fnv1a64(b""), 0xcbf29ce484222325);
/// assert_eq!(facerecon_contract::fnv1a64(b"foobar"), 0x85944171f73967e8);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values are the format: a change here must be deliberate (and breaks files already written).
    #[test]
    fn values_are_pinned() {
        assert_eq!(names::INPUTS, ["image", "mask"]);
        assert_eq!(names::OUTPUTS, ["reconstruction", "inpainted"]);
        let all = [
            keys::IMAGE_SIZE,
            keys::CHANNELS,
            keys::MASK_CHANNEL,
            keys::MASK_CONVENTION,
            keys::PRODUCER_VERSION,
            keys::CONFIG,
            keys::NAME,
            keys::METRICS,
            keys::OPSET,
            keys::QUANTIZATION,
            keys::PRECISION,
        ];
        assert_eq!(
            all.map(|k| k.strip_prefix("facerecon.").unwrap()),
            [
                "image_size",
                "channels",
                "mask_channel",
                "mask_convention",
                "producer_version",
                "config",
                "name",
                "metrics",
                "opset",
                "quantization",
                "precision"
            ]
        );
        assert_eq!(MASK_CONVENTION, "1=hole,0=known");
        assert_eq!(PRECISION_FLOAT16, "float16");
    }

    #[test]
    fn fnv1a64_matches_the_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }
}
