//! File names of a run directory (`runs/NAME/`, docs/ARCHITECTURE.md "Checkpoint directory"): written by
//! the trainer, read by the exporter, the scripts and the tests.
//!
//! Each checkpoint is a directory `ckpt.NNNNNN/` holding [`FILES`] and [`MANIFEST_FILE`]; the symlink
//! [`CURRENT_LINK`] names the committed one, and the run directory's `model.safetensors` etc. are links
//! through it, so readers open `runs/NAME/<file>` whatever the layout.
//!
//! ```
//! use facerecon_contract::checkpoint::{checkpoint_dir_name, FILES, MODEL_FILE};
//! assert_eq!(FILES[0], MODEL_FILE);
//! assert_eq!(checkpoint_dir_name(42), "ckpt.000042");
//! ```

/// The model weights (safetensors; tensor names per the spec, the same as the ONNX initializers).
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimiser state (safetensors, its step in the metadata).
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The resolved training config (YAML, with `name`).
pub const CONFIG_FILE: &str = "config.yaml";
/// Where the run stands (epoch, step, position in the epoch, best record, data).
pub const STATE_FILE: &str = "state.json";
/// One [`crate::MetricsRecord`] per finished epoch, one JSON object per line.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// Written last into each checkpoint directory: sizes and [`crate::fnv1a64`] hashes of [`FILES`].
pub const MANIFEST_FILE: &str = "manifest.json";
/// The symlink naming the committed checkpoint directory.
pub const CURRENT_LINK: &str = "current";
/// Checkpoint directories are this prefix and a generation number ([`checkpoint_dir_name`]).
pub const CHECKPOINT_DIR_PREFIX: &str = "ckpt.";
/// The held-out validation files, one path per line (`facerecon-infer --eval` and the demo score them).
pub const VAL_FILES: &str = "val_files.txt";
/// The files of a checkpoint, in writing order (the manifest follows them).
pub const FILES: [&str; 5] = [MODEL_FILE, OPTIMIZER_FILE, CONFIG_FILE, STATE_FILE, METRICS_FILE];

/// The name of the checkpoint directory of generation `generation` (`ckpt.NNNNNN`).
pub fn checkpoint_dir_name(generation: u64) -> String {
    format!("{CHECKPOINT_DIR_PREFIX}{generation:06}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_pinned() {
        assert_eq!(
            FILES,
            [
                "model.safetensors",
                "optimizer.safetensors",
                "config.yaml",
                "state.json",
                "metrics.jsonl"
            ]
        );
        assert_eq!(
            (MANIFEST_FILE, CURRENT_LINK, CHECKPOINT_DIR_PREFIX, VAL_FILES),
            ("manifest.json", "current", "ckpt.", "val_files.txt")
        );
        assert_eq!(checkpoint_dir_name(7), "ckpt.000007");
        assert_eq!(checkpoint_dir_name(1_234_567), "ckpt.1234567");
    }
}
