//! What an exported model says about itself (`metadata_props`), read by `facerecon-runtime`.

use facerecon_contract::MetricsRecord;
use facerecon_model::ModelSpec;

/// The metadata keys (docs/ARCHITECTURE.md) and the mask convention of every facerecon model, defined
/// in `facerecon-contract` (the runtime reads the same keys).
pub use facerecon_contract::{keys, MASK_CONVENTION};

/// Facts about the trained model that the spec alone does not hold.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// Run / model name (the config's `name`).
    pub name: String,
    /// The config that trained the model (YAML text, stored verbatim).
    pub config_yaml: String,
    /// The last `metrics.jsonl` record, if the run recorded any.
    pub metrics: Option<MetricsRecord>,
}

impl Metadata {
    /// `(key, value)` pairs for `metadata_props`, in a fixed order.
    pub fn props(&self, spec: &ModelSpec, opset: i64) -> Vec<(String, String)> {
        let metrics = self
            .metrics
            .as_ref()
            .map_or_else(|| "{}".to_string(), MetricsRecord::to_line);
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
