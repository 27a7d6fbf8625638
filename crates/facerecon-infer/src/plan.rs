//! From the command line to a list of jobs: which files, where each output goes, which mask file
//! pairs with it. Everything that can be decided before decoding a pixel is decided here.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use facerecon_imaging::io::{walk_images, Protected, Skipped, IMAGE_EXTENSIONS};

/// One input image and what to do with it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The input file, as given or found.
    pub input: PathBuf,
    /// Its path relative to the INPUT directory it was found in (its file name for a file INPUT).
    pub relative: PathBuf,
    /// Where the PNG goes.
    pub output: PathBuf,
    /// Set when the job is known to fail before decoding (its output exists).
    pub error: Option<String>,
    /// Set when its output name is taken by another input: the job fails, but only after its
    /// decoding, so that a broken file is reported as broken (not only as a name clash).
    pub clash: Option<String>,
}

/// The jobs of a run and what the directory walks left out.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One per input image, in order.
    pub jobs: Vec<Job>,
    /// Files and directories the walks skipped, with the reason (printed and in `--report`).
    pub skipped: Vec<Skipped>,
}

/// What a run reads besides its images (no output may name or lie inside it), and its report.
#[derive(Debug, Clone, Copy)]
pub struct Reads<'a> {
    /// The model file.
    pub model: &'a Path,
    /// Where masks come from.
    pub masks: &'a MaskSource,
}

impl Reads<'_> {
    /// The protected paths: the model, the masks and every INPUT (files, or directories whole).
    pub fn protect(&self, inputs: &[PathBuf]) -> Protected {
        let mut p = Protected::default();
        p.add("the model", self.model);
        match self.masks {
            MaskSource::Dir(d) => p.add("the --masks directory", d),
            MaskSource::File(f) => p.add("the --masks file", f),
            MaskSource::None => {}
        }
        for input in inputs {
            let what = if input.is_dir() {
                "the input directory"
            } else {
                "the input"
            };
            p.add(what, input);
        }
        p
    }
}

/// Checks `--out` before anything runs: it must be a directory (or not exist yet).
pub fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!("--out {} exists and is not a directory", out.display());
    }
    Ok(())
}

/// Checks the `--report` path before any image runs: not protected (an input, the model, a mask,
/// inside an input directory), not one of the outputs, not a directory, and writable now (its
/// directory is created and a temp file written and removed).
pub fn check_report(report: &Path, protected: &Protected, outputs: &[&Path]) -> Result<()> {
    protected.check("--report", report).map_err(anyhow::Error::msg)?;
    let resolved = resolve(report)?;
    for o in outputs {
        if resolve(o)? == resolved {
            bail!(
                "--report {} is also the output image {}: choose another name",
                report.display(),
                o.display()
            );
        }
    }
    facerecon_imaging::io::probe_writable(report).map_err(|e| anyhow::anyhow!("--report: {e}"))
}

/// Where masks come from.
#[derive(Debug, Clone)]
pub enum MaskSource {
    /// A directory of masks paired by file stem.
    Dir(PathBuf),
    /// One mask file for every image (resized to each).
    File(PathBuf),
    /// No mask file (boxes and/or dark-hole detection).
    None,
}

impl MaskSource {
    /// Classify `--masks`; a path that is neither a file nor a directory is a usage error.
    pub fn from_arg(arg: Option<&Path>) -> Result<Self> {
        Ok(match arg {
            None => MaskSource::None,
            Some(p) if p.is_dir() => MaskSource::Dir(p.to_path_buf()),
            Some(p) if p.is_file() => MaskSource::File(p.to_path_buf()),
            Some(p) => bail!("--masks {}: no such file or directory", p.display()),
        })
    }

