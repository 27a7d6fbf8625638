//! The edge question in one table (`make bench-edge`, scripts/bench-edge.sh): for each model file and
//! ONNX Runtime thread count, batch-1 latency of the bare network, of one 128x128 face and of one
//! 1920x1080 camera frame with one face-sized hole end to end through the library (as
//! `camera_loop` does), with the file's size, its held-out psnr_hole and its cold start.
//!
//! ```text
//! edge_bench [--rounds R] [--iters N] [--threads 1,2] [--steps-only] MODEL.onnx...
//! ```
//!
//! `--steps-only`: time only the library's frame steps (the last line below), without running any
//! network: a loop to put under a profiler (`perf record`).
//!
//! Every (model, threads) pair is loaded first; then each of `R` rounds runs every pair `N` times
//! per measurement, so that a change of machine load hits all of them alike. Missing model files are
//! listed as skipped. Output: a markdown table on stdout.
//!
//! - `session`: `Runtime::infer` on an already prepared face (`session.run` plus one copy).
//! - `face`: `Runtime::reconstruct` of a 128x128 face with a 28x28 hole.
//! - `frame, box`: `Runtime::reconstruct_in_place_in_box` of a 1920x1080 frame with a 324x158 hole
//!   (camera_loop's frame, written into its own buffer as camera software would), the hole's box
//!   given by the caller (a face detector's box, the area the app blanked): THE camera path.
//! - `frame, scan`: the same through `Runtime::reconstruct_in_place`, which scans the whole mask for
//!   the hole (a caller that has only the mask).
//! - `over session`: what the library's camera path adds to the network: (frame p50 - session p50)
//!   / session p50 in wall time, and the same for the mean CPU time of the process (all its
//!   threads, from `/proc/self/task/*/schedstat`), which a loaded machine disturbs far less.
//! - `cold start`: from `Runtime::load` to the first frame's result, this process's first load of
//!   the file (ONNX Runtime itself is loaded before the first measurement).
//! - psnr_hole: the bold row of the model card (`MODEL.md` beside the file: the 28x28-box column of
//!   the 500 held-out faces), else the trainer's validation in the file's metadata (marked `(meta)`).

use std::{
    error::Error,
    path::Path,
    time::{Duration, Instant},
};

use common::{frame, hole_box};
use facerecon_runtime::{pipeline, GrayImage, Luma, Region, Rgb, RgbImage, Runtime, RuntimeOptions};

mod common;

/// A face-sized test image at the model size with a centred 28x28 hole.
fn face(size: u32) -> (RgbImage, GrayImage) {
    let (lo, hi) = (size / 2 - 14, size / 2 + 14);
    let hole = |x: u32, y: u32| x >= lo && x < hi && y >= lo && y < hi;
    let mask = GrayImage::from_fn(size, size, |x, y| Luma([if hole(x, y) { 255 } else { 0 }]));
    let image = RgbImage::from_fn(size, size, |x, y| {
        if hole(x, y) {
            Rgb([0, 0, 0])
        } else {
            Rgb([(x * 2) as u8, (y * 2) as u8, ((x * y) % 251) as u8])
        }
    });
    (image, mask)
}

/// The card's held-out psnr_hole: the first number of the first bold table row's second cell.
fn card_psnr(model: &Path) -> Option<String> {
    let card = std::fs::read_to_string(model.with_extension("md")).ok()?;
    card.lines()
        .filter(|l| l.starts_with('|') && l.contains("**"))
        .find_map(|l| {
            let cell = l.split('|').nth(2)?.trim().trim_start_matches("**");
            let number: String = cell.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            number.parse::<f64>().ok().map(|v| format!("{v:.2}"))
        })
}

struct Pair {
    model: String,
    threads: usize,
    rt: Runtime,
    cold: Duration,
    session: Vec<Duration>,
    face: Vec<Duration>,
    frame: Vec<Duration>,
    frame_box: Vec<Duration>,
    /// Total CPU nanoseconds of the session and frame measurements.
    session_cpu: u64,
    frame_cpu: u64,
    frame_box_cpu: u64,
    /// The box path step by step inside the frame loop (first pair only): prepare_in_box, the
    /// network on that frame's prepared input, finish_in_place_in_box.
    split: [Vec<Duration>; 3],
}

