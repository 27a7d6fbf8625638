//! What the runtime knows about a model file: read from its `metadata_props` (written by
//! `facerecon-export`) and checked against its input shapes, rather than guessed.

use std::collections::BTreeMap;

/// The mask convention every facerecon model must use.
pub const MASK_CONVENTION: &str = "1=hole,0=known";

/// Metadata keys (see docs/ARCHITECTURE.md, "ONNX metadata_props keys").
pub mod keys {
    /// Side of the square input, in pixels.
    pub const IMAGE_SIZE: &str = "facerecon.image_size";
    /// Colour channels of `image` (3).
    pub const CHANNELS: &str = "facerecon.channels";
    /// Whether the network reads the mask as an extra channel.
    pub const MASK_CHANNEL: &str = "facerecon.mask_channel";
    /// Must be [`super::MASK_CONVENTION`].
    pub const MASK_CONVENTION: &str = "facerecon.mask_convention";
    /// Version of the exporter that wrote the file.
    pub const PRODUCER_VERSION: &str = "facerecon.producer_version";
    /// The training config (YAML).
    pub const CONFIG: &str = "facerecon.config";
    /// Run / model name.
    pub const NAME: &str = "facerecon.name";
    /// JSON of the last validation metrics.
    pub const METRICS: &str = "facerecon.metrics";
    /// ONNX opset of the graph.
    pub const OPSET: &str = "facerecon.opset";
}

/// A validated description of a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// Side of the square network input (`S` in `[N,3,S,S]`).
    pub image_size: u32,
    /// Colour channels of the `image` input (always 3 once validated).
    pub channels: u32,
    /// The batch size baked into the graph, if it is not symbolic.
    pub fixed_batch: Option<usize>,
    /// `facerecon.name`.
    pub name: Option<String>,
    /// `facerecon.mask_channel`.
    pub mask_channel: Option<bool>,
    /// `facerecon.producer_version`.
    pub producer_version: Option<String>,
    /// `facerecon.opset`.
    pub opset: Option<String>,
    /// `facerecon.config` (YAML text).
    pub config: Option<String>,
    /// `facerecon.metrics`, parsed.
    pub metrics: Option<serde_json::Value>,
    /// Every `metadata_props` entry, including the ones above.
    pub metadata: BTreeMap<String, String>,
}

impl ModelInfo {
    /// Build and check the description from the metadata and the declared shapes of the `image` and
    /// `mask` inputs (`-1` for symbolic dimensions). The error is a message for
    /// [`crate::RuntimeError::InvalidModel`].
    pub fn from_parts(
        metadata: BTreeMap<String, String>,
        image_shape: &[i64],
        mask_shape: &[i64],
    ) -> Result<Self, String> {
        if image_shape.len() != 4 {
            return Err(format!(
                "input `image` has rank {} (shape {image_shape:?}), expected [N,3,S,S]",
                image_shape.len()
            ));
        }
        if mask_shape.len() != 4 {
            return Err(format!(
                "input `mask` has rank {} (shape {mask_shape:?}), expected [N,1,S,S]",
                mask_shape.len()
            ));
        }
        let parse_u32 = |key: &str| -> Result<Option<u32>, String> {
            metadata
                .get(key)
                .map(|v| {
                    v.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("metadata {key} = {v:?} is not a positive integer"))
                })
                .transpose()
        };
        let static_dim = |d: i64| (d > 0).then_some(d as u32);

