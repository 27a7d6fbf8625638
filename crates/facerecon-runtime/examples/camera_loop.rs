//! How camera software embeds the runtime: load the model once, then reconstruct frames from memory
//! in a loop (one at a time, with and without the hole's box known, then in batches), and report
//! latency.
//!
//! ```text
//! ORT_DYLIB_PATH=$(scripts/setup-ort.sh) cargo run --release -p facerecon-runtime --example camera_loop -- \
//!     exported/seed.onnx [frames] [width] [height] [batch]
//! ```
//!
//! Frames are synthetic (a drifting colour gradient with a black box that moves, the box being the
//! hole): no disk I/O happens inside the loop. Every result is checked: known pixels must come back
//! bit-identical.

use std::{
    error::Error,
    time::{Duration, Instant},
};

use common::{frame, hole_box};
use facerecon_runtime::{GrayImage, RgbImage, Runtime, RuntimeOptions};

mod common;

/// Known pixels identical, or an error naming the first one that changed.
fn check(n: u32, input: &RgbImage, mask: &GrayImage, output: &RgbImage) -> Result<(), String> {
    for (x, y, p) in output.enumerate_pixels() {
        if !facerecon_runtime::contract::is_hole(mask.get_pixel(x, y).0[0]) && p != input.get_pixel(x, y) {
            return Err(format!("frame {n}: known pixel ({x},{y}) changed"));
        }
    }
    Ok(())
}

/// Print mean / p50 / p95 / max of `times`, each for `per` frames.
fn report(label: &str, times: &mut [Duration], per: usize) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / per as f64;
    let mean = times.iter().map(|&d| ms(d)).sum::<f64>() / times.len() as f64;
    let pick = |q: f64| ms(times[((times.len() as f64 * q) as usize).min(times.len() - 1)]);
    println!(
        "{label}: {} frames, per frame: mean {mean:.2} ms, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms ({:.1} frames/s)",
        times.len() * per,
        pick(0.5),
        pick(0.95),
        ms(*times.last().unwrap()),
        1e3 / mean
    );
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(model) = args.first() else {
        return Err("usage: camera_loop MODEL.onnx [frames=50] [width=640] [height=480] [batch=8]".into());
    };
    let num = |i: usize, default: u32| -> Result<u32, Box<dyn Error>> {
        Ok(args.get(i).map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    let (frames, width, height, batch) = (num(1, 50)?, num(2, 640)?, num(3, 480)?, num(4, 8)?);
    if frames == 0 || batch == 0 || width < 32 || height < 32 {
        return Err("frames and batch must be > 0, the frame at least 32x32".into());
    }

    // Load once: this validates the file and builds the ONNX Runtime session (the slow part).
    let start = Instant::now();
    let options = RuntimeOptions {
        batch_size: batch as usize,
        ..Default::default()
    };
    let rt = Runtime::load(model, &options)?;
    let load_time = start.elapsed();
    println!(
        "{model}: {0}x{0} model on {1}, loaded in {2:.1} ms; frames {width}x{height}",
        rt.info().image_size,
        rt.provider(),
        load_time.as_secs_f64() * 1e3
    );

    // Warm-up: ONNX Runtime allocates and tunes on the first run; a camera would do this at start-up.
    let (image, mask) = frame(0, width, height);
    let warm = Instant::now();
    rt.reconstruct(&image, &mask)?;
    println!(
        "cold start: first frame's result {:.1} ms after Runtime::load was called (the first frame itself {:.1} ms)",
        (load_time + warm.elapsed()).as_secs_f64() * 1e3,
        warm.elapsed().as_secs_f64() * 1e3
    );

    // One frame at a time, into the frame's own buffer: the latency a live preview sees. (The copy
    // kept for the check is made outside the timing.)
    let mut times = Vec::with_capacity(frames as usize);
    for n in 0..frames {
        let (mut image, mask) = frame(n, width, height);
        let input = image.clone();
        let start = Instant::now();
        rt.reconstruct_in_place(&mut image, &mask)?;
        times.push(start.elapsed());
        check(n, &input, &mask, &image)?;
    }
    report("reconstruct_in_place (the mask searched for the hole)", &mut times, 1);

    // The same when the app knows where the hole is (it blanked that box, or a face detector found
    // it): the library reads the mask only there. What camera software should call.
    let mut times = Vec::with_capacity(frames as usize);
    for n in 0..frames {
        let (mut image, mask) = frame(n, width, height);
        let input = image.clone();
        let start = Instant::now();
        rt.reconstruct_in_place_in_box(&mut image, &mask, hole_box(n, width, height))?;
        times.push(start.elapsed());
        check(n, &input, &mask, &image)?;
    }
    report("reconstruct_in_place_in_box (the hole's box known)", &mut times, 1);

    // Batches: the throughput of a burst or of post-processing a clip.
    let mut times = Vec::new();
    for first in (0..frames).step_by(batch as usize) {
        let items: Vec<(RgbImage, GrayImage)> = (first..(first + batch).min(frames))
            .map(|n| frame(n, width, height))
            .collect();
        let start = Instant::now();
        let outputs = rt.reconstruct_batch(&items)?;
        let elapsed = start.elapsed();
        for (k, ((image, mask), output)) in items.iter().zip(&outputs).enumerate() {
            check(first + k as u32, image, mask, output)?;
        }
        // Per-frame figures for a full batch only; a short tail batch would skew them.
        if items.len() == batch as usize {
            times.push(elapsed);
        }
    }
    if times.is_empty() {
        println!("reconstruct_batch: fewer than {batch} frames, no full batch to time");
    } else {
        report(
            &format!("reconstruct_batch (batches of {batch})"),
            &mut times,
            batch as usize,
        );
    }
    println!("all frames: known pixels unchanged");
    Ok(())
}