/// CPU time of this process so far (all threads), in nanoseconds; 0 where Linux's schedstat is
/// not available.
fn cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// `q`-quantile in milliseconds (nearest rank).
fn ms(times: &mut [Duration], q: f64) -> f64 {
    times.sort();
    let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
    times[i].as_secs_f64() * 1e3
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut iters, mut threads, mut models) = (10usize, 10usize, vec![1usize, 2], Vec::new());
    let mut steps_only = false;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--steps-only" => steps_only = true,
            "--rounds" => rounds = value()?.parse()?,
            "--iters" => iters = value()?.parse()?,
            "--threads" => threads = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            _ => models.push(a),
        }
    }
    if models.is_empty() || rounds == 0 || iters == 0 || threads.contains(&0) {
        return Err("usage: edge_bench [--rounds R] [--iters N] [--threads 1,2] [--steps-only] MODEL.onnx...".into());
    }
    let (width, height) = (1920, 1080);
    let mut frames: Vec<(RgbImage, GrayImage, Region)> = (0..4)
        .map(|n| {
            let (image, mask) = frame(n, width, height);
            (image, mask, hole_box(n, width, height))
        })
        .collect();
    let load_before = loadavg();

    // ONNX Runtime's library is loaded (once per process) by a throwaway load, so that each pair's
    // cold start is the model's own: session creation, graph optimisation, first run.
    let mut pairs = Vec::new();
    let mut skipped = Vec::new();
    let mut first = true;
    for model in &models {
        let path = Path::new(model);
        if !path.is_file() {
            skipped.push(model.clone());
            continue;
        }
        for &t in &threads {
            let options = RuntimeOptions {
                threads: Some(t),
                batch_size: 1,
                ..Default::default()
            };
            if first {
                let rt = Runtime::load(path, &options)?;
                first = false;
                if steps_only {
                    // Only the library's frame steps (for a profiler): no network run at all.
                    let (size, fit) = (rt.info().image_size, rt.options().fit);
                    let steps = frame_steps(&mut frames, size, fit, 0, rounds * iters)?;
                    println!("{}", steps_line(&steps));
                    return Ok(());
                }
            }
            let start = Instant::now();
            let rt = Runtime::load(path, &options)?;
            let (image, mask, hole) = &mut frames[0];
            rt.reconstruct_in_place_in_box(image, mask, *hole)?;
            let cold = start.elapsed();
            pairs.push(Pair {
                model: model.clone(),
                threads: t,
                rt,
                cold,
                session: Vec::new(),
                face: Vec::new(),
                frame: Vec::new(),
                frame_box: Vec::new(),
                session_cpu: 0,
                frame_cpu: 0,
                frame_box_cpu: 0,
                split: Default::default(),
            });
        }
    }

    for _ in 0..rounds {
        for p in &mut pairs {
            let size = p.rt.info().image_size;
            let (fimg, fmask) = face(size);
            let prepared = pipeline::prepare(&fimg, &fmask, size, p.rt.options().fit)?;
            let cpu = cpu_ns();
            for _ in 0..iters {
                let t = Instant::now();
                p.rt.infer(&[&prepared])?;
                p.session.push(t.elapsed());
            }
            p.session_cpu += cpu_ns() - cpu;
            for _ in 0..iters {
                let t = Instant::now();
                p.rt.reconstruct(&fimg, &fmask)?;
                p.face.push(t.elapsed());
            }
            // The frames are reused: a reconstructed hole is reconstructed again, the same work.
            let cpu = cpu_ns();
            for k in 0..iters {
                let n = frames.len();
                let (img, mask, _) = &mut frames[k % n];
                let t = Instant::now();
                p.rt.reconstruct_in_place(img, mask)?;
                p.frame.push(t.elapsed());
            }
            p.frame_cpu += cpu_ns() - cpu;
            let cpu = cpu_ns();
            for k in 0..iters {
                let n = frames.len();
                let (img, mask, hole) = &mut frames[k % n];
                let t = Instant::now();
                p.rt.reconstruct_in_place_in_box(img, mask, *hole)?;
                p.frame_box.push(t.elapsed());
            }
            p.frame_box_cpu += cpu_ns() - cpu;
        }
        // The same box path cut into its steps, on the first pair: whether the network runs slower
        // inside the frame loop than alone (the frame work evicting its weights) or the time is
        // the library's own.
        if let Some(p) = pairs.first_mut() {
            let (size, fit, feather) = (p.rt.info().image_size, p.rt.options().fit, p.rt.options().feather);
            for k in 0..iters {
                let n = frames.len();
                let (img, mask, hole) = &mut frames[k % n];
                let t = Instant::now();
                let prepared = pipeline::prepare_in_box(img, mask, *hole, size, fit)?;
                let t1 = Instant::now();
                let rec = p.rt.infer(&[&prepared])?;
                let t2 = Instant::now();
                pipeline::finish_in_place_in_box(img, mask, &prepared, &rec[0], size, feather, *hole)?;
                let t3 = Instant::now();
                p.split[0].push(t1 - t);
                p.split[1].push(t2 - t1);
                p.split[2].push(t3 - t2);
            }
        }
    }

    println!(
        "Batch 1, {rounds} interleaved rounds x {iters} runs per cell; ms per image (p50 / p99); \
         load average before {load_before}, after {}.\n",
        loadavg()
    );
    println!(
        "| model | file size | held-out psnr_hole (28x28) | threads | session p50 / p99 | 128x128 face p50 / p99 | 1920x1080 frame, box p50 / p99 | frame, box over session: wall / CPU | frame, scan p50 / p99 | frame, scan over session: wall / CPU | CPU ms per session / frame box / frame scan | cold start |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &mut pairs {
        let path = Path::new(&p.model);
        let bytes = std::fs::metadata(path)?.len();
        let psnr = card_psnr(path).unwrap_or_else(|| {
            p.rt.info()
                .metrics
                .as_ref()
                .and_then(|m| m.get("psnr_hole")?.as_f64())
                .map(|v| format!("{v:.2} (meta)"))
                .unwrap_or_else(|| "n/a".into())
        });
        let (s50, s99) = (ms(&mut p.session, 0.5), ms(&mut p.session, 0.99));
        let (f50, f99) = (ms(&mut p.face, 0.5), ms(&mut p.face, 0.99));
        let (c50, c99) = (ms(&mut p.frame, 0.5), ms(&mut p.frame, 0.99));
        let (b50, b99) = (ms(&mut p.frame_box, 0.5), ms(&mut p.frame_box, 0.99));
        let runs = (rounds * iters) as f64;
        let cpu = |ns: u64| ns as f64 / runs / 1e6;
        let (cpu_s, cpu_f, cpu_b) = (cpu(p.session_cpu), cpu(p.frame_cpu), cpu(p.frame_box_cpu));
        let over = |v: f64, base: f64| (v - base) / base * 100.0;
        println!(
            "| {} | {:.2} MB | {psnr} | {} | {s50:.2} / {s99:.2} | {f50:.2} / {f99:.2} | {b50:.2} / {b99:.2} | **{:+.1} %** / {:+.1} % | {c50:.2} / {c99:.2} | {:+.1} % / {:+.1} % | {cpu_s:.2} / {cpu_b:.2} / {cpu_f:.2} | {:.0} ms |",
            p.model,
            bytes as f64 / 1e6,
            p.threads,
            over(b50, s50),
            over(cpu_b, cpu_s),
            over(c50, s50),
            over(cpu_f, cpu_s),
            p.cold.as_secs_f64() * 1e3
        );
    }
    for model in skipped {
        println!("| {model} | missing: skipped | | | | | | | | | | |");
    }
    if let Some(p) = pairs.first_mut() {
        let session = ms(&mut p.session, 0.5);
        let [prep, net, fin] = &mut p.split;
        let (prep, net, fin) = (ms(prep, 0.5), ms(net, 0.5), ms(fin, 0.5));
        println!(
            "\nThe box path step by step inside the frame loop ({}, threads {}), p50 of {} frames: prepare_in_box {prep:.3} ms, the network on the frame's prepared input (`Runtime::infer`) {net:.3} ms ({:+.1} % against the session's {session:.2} ms), finish_in_place_in_box {fin:.3} ms; the library's steps {:.3} ms = {:+.1} % of the session.",
            p.model,
            p.threads,
            rounds * iters,
            (net - session) / session * 100.0,
            prep + fin,
            (prep + fin) / session * 100.0
        );
    }
    if let Some(p) = pairs.first() {
        let (size, opts) = (p.rt.info().image_size, p.rt.options());
        let steps = frame_steps(&mut frames, size, opts.fit, opts.feather, rounds * iters)?;
        println!(
            "\nThe frame path alone (no network; {width}x{height}, 324x158 hole, model {size}, {:?}), p50 of {} calls: {}.",
            opts.fit,
            rounds * iters,
            steps_line(&steps)
        );
    }
    Ok(())
}

