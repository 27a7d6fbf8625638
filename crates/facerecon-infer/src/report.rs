//! Per-file outcomes, the closing summary and the `--report` JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use facerecon_imaging::io::Skipped;
use serde::Serialize;

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Holes reconstructed, output written.
    Ok,
    /// The mask had no hole: the image was written unchanged (as PNG).
    NoHole,
    /// Nothing written; see `error`.
    Failed,
    /// `--skip-existing`: its output was already complete; not read, nothing written.
    Skipped,
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct FileResult {
    /// The input file.
    pub input: PathBuf,
    /// Where the output was (or would have been) written.
    pub output: PathBuf,
    /// Outcome.
    pub status: Status,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Fraction of the image's pixels that were holes (known once the mask was built).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hole_fraction: Option<f32>,
}

/// Totals over a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Inputs.
    pub total: usize,
    /// Reconstructed.
    pub reconstructed: usize,
    /// Copied unchanged (no hole).
    pub no_hole: usize,
    /// Failed.
    pub failed: usize,
    /// Skipped, their outputs complete already (`--skip-existing`).
    pub skipped: usize,
    /// Wall time.
    pub seconds: f64,
    /// (reconstructed + no_hole) / seconds.
    pub images_per_second: f64,
}

impl Summary {
    /// Count the results.
    pub fn of(results: &[FileResult], seconds: f64) -> Summary {
        let count = |s: Status| results.iter().filter(|r| r.status == s).count();
        let (reconstructed, no_hole, failed, skipped) = (
            count(Status::Ok),
            count(Status::NoHole),
            count(Status::Failed),
            count(Status::Skipped),
        );
        Summary {
            total: results.len(),
            reconstructed,
            no_hole,
            failed,
            skipped,
            seconds,
            images_per_second: if seconds > 0.0 {
                (reconstructed + no_hole) as f64 / seconds
            } else {
                0.0
            },
        }
    }

    /// The closing line.
    pub fn line(&self) -> String {
        let skipped = match self.skipped {
            0 => String::new(),
            n => format!(", {n} skipped (output exists)"),
        };
        format!(
            "{} reconstructed, {} without hole (copied), {} failed{skipped}, of {} images in {:.2}s ({:.1} images/s)",
            self.reconstructed, self.no_hole, self.failed, self.total, self.seconds, self.images_per_second
        )
    }
}

#[derive(Serialize)]
struct Report<'a> {
    model: &'a Path,
    model_name: Option<&'a str>,
    image_size: u32,
    provider: String,
    summary: &'a Summary,
    files: &'a [FileResult],
    /// What the directory walks left out, with why.
    skipped: &'a [Skipped],
    /// `--shard`: which share of the inputs this run took.
    #[serde(skip_serializing_if = "Option::is_none")]
    shard: Option<ShardInfo>,
}

/// The `shard` of the report: this run's `--shard I/N` and the number of inputs of all shards.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ShardInfo {
    /// I (0-based).
    pub index: u64,
    /// N.
    pub count: u64,
    /// Inputs found before sharding (this run's `summary.total` is its share).
    pub inputs_all_shards: usize,
}

/// Prints what the directory walks skipped, one warning line each (the first [`MAX_SKIPPED_LINES`];
/// `--report` lists them all). Printed even with `--quiet`: a skipped file is never silent.
pub fn print_skipped(skipped: &[Skipped]) {
    for s in skipped.iter().take(MAX_SKIPPED_LINES) {
        eprintln!("warning: skipped {}: {}", s.path.display(), s.reason);
    }
    if skipped.len() > MAX_SKIPPED_LINES {
        eprintln!(
            "warning: ... and {} more skipped paths (--report lists them all)",
            skipped.len() - MAX_SKIPPED_LINES
        );
    }
}

/// How many skipped paths are printed one by one.
pub const MAX_SKIPPED_LINES: usize = 50;

/// Write the JSON report atomically.
// Each argument is one section of the report, each from a different stage of the run; a struct
// gathering them would only be built here to be taken apart in `Report`.
#[allow(clippy::too_many_arguments)]
pub fn write(
    path: &Path,
    model: &Path,
    info: &facerecon_runtime::ModelInfo,
    provider: String,
    summary: &Summary,
    files: &[FileResult],
    skipped: &[Skipped],
    shard: Option<ShardInfo>,
) -> Result<()> {
    let report = Report {
        model,
        model_name: info.name.as_deref(),
        image_size: info.image_size,
        provider,
        summary,
        files,
        skipped,
        shard,
    };
    let json = serde_json::to_vec_pretty(&report)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    facerecon_imaging::io::write_atomic(path, &json).with_context(|| format!("writing the report {}", path.display()))
}