    /// The mask file for a job, or an error naming what was looked for.
    pub fn mask_for(&self, job: &Job) -> Result<Option<PathBuf>, String> {
        match self {
            MaskSource::None => Ok(None),
            MaskSource::File(p) => Ok(Some(p.clone())),
            MaskSource::Dir(dir) => {
                // Same relative place first (x/y.jpg -> DIR/x/y.png), then flat by stem (DIR/y.png);
                // PNG first, as masks should be lossless.
                let stem = job.relative.with_extension("");
                let flat = PathBuf::from(stem.file_name().unwrap_or_default());
                let mut bases = vec![stem.clone()];
                if flat != stem {
                    bases.push(flat);
                }
                let mut tried = Vec::new();
                for base in &bases {
                    for ext in IMAGE_EXTENSIONS {
                        // Append (not `with_extension`): a stem may itself contain dots
                        // (UTKFace's `x.jpg.chip.jpg` pairs with `x.jpg.chip.png`).
                        let name = with_suffix(base, ext);
                        let candidate = dir.join(&name);
                        if candidate.is_file() && candidate != job.input {
                            return Ok(Some(candidate));
                        }
                        tried.push(name.display().to_string());
                    }
                }
                Err(format!(
                    "no mask for it in {} (looked for {})",
                    dir.display(),
                    tried.join(", ")
                ))
            }
        }
    }
}

/// `base` + "." + `ext`, keeping any dots already in `base`.
fn with_suffix(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// Expand INPUTs into jobs writing under `out`. Usage errors (missing input, nothing found, an
/// output path that names or lies inside something `protected`, e.g. an input directory) are
/// errors; per-file problems are recorded in `Job::error` / `Job::clash`.
pub fn plan(inputs: &[PathBuf], out: &Path, overwrite: bool, protected: &mut Protected) -> Result<Plan> {
    check_out_dir(out)?;
    let out_resolved = resolve(out).with_context(|| format!("resolving --out {}", out.display()))?;
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    let mut seen_inputs = HashSet::new();
    for input in inputs {
        let meta = match std::fs::metadata(input) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("input {} does not exist", input.display()),
            Err(e) => bail!("input {}: cannot read it: {e}", input.display()),
        };
        let resolved = resolve(input)?;
        let files: Vec<(PathBuf, PathBuf)> = if meta.is_dir() {
            if out_resolved.starts_with(&resolved) {
                bail!(
                    "refusing to write into the input directory {}: choose an --out outside it (outputs would mix with inputs)",
                    input.display()
                );
            }
            let listing = walk_images(input);
            if listing.files.is_empty() {
                let why: Vec<String> = listing
                    .skipped
                    .iter()
                    .take(3)
                    .map(|s| format!("{}: {}", s.path.display(), s.reason))
                    .collect();
                bail!(
                    "no images found in {} (extensions: {}){}",
                    input.display(),
                    IMAGE_EXTENSIONS.join(", "),
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!("; skipped {}", why.join("; "))
                    }
                );
            }
            skipped.extend(listing.skipped);
            listing
                .files
                .into_iter()
                .map(|f| {
                    let rel = f
                        .strip_prefix(input)
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|_| f.file_name().unwrap_or_default().into());
                    (f, rel)
                })
                .collect()
        } else {
            let parent = resolved.parent().map(Path::to_path_buf).unwrap_or_default();
            if out_resolved == parent {
                bail!(
                    "refusing to write into {}, the directory of the input {}: choose another --out",
                    out.display(),
                    input.display()
                );
            }
            vec![(input.clone(), PathBuf::from(input.file_name().unwrap_or_default()))]
        };
        for (file, relative) in files {
            // The same file named twice (a file and its directory, or twice on the line) runs once.
            if seen_inputs.insert(resolve(&file).unwrap_or_else(|_| file.clone())) {
                let output = out.join(&relative).with_extension("png");
                // Hard links to an input elsewhere are that input too.
                protected.add_file_id("the input", &file);
                jobs.push(Job {
                    input: file,
                    relative,
                    output,
                    error: None,
                    clash: None,
                });
            }
        }
    }
    protected.check("--out", out).map_err(anyhow::Error::msg)?;
    for job in &jobs {
        // E.g. an input directory inside --out whose outputs land back inside it, or an output
        // that is (a link to) an input: refused before anything is written.
        protected
            .check(&format!("the output of {},", job.input.display()), &job.output)
            .map_err(anyhow::Error::msg)?;
    }
    let mut owners: HashMap<PathBuf, PathBuf> = HashMap::new();
    for job in &mut jobs {
        if let Some(first) = owners.get(&job.output) {
            job.clash = Some(format!(
                "its output {} would also be written for {}; rename one of them",
                job.output.display(),
                first.display()
            ));
        } else {
            owners.insert(job.output.clone(), job.input.clone());
            if !overwrite && job.output.exists() {
                job.error = Some(format!(
                    "output {} already exists (use --overwrite to replace it)",
                    job.output.display()
                ));
            }
        }
    }
    Ok(Plan { jobs, skipped })
}

