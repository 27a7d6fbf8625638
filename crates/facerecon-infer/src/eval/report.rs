//! `--eval` results: per-image records, per-set means, the printed table and the `--report` JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facerecon_imaging::metrics::{self, Metrics, Sharpness};
use serde::Serialize;

/// The outcome of one image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    /// Position in the sorted input list (the `i` of the seeded mask rule).
    pub index: usize,
    /// The image file.
    pub input: PathBuf,
    /// Which INPUT argument it came from (index into the sets).
    pub set: usize,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Fraction of the model-size mask that is hole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hole_fraction: Option<f32>,
    /// The metrics of the composited result against the fitted original (NaN is written as null).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Gradient energy inside the hole of the composite and of the original, and their ratio
    /// (`metrics::sharpness`; a NaN ratio is written as null).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub sharpness: Option<Sharpness>,
}

/// Means over one INPUT argument (or over everything).
#[derive(Debug, Clone, Serialize)]
pub struct SetSummary {
    /// The INPUT as given, or `all`.
    pub set: String,
    /// Images scored.
    pub images: usize,
    /// Images that could not be scored.
    pub failed: usize,
    /// Field-by-field means over the scored images (NaN fields skipped, see `metrics::mean`).
    pub mean: Metrics,
    /// The set's sharpness ratio: summed hole gradient energy of the results over the originals'
    /// (`metrics::pooled_sharpness`).
    pub sharpness: f64,
}

/// Per-set summaries: one per INPUT (in argument order), then `all` when there are several.
pub fn summarise(results: &[ImageResult], set_names: &[String]) -> Vec<SetSummary> {
    let summary = |name: String, filter: &dyn Fn(&ImageResult) -> bool| {
        let picked: Vec<&ImageResult> = results.iter().filter(|r| filter(r)).collect();
        let ms: Vec<Metrics> = picked.iter().filter_map(|r| r.metrics).collect();
        let sharp: Vec<Sharpness> = picked.iter().filter_map(|r| r.sharpness).collect();
        SetSummary {
            set: name,
            images: ms.len(),
            failed: picked.len() - ms.len(),
            mean: metrics::mean(&ms),
            sharpness: metrics::pooled_sharpness(&sharp),
        }
    };
    let mut sets: Vec<SetSummary> = set_names
        .iter()
        .enumerate()
        .map(|(k, name)| summary(name.clone(), &|r| r.set == k))
        .collect();
    if sets.len() > 1 {
        sets.push(summary("all".into(), &|_| true));
    }
    sets
}

/// The markdown table printed at the end of `--eval`.
pub fn table(sets: &[SetSummary], holes: &str, seed: Option<u64>) -> String {
    let seed = seed.map_or("-".to_string(), |s| s.to_string());
    let mut out = String::from(
        "| set | images | failed | holes | seed | psnr_full (dB) | psnr_hole (dB) | ssim | l1_hole | sharpness |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in sets {
        out.push_str(&format!(
            "| {} | {} | {} | {holes} | {seed} | {:.2} | {:.2} | {:.4} | {:.3} | {:.3} |\n",
            s.set, s.images, s.failed, s.mean.psnr_full, s.mean.psnr_hole, s.mean.ssim, s.mean.l1_hole, s.sharpness
        ));
    }
    out
}

/// The `--report` file of `--eval`.
#[derive(Serialize)]
pub struct EvalReport<'a> {
    /// The model file.
    pub model: &'a Path,
    /// Its `facerecon.name`.
    pub model_name: Option<&'a str>,
    /// Model input size.
    pub image_size: u32,
    /// Execution provider.
    pub provider: String,
    /// `box28`, `box32-64`, `mixed` or `masks` (files).
    pub holes: &'a str,
    /// The mask file or directory, with `holes = masks`.
    pub masks: Option<&'a Path>,
    /// The seed of the seeded masks.
    pub seed: Option<u64>,
    /// How seeded masks are drawn, in words.
    pub mask_rule: &'a str,
    /// Wall time.
    pub seconds: f64,
    /// Per-set means (the last is `all` when there are several sets).
    pub sets: &'a [SetSummary],
    /// Per-image results, in index order.
    pub files: &'a [ImageResult],
    /// What the directory walks left out, with why.
    pub skipped: &'a [facerecon_imaging::io::Skipped],
}

/// Write the report atomically.
pub fn write(path: &Path, report: &EvalReport) -> Result<()> {
    let json = serde_json::to_vec_pretty(report)?;
    facerecon_imaging::io::write_atomic(path, &json).with_context(|| format!("writing the report {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(set: usize, psnr: Option<f64>) -> ImageResult {
        // Per image: result energy 1, original energy psnr / 10 (ratios 1/3, 1/2, 1/4).
        ImageResult {
            index: 0,
            input: "x.png".into(),
            set,
            status: if psnr.is_some() { "ok" } else { "failed" },
            error: None,
            hole_fraction: None,
            metrics: psnr.map(|p| Metrics {
                psnr_full: p,
                psnr_hole: p - 13.0,
                ssim: 0.9,
                l1_hole: 1.0,
            }),
            sharpness: psnr.map(|p| Sharpness {
                sharpness: 10.0 / p,
                grad_energy_hole: 1.0,
                grad_energy_hole_original: p / 10.0,
            }),
        }
    }

    #[test]
    fn sets_average_their_own_images() {
        let rs = [
            result(0, Some(30.0)),
            result(0, Some(20.0)),
            result(1, Some(40.0)),
            result(1, None),
        ];
        let sets = summarise(&rs, &["a".into(), "b".into()]);
        assert_eq!(sets.len(), 3);
        assert_eq!((sets[0].images, sets[0].failed, sets[0].mean.psnr_full), (2, 0, 25.0));
        assert_eq!((sets[1].images, sets[1].failed, sets[1].mean.psnr_full), (1, 1, 40.0));
        assert_eq!((sets[2].set.as_str(), sets[2].images, sets[2].failed), ("all", 3, 1));
        assert!((sets[2].mean.psnr_full - 30.0).abs() < 1e-12);
        // Sharpness is pooled, not averaged: (1 + 1) / (3 + 2) for set a, (1 + 1 + 1) / 9 for all.
        assert!((sets[0].sharpness - 0.4).abs() < 1e-12, "{}", sets[0].sharpness);
        assert!((sets[2].sharpness - 3.0 / 9.0).abs() < 1e-12, "{}", sets[2].sharpness);
        let t = table(&sets, "box28", Some(5));
        assert!(
            t.contains("| a | 2 | 0 | box28 | 5 | 25.00 | 12.00 | 0.9000 | 1.000 | 0.400 |"),
            "{t}"
        );
        assert_eq!(summarise(&rs[..2], &["a".into()]).len(), 1);
    }
}
