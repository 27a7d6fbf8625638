//! facerecon-train: trains the face-inpainting autoencoder described by a config.
//!
//! * [`config`] — the run configuration (`configs/*.yaml`), defaults and validation.
//! * [`data`] — deterministic split, streamed batches decoded in the background (or read from the
//!   decoded-sample cache, [`data::cache`]), validation set.
//! * [`init`] — initial weights seeded by the run's seed (candle's own are not).
//! * [`loss`] — MSE / BCE / L1 with a heavier weight inside the holes.
//! * [`optim`] — Adam, SGD, RMSprop (Keras semantics) with checkpointable state; lr schedules.
//! * [`adversarial`] — the discriminator and its losses (`train.adversarial`).
//! * [`distill`] — a teacher model's fill in the target (`train.distill`).
//! * [`checkpoint`] — the `runs/NAME/` directory, written atomically.
//! * [`validate`] — validation metrics and sample grids.
//! * [`setup`] / [`train`] — preparing a run and the training loop ([`train::run`]).
pub mod adversarial;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distill;
pub mod init;
pub mod loss;
pub mod optim;
pub mod setup;
pub mod train;
pub mod validate;

pub use config::{Config, ConfigError};
/// One `metrics.jsonl` record, the type the trainer writes (defined in `facerecon-contract`).
pub use facerecon_contract::MetricsRecord;
pub use setup::TrainOptions;
pub use train::{run, Summary};
