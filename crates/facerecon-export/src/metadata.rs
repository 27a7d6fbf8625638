//! What an exported model says about itself (`metadata_props`), read by `facerecon-runtime`.

use facerecon_model::ModelSpec;

/// The metadata keys of docs/ARCHITECTURE.md.
pub mod keys {
    /// Side of the square input (`S`).
    pub const IMAGE_SIZE: &str = "facerecon.image_size";
    /// Colour channels of the image input (3).
    pub const CHANNELS: &str = "facerecon.channels";
    /// `true` when the mask is also a network input channel.
    pub const MASK_CHANNEL: &str = "facerecon.mask_channel";
    /// The meaning of mask values; always [`MASK_CONVENTION`](super::MASK_CONVENTION) (`1=hole,0=known`).
    pub const MASK_CONVENTION: &str = "facerecon.mask_convention";
    /// The exporter's crate version.
    pub const PRODUCER_VERSION: &str = "facerecon.producer_version";
    /// The YAML config that trained the model.
    pub const CONFIG: &str = "facerecon.config";
    /// The run's name.
    pub const NAME: &str = "facerecon.name";
    /// The last validation metrics (JSON), when the run has any.
    pub const METRICS: &str = "facerecon.metrics";
    /// The opset written (also in `opset_import`).
    pub const OPSET: &str = "facerecon.opset";
}

/// The mask convention of every facerecon model.
pub const MASK_CONVENTION: &str = "1=hole,0=known";

/// Facts about the trained model that the spec alone does not hold.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Run / model name (the config's `name`).
    pub name: String,
    /// The config that trained the model (YAML text, stored verbatim).
    pub config_yaml: String,
    /// The last validation metrics (a JSON object), if the run recorded any.
    pub metrics: Option<serde_json::Value>,
}

impl Metadata {
    /// `(key, value)` pairs for `metadata_props`, in a fixed order.
    pub fn props(&self, spec: &ModelSpec, opset: i64) -> Vec<(String, String)> {
        let metrics = self
            .metrics
            .as_ref()
            .map_or_else(|| "{}".to_string(), |m| m.to_string());
        [
            (keys::IMAGE_SIZE, spec.image_size.to_string()),
            (keys::CHANNELS, spec.channels.to_string()),
            (keys::MASK_CHANNEL, spec.mask_channel.to_string()),
            (keys::MASK_CONVENTION, MASK_CONVENTION.to_string()),
            (keys::PRODUCER_VERSION, crate::PRODUCER_VERSION.to_string()),
            (keys::CONFIG, self.config_yaml.clone()),
            (keys::NAME, self.name.clone()),
            (keys::METRICS, metrics),
            (keys::OPSET, opset.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}