/// An absolute path with symlinks resolved as far as the path exists (the rest appended lexically),
/// so "is the output inside an input directory" is answered for paths not created yet.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    facerecon_imaging::io::resolve(path).with_context(|| format!("resolving {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plan` with only the inputs protected.
    fn plan_jobs(inputs: &[PathBuf], out: &Path, overwrite: bool) -> Result<Vec<Job>> {
        let mut p = Protected::default();
        for i in inputs {
            p.add("the input", i);
        }
        plan(inputs, out, overwrite, &mut p).map(|p| p.jobs)
    }

    #[test]
    fn resolve_handles_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(&dir.path().join("a/../b/c")).unwrap(), base.join("b/c"));
        assert_eq!(resolve(dir.path()).unwrap(), base);
    }

    #[test]
    fn plans_outputs_and_pairs_masks() {
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        std::fs::create_dir_all(photos.join("sub")).unwrap();
        for f in ["a.jpg", "a.png", "sub/b.jpg"] {
            std::fs::write(photos.join(f), b"x").unwrap();
        }
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let jobs = plan_jobs(std::slice::from_ref(&photos), &out, false).unwrap();
        let outputs: Vec<_> = jobs
            .iter()
            .map(|j| j.output.strip_prefix(&out).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            outputs,
            vec![
                PathBuf::from("a.png"),
                PathBuf::from("a.png"),
                PathBuf::from("sub/b.png")
            ]
        );
        assert!(jobs[0].error.is_none());
        assert!(
            jobs[1].clash.as_deref().unwrap().contains("would also be written"),
            "{:?}",
            jobs[1].clash
        );

        // Output inside the input directory, or the directory of an input file: refused.
        assert!(plan_jobs(std::slice::from_ref(&photos), &photos.join("out"), false)
            .unwrap_err()
            .to_string()
            .contains("refusing"));
        assert!(plan_jobs(&[photos.join("a.jpg")], &photos, false)
            .unwrap_err()
            .to_string()
            .contains("refusing"));
        assert!(plan_jobs(&[dir.path().join("nope")], &out, false).is_err());

        // Mask pairing: relative place first, then flat by stem; missing is an error naming the dir.
        let masks = dir.path().join("masks");
        std::fs::create_dir_all(masks.join("sub")).unwrap();
        std::fs::write(masks.join("a.png"), b"x").unwrap();
        std::fs::write(masks.join("b.png"), b"x").unwrap();
        let source = MaskSource::from_arg(Some(&masks)).unwrap();
        assert_eq!(source.mask_for(&jobs[0]).unwrap(), Some(masks.join("a.png")));
        assert_eq!(source.mask_for(&jobs[2]).unwrap(), Some(masks.join("b.png")));
        std::fs::write(masks.join("sub/b.png"), b"x").unwrap();
        assert_eq!(source.mask_for(&jobs[2]).unwrap(), Some(masks.join("sub/b.png")));
        std::fs::remove_file(masks.join("a.png")).unwrap();
        assert!(source.mask_for(&jobs[0]).unwrap_err().contains("no mask"));
    }

    #[test]
    fn stems_with_dots_pair_with_their_masks() {
        // UTKFace names: `x.jpg.chip.jpg` -> stem `x.jpg.chip` -> mask `x.jpg.chip.png` (what --save-masks writes)
        let dir = tempfile::tempdir().unwrap();
        let photos = dir.path().join("photos");
        std::fs::create_dir_all(&photos).unwrap();
        std::fs::write(photos.join("20_1_0.jpg.chip.jpg"), b"x").unwrap();
        let masks = dir.path().join("masks");
        std::fs::create_dir_all(&masks).unwrap();
        std::fs::write(masks.join("20_1_0.jpg.png"), b"x").unwrap(); // a wrong pairing must not be taken
        let jobs = plan_jobs(std::slice::from_ref(&photos), &dir.path().join("out"), false).unwrap();
        let source = MaskSource::from_arg(Some(&masks)).unwrap();
        assert!(source.mask_for(&jobs[0]).unwrap_err().contains("20_1_0.jpg.chip.png"));
        std::fs::write(masks.join("20_1_0.jpg.chip.png"), b"x").unwrap();
        assert_eq!(
            source.mask_for(&jobs[0]).unwrap(),
            Some(masks.join("20_1_0.jpg.chip.png"))
        );
    }
}
