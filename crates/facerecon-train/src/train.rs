//! The training loop. [`run`] reads top to bottom: for each epoch, for each batch, one optimiser
//! step; after each epoch, validation, metrics, samples and a checkpoint.

use crate::checkpoint::{self, State, SAMPLES_DIR};
use crate::data::Batch;
use crate::optim::lr_at;
use crate::setup::{setup, Session, TrainOptions};
use crate::validate::{sample_grid, validate, ValMetrics};
use anyhow::{bail, Context, Result};
use candle_core::Tensor;
use facerecon_contract::MetricsRecord;
use facerecon_imaging::io::save_png_atomic;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// What a run did, printed at the end.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Epochs completed in this invocation.
    pub epochs_run: usize,
    /// Epochs completed in total, earlier invocations included.
    pub epochs_done: usize,
    /// Optimiser steps in total.
    pub steps: u64,
    /// Wall-clock seconds of this invocation.
    pub wall_s: f64,
    /// Training throughput of this invocation: images over the seconds spent in training steps.
    pub images_per_sec: f64,
    /// Training throughput after the first [`WARMUP_STEPS`] steps of this invocation (allocator,
    /// scratch buffers and data thread warmed up), validation and checkpoints excluded; `None` when
    /// the run had no more steps than that. What benchmarks report (benches/run.sh).
    pub steady_images_per_sec: Option<f64>,
    /// Steps that [`Summary::steady_images_per_sec`] covers.
    pub steady_steps: u64,
    /// The fraction of those steps' wall time spent waiting for the data thread's next batch: near 0
    /// when decoding and mask drawing keep up with the optimiser.
    pub steady_data_wait: Option<f64>,
    /// The best validation record (a metrics.jsonl line) so far.
    pub best: Option<MetricsRecord>,
    /// The last validation record of this invocation.
    pub last: Option<MetricsRecord>,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// Whether the run trained on generated synthetic faces.
    pub synthetic: bool,
    /// Stopped by `--max-steps` before the configured epochs were done.
    pub stopped_early: bool,
    /// Files skipped as unreadable.
    pub skipped: usize,
    /// The loss of every step of this invocation, in order (before each update): what device and
    /// kernel parity checks compare (benches/gpu.sh, `--bench-json`).
    pub step_losses: Vec<f64>,
}

/// Steps of each invocation left out of [`Summary::steady_images_per_sec`].
pub const WARMUP_STEPS: u64 = 3;