        // Size: metadata first; the input shape must agree with it wherever it is static.
        let shape_size = match (static_dim(image_shape[2]), static_dim(image_shape[3])) {
            (Some(h), Some(w)) if h != w => {
                return Err(format!(
                    "input `image` is {h}x{w}; the model must take square images"
                ))
            }
            (h, w) => h.or(w),
        };
        let image_size = match (parse_u32(keys::IMAGE_SIZE)?, shape_size) {
            (Some(m), Some(s)) if m != s => {
                return Err(format!(
                    "metadata {} = {m} disagrees with the input shape {image_shape:?}",
                    keys::IMAGE_SIZE
                ))
            }
            (Some(m), _) => m,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(format!(
                    "no {} metadata and the input shape {image_shape:?} has no static size",
                    keys::IMAGE_SIZE
                ))
            }
        };
        if image_size == 0 {
            return Err("image size is 0".into());
        }
        for (i, d) in mask_shape[2..].iter().enumerate() {
            if let Some(d) = static_dim(*d) {
                if d != image_size {
                    return Err(format!("input `mask` shape {mask_shape:?} does not match the image size {image_size} (axis {})", i + 2));
                }
            }
        }
        if static_dim(mask_shape[1]).is_some_and(|c| c != 1) {
            return Err(format!(
                "input `mask` shape {mask_shape:?} must have 1 channel"
            ));
        }

        let channels = parse_u32(keys::CHANNELS)?
            .or(static_dim(image_shape[1]))
            .unwrap_or(3);
        if channels != 3 || static_dim(image_shape[1]).is_some_and(|c| c != 3) {
            return Err(format!(
                "input `image` must have 3 (RGB) channels; got {channels} (shape {image_shape:?})"
            ));
        }
        if let Some(conv) = metadata.get(keys::MASK_CONVENTION) {
            if conv != MASK_CONVENTION {
                return Err(format!(
                    "metadata {} = {conv:?}; only {MASK_CONVENTION:?} is supported",
                    keys::MASK_CONVENTION
                ));
            }
        }
        let fixed_batch = match (static_dim(image_shape[0]), static_dim(mask_shape[0])) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "inputs `image` and `mask` have different batch sizes ({a} vs {b})"
                ))
            }
            (a, b) => a.or(b).map(|n| n as usize),
        };
        let metrics = match metadata.get(keys::METRICS) {
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|e| format!("metadata {} is not JSON: {e}", keys::METRICS))?,
            ),
            None => None,
        };
        let mask_channel = match metadata.get(keys::MASK_CHANNEL).map(|s| s.trim()) {
            None => None,
            Some("true") | Some("1") => Some(true),
            Some("false") | Some("0") => Some(false),
            Some(other) => {
                return Err(format!(
                    "metadata {} = {other:?} is not a boolean",
                    keys::MASK_CHANNEL
                ))
            }
        };
        let get = |key: &str| metadata.get(key).cloned();
        Ok(ModelInfo {
            image_size,
            channels,
            fixed_batch,
            name: get(keys::NAME),
            mask_channel,
            producer_version: get(keys::PRODUCER_VERSION),
            opset: get(keys::OPSET),
            config: get(keys::CONFIG),
            metrics,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn metadata_wins_and_symbolic_dims_are_fine() {
        let m = meta(&[
            (keys::IMAGE_SIZE, "128"),
            (keys::NAME, "seed"),
            (keys::METRICS, r#"{"psnr_hole": 21.5}"#),
            (keys::MASK_CHANNEL, "true"),
        ]);
        let info = ModelInfo::from_parts(m, &[-1, 3, -1, -1], &[-1, 1, -1, -1]).unwrap();
        assert_eq!(info.image_size, 128);
        assert_eq!(info.fixed_batch, None);
        assert_eq!(info.name.as_deref(), Some("seed"));
        assert_eq!(info.mask_channel, Some(true));
        assert_eq!(info.metrics.unwrap()["psnr_hole"], 21.5);
    }

    #[test]
    fn falls_back_to_the_input_shape() {
        let info =
            ModelInfo::from_parts(BTreeMap::new(), &[2, 3, 64, 64], &[2, 1, 64, 64]).unwrap();
        assert_eq!(info.image_size, 64);
        assert_eq!(info.fixed_batch, Some(2));
    }

    #[test]
    fn rejects_inconsistent_models() {
        let sym = [-1, 3, -1, -1];
        type Case = (BTreeMap<String, String>, Vec<i64>, Vec<i64>, &'static str);
        let cases: Vec<Case> = vec![
            (
                BTreeMap::new(),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "no static size",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "64")]),
                vec![-1, 3, 32, 32],
                vec![-1, 1, 32, 32],
                "disagrees",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                vec![-1, 4, 32, 32],
                vec![-1, 1, 32, 32],
                "3 (RGB) channels",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32"), (keys::MASK_CONVENTION, "0=hole")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "only",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "abc")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "not a positive integer",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                vec![-1, 3, 32],
                vec![-1, 1, 32, 32],
                "rank 3",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32")]),
                sym.to_vec(),
                vec![-1, 1, 16, 16],
                "does not match",
            ),
            (
                meta(&[(keys::IMAGE_SIZE, "32"), (keys::METRICS, "{oops")]),
                sym.to_vec(),
                vec![-1, 1, -1, -1],
                "not JSON",
            ),
        ];
        for (m, img, mask, want) in cases {
            let err = ModelInfo::from_parts(m, &img, &mask).unwrap_err();
            assert!(err.contains(want), "{err:?} should mention {want:?}");
        }
    }
}