/// The names of [`frame_steps`]'s p50s.
const STEPS: [&str; 5] = [
    "find the hole (hole_bbox)",
    "prepare (its hole search included)",
    "finish_in_place",
    "prepare_in_box",
    "finish_in_place_in_box",
];

fn steps_line(steps: &[f64; 5]) -> String {
    let parts: Vec<String> = STEPS.iter().zip(steps).map(|(n, v)| format!("{n} {v:.3} ms")).collect();
    parts.join(", ")
}

/// p50 milliseconds of the library's per-frame steps around the network, on `frames` in turn:
/// [`STEPS`] (a constant grey reconstruction).
fn frame_steps(
    frames: &mut [(RgbImage, GrayImage, Region)],
    size: u32,
    fit: pipeline::FitMode,
    feather: u32,
    runs: usize,
) -> Result<[f64; 5], Box<dyn Error>> {
    let rec = vec![0.5f32; 3 * (size * size) as usize];
    let mut times: [Vec<Duration>; 5] = Default::default();
    for k in 0..runs {
        let n = frames.len();
        let (image, mask, hole) = &mut frames[k % n];
        let t = Instant::now();
        std::hint::black_box(pipeline::hole_bbox(mask));
        times[0].push(t.elapsed());
        let t = Instant::now();
        let prepared = pipeline::prepare(image, mask, size, fit)?;
        times[1].push(t.elapsed());
        let t = Instant::now();
        pipeline::finish_in_place(image, mask, &prepared, &rec, size, feather)?;
        times[2].push(t.elapsed());
        let t = Instant::now();
        let prepared = pipeline::prepare_in_box(image, mask, *hole, size, fit)?;
        times[3].push(t.elapsed());
        let t = Instant::now();
        pipeline::finish_in_place_in_box(image, mask, &prepared, &rec, size, feather, *hole)?;
        times[4].push(t.elapsed());
    }
    Ok(times.map(|mut t| ms(&mut t, 0.5)))
}
