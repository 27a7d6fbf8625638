//! One record of `metrics.jsonl`: the trainer appends one per finished epoch; the exporter stores the
//! last one in the model's metadata ([`crate::keys::METRICS`]); tests and tools read them back.
//!
//! The JSON is an object whose keys come out sorted (the record is written through a
//! `serde_json::Value`, as the trainer always wrote it), and numbers read back are the ones written
//! (serde_json's `float_roundtrip`, enabled by this crate), so a resumed run's records are identical to
//! an uninterrupted run's. Keys this type does not know (e.g. `stage`, `run`, `config` in
//! `exported/unet.metrics.jsonl`, which a script assembled from several runs) are kept in
//! [`MetricsRecord::extra`] and written back.
//!
//! ```
//! use facerecon_contract::MetricsRecord;
//!
//! let line = r#"{"epoch":2,"images_per_sec":40.5,"l1_hole":5.9,"lr":0.001,"psnr_full":32.5,"psnr_hole":22.3,"psnr_raw":30.1,"ssim":0.95,"step":1326,"train_loss":0.06,"val_images":500,"val_loss":0.057,"wall_s":531.7}"#;
//! let r = MetricsRecord::from_line(line).unwrap();
//! assert_eq!((r.epoch, r.psnr_hole, r.data_wait), (2, Some(22.3), None));
//! assert_eq!(r.to_line(), line); // byte for byte
//! ```

use serde::{ser::Error as _, Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// One epoch's line of `metrics.jsonl`.
///
/// The validation fields are `None` (written as `null`) when the run has no validation set. Every
/// field but [`MetricsRecord::data_wait`] (added later; absent in older runs) must be present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
// `remote = "Self"`: the derives become inherent functions, wrapped by the trait impls below so that
// the record is written through a `Value` (sorted keys, the format the trainer has always written).
#[serde(remote = "Self")]
pub struct MetricsRecord {
    /// The finished epoch, 1-based.
    pub epoch: usize,
    /// Optimiser steps taken in total at the end of the epoch.
    pub step: u64,
    /// Mean training loss over the epoch's images.
    pub train_loss: f64,
    /// Validation loss.
    pub val_loss: Option<f64>,
    /// PSNR (dB) of the composited image (DESIGN.md "Metrics").
    pub psnr_full: Option<f64>,
    /// PSNR (dB) over hole pixels only.
    pub psnr_hole: Option<f64>,
    /// SSIM of the composited image.
    pub ssim: Option<f64>,
    /// Mean absolute error over hole pixels x 100.
    pub l1_hole: Option<f64>,
    /// PSNR (dB) of the raw reconstruction (no compositing).
    pub psnr_raw: Option<f64>,
    /// Validation images the metrics average over.
    pub val_images: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Training throughput over the epoch.
    pub images_per_sec: f64,
    /// Seconds the epoch took (all its resumed parts).
    pub wall_s: f64,
    /// Fraction of the epoch's training time spent waiting for the data thread; absent in records
    /// written before it was measured (and then not written back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_wait: Option<f64>,
    /// Keys this type does not know, kept as they were read.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Serialize for MetricsRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().map_err(S::Error::custom)?.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for MetricsRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        MetricsRecord::deserialize(deserializer)
    }
}

impl MetricsRecord {
    /// The record without the fields that measure the machine (`images_per_sec`, `wall_s`, `data_wait`
    /// set to 0, 0, `None`): what a rerun or a resumed run must reproduce exactly.
    ///
    /// ```
    /// # let line = r#"{"epoch":1,"images_per_sec":40.5,"l1_hole":5.9,"lr":0.001,"psnr_full":32.5,"psnr_hole":22.3,"psnr_raw":30.1,"ssim":0.95,"step":663,"train_loss":0.06,"val_images":500,"val_loss":0.057,"wall_s":531.7}"#;
    /// let a = facerecon_contract::MetricsRecord::from_line(line).unwrap();
    /// let b = facerecon_contract::MetricsRecord { wall_s: 99.0, data_wait: Some(0.5), ..a.clone() };
    /// assert_ne!(a, b);
    /// assert_eq!(a.without_timings(), b.without_timings());
    /// ```
    pub fn without_timings(&self) -> MetricsRecord {
        MetricsRecord {
            images_per_sec: 0.0,
            wall_s: 0.0,
            data_wait: None,
            ..self.clone()
        }
    }

    /// The record as a JSON object (keys sorted; non-finite numbers become `null`, as serde_json writes
    /// them).
    pub fn to_value(&self) -> Result<Value, serde_json::Error> {
        MetricsRecord::serialize(self, serde_json::value::Serializer)
    }

    /// The record as one line of `metrics.jsonl` (without the newline).
    pub fn to_line(&self) -> String {
        // Serializing a struct of numbers and JSON values into a `Value` cannot fail.
        self.to_value().expect("a metrics record is plain JSON").to_string()
    }