/// Train as `opts` says; returns the summary.
pub fn run(opts: &TrainOptions) -> Result<Summary> {
    let mut s = setup(opts)?;
    let cfg = s.config.clone();
    let t = &cfg.train;
    let steps_per_epoch = s.train.batches_per_epoch() as u64;
    let total_steps = steps_per_epoch * t.epochs as u64;
    let checkpoint_every = (t.checkpoint_minutes > 0.0).then_some(t.checkpoint_minutes * 60.0);
    let done = |step: u64| opts.max_steps.is_some_and(|m| step >= m);
    let (started, first_epoch) = (Instant::now(), s.state.epoch);
    let (mut images_seen, mut train_secs, mut last) = (0usize, 0.0f64, None);
    let mut stopped_early = false;
    // Steady-state throughput: per-step wall time (waiting for the batch included) after the warm-up.
    let (mut steps_run, mut steady_steps, mut steady_images, mut steady_secs) = (0u64, 0u64, 0usize, 0.0f64);
    let mut steady_wait = 0.0f64;
    let mut step_losses = Vec::new();

    for epoch in first_epoch..t.epochs {
        // The epoch's running totals start from the checkpoint's (a resumed epoch's record covers it all).
        let (epoch_start, mut last_save) = (Instant::now(), Instant::now());
        let (secs_before, wait_before) = (s.state.epoch_secs, s.state.epoch_wait);
        let bar = progress_bar(steps_per_epoch, s.state.batch_in_epoch as u64, epoch + 1, t.epochs);
        let (mut n_images, mut epoch_wait) = (0usize, 0.0f64);
        let mut step_clock = Instant::now();
        for batch in s.train.epoch(epoch, s.state.batch_in_epoch) {
            // Time blocked on the data thread's queue for this batch.
            let waited = step_clock.elapsed().as_secs_f64();
            epoch_wait += waited;
            if done(s.state.step) {
                stopped_early = true;
                break;
            }
            s.state.epoch_unreadable += batch.unreadable;
            if batch.len == 0 {
                // Every file of this slot was unreadable: no step, but the position moves on.
                s.state.batch_in_epoch += 1;
                step_clock = Instant::now();
                continue;
            }
            let lr = lr_at(
                t.optimizer.lr,
                &t.lr_schedule,
                s.state.step,
                steps_per_epoch,
                total_steps,
            );
            let batch_len = batch.len;
            // On the CPU the whole step runs on one of rayon's workers, so that the kernels' parallel
            // loops nest instead of each waking the pool from this thread (see `Model::eval`).
            let loss = if s.device.is_cpu() {
                rayon::scope(|_| train_step(&mut s, batch, lr))?
            } else {
                train_step(&mut s, batch, lr)?
            };
            step_losses.push(loss);
            steps_run += 1;
            if steps_run > WARMUP_STEPS {
                (steady_steps, steady_images) = (steady_steps + 1, steady_images + batch_len);
                steady_secs += step_clock.elapsed().as_secs_f64();
                steady_wait += waited;
            }
            (s.state.step, s.state.batch_in_epoch) = (s.state.step + 1, s.state.batch_in_epoch + 1);
            s.state.epoch_loss_sum += loss * batch_len as f64;
            s.state.epoch_images += batch_len;
            n_images += batch_len;
            let ips = n_images as f64 / epoch_start.elapsed().as_secs_f64();
            report_step(
                &bar,
                &s,
                s.state.epoch_loss_sum / s.state.epoch_images as f64,
                ips,
                lr,
                t.log_every,
            );
            checkpoint::crash_point("step");
            if checkpoint_every.is_some_and(|secs| last_save.elapsed().as_secs_f64() >= secs) {
                (s.state.epoch_secs, s.state.epoch_wait) = (
                    secs_before + epoch_start.elapsed().as_secs_f64(),
                    wait_before + epoch_wait,
                );
                save_checkpoint(&s)?;
                last_save = Instant::now();
            }
            step_clock = Instant::now(); // logging and checkpoints are not part of the next step
        }
        bar.finish_and_clear();
        let secs = epoch_start.elapsed().as_secs_f64();
        (images_seen, train_secs) = (images_seen + n_images, train_secs + secs);
        (s.state.epoch_secs, s.state.epoch_wait) = (secs_before + secs, wait_before + epoch_wait);
        if stopped_early {
            save_checkpoint(&s)?; // mid-epoch: --resume continues with the next batch
            break;
        }
        check_readable(&s)?;
        let (val, rows) = validate(&s.model, &s.val, t.batch_size, &t.loss, &s.device)?;
        if !rows.is_empty() {
            let path = s.out.join(SAMPLES_DIR).join(format!("epoch_{:03}.png", epoch + 1));
            save_png_atomic(&sample_grid(&rows), &path).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let lr = lr_at(
            t.optimizer.lr,
            &t.lr_schedule,
            s.state.step.saturating_sub(1),
            steps_per_epoch,
            total_steps,
        );
        let (st, epoch_secs) = (&s.state, s.state.epoch_secs);
        let train_loss = st.epoch_loss_sum / st.epoch_images.max(1) as f64;
        let ips = st.epoch_images as f64 / epoch_secs.max(1e-9);
        let mut record = epoch_record(
            &s,
            epoch + 1,
            train_loss,
            val,
            lr,
            ips,
            secs_before + epoch_start.elapsed().as_secs_f64(),
        );
        record.data_wait = Some(s.state.epoch_wait / epoch_secs.max(1e-9));
        for (name, v) in adversarial_means(&s) {
            record.extra.insert(name.to_string(), serde_json::json!(v));
        }
        eprintln!("{}", describe(&record));
        // The record becomes part of the epoch's checkpoint (its metrics.jsonl): the run directory never
        // shows a record that its checkpoint does not cover, nor one twice.
        s.metrics.push(record.to_line());
        let State {
            epoch_loss_sum,
            epoch_images,
            epoch_unreadable,
            epoch_secs,
            epoch_wait,
            epoch_adversarial,
            ..
        } = &mut s.state;
        *epoch_adversarial = epoch_adversarial.map(|_| [0.0; 4]);
        (
            *epoch_loss_sum,
            *epoch_images,
            *epoch_unreadable,
            *epoch_secs,
            *epoch_wait,
        ) = (0.0, 0, 0, 0.0, 0.0);
        (s.state.epoch, s.state.batch_in_epoch) = (epoch + 1, 0);
        if is_better(&record, s.state.best.as_ref()) {
            s.state.best = Some(record.clone());
        }
        save_checkpoint(&s)?;
        last = Some(record);
        if done(s.state.step) && s.state.epoch < t.epochs {
            stopped_early = true;
            break;
        }
    }
    Ok(Summary {
        epochs_run: s.state.epoch - first_epoch,
        epochs_done: s.state.epoch,
        steps: s.state.step,
        wall_s: started.elapsed().as_secs_f64(),
        images_per_sec: images_seen as f64 / train_secs.max(1e-9),
        steady_images_per_sec: (steady_steps > 0).then(|| steady_images as f64 / steady_secs.max(1e-9)),
        steady_steps,
        steady_data_wait: (steady_steps > 0).then(|| steady_wait / steady_secs.max(1e-9)),
        best: s.state.best.clone(),
        last,
        checkpoint: s.out.clone(),
        synthetic: s.state.synthetic,
        stopped_early,
        skipped: s.skipped.entries().len(),
        step_losses,
    })
}

/// One optimiser step on `batch`; returns the loss before the update.
fn train_step(s: &mut Session, batch: Batch, lr: f64) -> Result<f64> {
    // The batch's buffers become the tensors (no copies).
    let Batch {
        images,
        masks,
        inputs,
        len,
        size,
        ..
    } = batch;
    // The discriminator's crops, from the masks before they become a tensor.
    let origins = s
        .disc
        .as_ref()
        .map(|d| crate::adversarial::crop_origins(&masks, len, size, d.crop()));
    let image = Tensor::from_vec(images, (len, 3, size, size), &s.device)?;
    let mask = Tensor::from_vec(masks, (len, 1, size, size), &s.device)?;
    let input = Tensor::from_vec(inputs, image.shape(), &s.device)?;
    let reconstruction = s.model.reconstruct(&input, &mask)?;
    // With a teacher, the hole's target is partly its fill (the discriminator still sees the originals).
    let target = match &s.teacher {
        Some(t) => t.target(&input, &mask, &image)?,
        None => image.clone(),
    };
    let mut loss = crate::loss::loss(&s.config.train.loss, &reconstruction, &target, &mask)?;
    let value = loss.to_scalar::<f32>()? as f64;
    if !value.is_finite() {
        bail!(
            "the loss is {value} at step {} (learning rate {lr} too high?)",
            s.state.step + 1
        );
    }
    if let (Some(d), Some(origins)) = (s.disc.as_mut(), origins) {
        // The discriminator's rate follows the generator's schedule (warm-up, decay).
        let scale = lr / s.config.train.optimizer.lr;
        let (adv, l) = d.step(&reconstruction, &image, &mask, &origins, scale)?;
        loss = (loss + adv)?;
        let sums = s.state.epoch_adversarial.get_or_insert([0.0; 4]);
        for (sum, v) in sums.iter_mut().zip(l.values()) {
            *sum += v * len as f64;
        }
    }
    s.optimizer.step(&loss.backward()?, lr)?;
    Ok(value)
}

fn save_checkpoint(s: &Session) -> Result<()> {
    let extra = match &s.disc {
        Some(d) => vec![(checkpoint::DISCRIMINATOR_FILE, d.to_bytes()?)],
        None => Vec::new(),
    };
    checkpoint::save_with(&s.out, &s.varmap, &s.optimizer, &s.config, &s.state, &s.metrics, &extra)
        .with_context(|| format!("cannot save the checkpoint in {}", s.out.display()))
}

/// An adversarial run's mean losses over the epoch so far (`extra` of its metrics record), by name.
fn adversarial_means(s: &Session) -> Vec<(&'static str, f64)> {
    match s.state.epoch_adversarial {
        Some(sums) => crate::adversarial::AdvLosses::NAMES
            .iter()
            .zip(sums)
            .map(|(n, v)| (*n, v / s.state.epoch_images.max(1) as f64))
            .collect(),
        None => Vec::new(),
    }
}

/// A progress bar on a terminal; hidden otherwise (plain log lines are printed instead).
fn progress_bar(len: u64, pos: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_position(pos);
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
        .expect("valid template")
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

fn report_step(bar: &ProgressBar, s: &Session, loss: f64, ips: f64, lr: f64, log_every: usize) {
    let adv: String = adversarial_means(s)
        .iter()
        .map(|(n, v)| format!(" {n} {v:.4}"))
        .collect();
    let msg = format!("loss {loss:.5}{adv} | {ips:.1} img/s | lr {lr:.2e}");
    if bar.is_hidden() {
        if s.state.step.is_multiple_of(log_every as u64) {
            eprintln!(
                "epoch {} step {} (batch {}): {msg}",
                s.state.epoch + 1,
                s.state.step,
                s.state.batch_in_epoch
            );
        }
    } else {
        bar.set_message(msg);
        bar.inc(1);
    }
}

/// Files that could not be read stop the run, by this rule: an epoch in which no training image could be
/// read, or in which more than [`MAX_UNREADABLE_FRACTION`] of the training files could not be, is an
/// error (checked at the end of each epoch, before its checkpoint; the files are decoded while
/// streaming). A few bad files are skipped with a warning each.
fn check_readable(s: &Session) -> Result<()> {
    let (bad, ok) = (s.state.epoch_unreadable, s.state.epoch_images);
    if bad == 0 {
        return Ok(());
    }
    let total = bad + ok;
    if ok == 0 || bad as f64 > MAX_UNREADABLE_FRACTION * total as f64 {
        let example = s
            .skipped
            .entries()
            .into_iter()
            .next()
            .map(|(p, r)| format!(" (e.g. {}: {r})", p.display()))
            .unwrap_or_default();
        bail!(
            "{bad} of the {total} training files in {} could not be read{example}; training stops when more than {:.0} % \
             of them are unreadable (see the warnings above)",
            s.state.data.display(),
            100.0 * MAX_UNREADABLE_FRACTION
        );
    }
    Ok(())
}

/// The largest fraction of unreadable training files an epoch may have (see `check_readable`).
pub const MAX_UNREADABLE_FRACTION: f64 = 0.5;

/// One metrics.jsonl line for epoch `epoch` (1-based).
#[allow(clippy::too_many_arguments)]
fn epoch_record(
    s: &Session,
    epoch: usize,
    train_loss: f64,
    val: Option<ValMetrics>,
    lr: f64,
    ips: f64,
    wall_s: f64,
) -> MetricsRecord {
    let v = |f: fn(&ValMetrics) -> f64| val.as_ref().map(f);
    MetricsRecord {
        epoch,
        step: s.state.step,
        train_loss,
        val_loss: v(|m| m.loss),
        psnr_full: v(|m| m.psnr_full),
        psnr_hole: v(|m| m.psnr_hole),
        ssim: v(|m| m.ssim),
        l1_hole: v(|m| m.l1_hole),
        psnr_raw: v(|m| m.psnr_raw),
        val_images: s.val.len,
        lr,
        images_per_sec: ips,
        wall_s,
        data_wait: None,
        extra: Default::default(),
    }
}

/// Higher `psnr_full` is better; without validation, lower training loss.
fn is_better(record: &MetricsRecord, best: Option<&MetricsRecord>) -> bool {
    let Some(best) = best else { return true };
    match (record.psnr_full, best.psnr_full) {
        (Some(a), Some(b)) => a > b,
        _ => record.train_loss < best.train_loss,
    }
}

/// A one-line human summary of a metrics record.
pub fn describe(r: &MetricsRecord) -> String {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.4}"));
    let wait = r
        .data_wait
        .map_or(String::new(), |w| format!(" (waiting for data {:.1} %)", 100.0 * w));
    format!(
        "epoch {}: train_loss {} | val psnr_full {} dB, psnr_hole {} dB, ssim {}, l1_hole {}, psnr_raw {} dB | {} img/s{wait}",
        r.epoch, f(Some(r.train_loss)), f(r.psnr_full), f(r.psnr_hole), f(r.ssim), f(r.l1_hole), f(r.psnr_raw), f(Some(r.images_per_sec))
    )
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.stopped_early {
            " (stopped by --max-steps)"
        } else {
            ""
        };
        writeln!(
            f,
            "trained {} epochs this run, {} in total, {} steps{state}",
            self.epochs_run, self.epochs_done, self.steps
        )?;
        writeln!(f, "wall time {:.1} s, {:.1} images/s", self.wall_s, self.images_per_sec)?;
        if let Some(ips) = self.steady_images_per_sec {
            let wait = self.steady_data_wait.unwrap_or(0.0) * 100.0;
            writeln!(
                f,
                "steady state: {ips:.1} images/s over {} steps (after {WARMUP_STEPS} warm-up steps; waiting for data {wait:.1} % of the time)",
                self.steady_steps
            )?;
        }
        if let Some(best) = &self.best {
            writeln!(f, "best: {}", describe(best))?;
        }
        if self.skipped > 0 {
            writeln!(f, "{} unreadable files were skipped", self.skipped)?;
        }
        if self.synthetic {
            writeln!(
                f,
                "NOTE: the data was SYNTHETIC (procedural faces); numbers say nothing about real faces"
            )?;
        }
        write!(f, "checkpoint: {}", self.checkpoint.display())
    }
}