    /// Parse one line of `metrics.jsonl` (or the model's `facerecon.metrics` metadata).
    pub fn from_line(line: &str) -> Result<MetricsRecord, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// Parse every non-blank line of a `metrics.jsonl` text; the error names the 1-based line.
    pub fn parse_all(text: &str) -> Result<Vec<MetricsRecord>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| MetricsRecord::from_line(l).map_err(|e| format!("line {}: {e}", i + 1)))
            .collect()
    }

    /// The last record of a `metrics.jsonl` text (`None` if it has none).
    pub fn last(text: &str) -> Result<Option<MetricsRecord>, serde_json::Error> {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(MetricsRecord::from_line)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MetricsRecord {
        MetricsRecord {
            epoch: 3,
            step: 1989,
            train_loss: 0.057839905447287086,
            val_loss: Some(0.05693513196706772),
            psnr_full: Some(32.36111681384948),
            psnr_hole: Some(22.14666915400936),
            ssim: Some(0.9485520372552302),
            l1_hole: Some(6.095697397656117),
            psnr_raw: Some(29.952484054193935),
            val_images: 500,
            lr: 0.00017858408788639805,
            images_per_sec: 40.19404066072516,
            wall_s: 531.686227476,
            data_wait: Some(0.012),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn written_like_the_trainers_json_object_and_read_back_exactly() {
        let r = record();
        let line = r.to_line();
        // What the trainer wrote with `json!` before this type existed: a Value, so sorted keys.
        let expected = serde_json::json!({
            "epoch": 3, "step": 1989, "train_loss": r.train_loss, "val_loss": r.val_loss,
            "psnr_full": r.psnr_full, "psnr_hole": r.psnr_hole, "ssim": r.ssim, "l1_hole": r.l1_hole,
            "psnr_raw": r.psnr_raw, "val_images": 500, "lr": r.lr, "images_per_sec": r.images_per_sec,
            "wall_s": r.wall_s, "data_wait": 0.012,
        });
        assert_eq!(line, expected.to_string());
        assert!(line.starts_with(r#"{"data_wait":0.012,"epoch":3,"#), "{line}");
        assert_eq!(MetricsRecord::from_line(&line).unwrap(), r);
        // Nested in another serde type (state.json's `best`), the same object.
        assert_eq!(serde_json::to_string(&vec![r.clone()]).unwrap(), format!("[{line}]"));
    }

    #[test]
    fn no_validation_is_null_and_an_old_record_has_no_data_wait() {
        let mut r = record();
        (r.val_loss, r.psnr_full, r.data_wait) = (None, None, None);
        let line = r.to_line();
        assert!(line.contains(r#""val_loss":null"#) && line.contains(r#""psnr_full":null"#));
        assert!(!line.contains("data_wait"), "{line}");
        assert_eq!(MetricsRecord::from_line(&line).unwrap(), r);
    }

    #[test]
    fn unknown_keys_survive_a_round_trip() {
        // exported/unet.metrics.jsonl: a script added stage/run/config to the trainer's records.
        let line = r#"{"config":"configs/unet.yaml","epoch":1,"images_per_sec":17.881516145929965,"l1_hole":7.374863105329867,"lr":0.000915782962775333,"psnr_full":30.871262844734254,"psnr_hole":20.65681518489406,"psnr_raw":27.638822196436287,"run":"runs/unet","ssim":0.9386637441427466,"stage":1,"step":663,"train_loss":0.12829488193622945,"val_images":500,"val_loss":0.07152410587668419,"wall_s":1193.632556951}"#;
        let r = MetricsRecord::from_line(line).unwrap();
        assert_eq!(r.extra["stage"], 1);
        assert_eq!(r.extra["run"], "runs/unet");
        assert_eq!(r.psnr_hole, Some(20.65681518489406));
        assert_eq!(r.to_line(), line);
    }

    #[test]
    fn a_broken_record_is_an_error() {
        assert!(MetricsRecord::from_line(r#"{"epoch":1}"#).is_err(), "missing fields");
        let mut v = record().to_value().unwrap();
        v["train_loss"] = "high".into();
        assert!(MetricsRecord::from_line(&v.to_string()).is_err(), "wrong type");
        assert!(MetricsRecord::from_line("[1,2]").is_err());
        let err = MetricsRecord::parse_all(&format!("{}\n\n{{oops\n", record().to_line())).unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
    }

    #[test]
    fn last_skips_blank_lines() {
        let mut second = record();
        second.epoch = 4;
        let text = format!("{}\n{}\n\n", record().to_line(), second.to_line());
        assert_eq!(MetricsRecord::last(&text).unwrap().unwrap().epoch, 4);
        assert_eq!(MetricsRecord::last("\n").unwrap(), None);
        assert_eq!(MetricsRecord::parse_all(&text).unwrap().len(), 2);
    }
}
