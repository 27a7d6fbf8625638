//! Renders a grid of synthetic faces: `cargo run -p facerecon-imaging --example synth_example [OUT.png] [SIZE]`.
use facerecon_imaging::{grid::grid, io::save_png_atomic, synth::synth_face};

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "/tmp/synth_example.png".into());
    let size: u32 = args.next().map(|s| s.parse().expect("SIZE")).unwrap_or(128);
    let t = std::time::Instant::now();
    let rows: Vec<Vec<_>> = (0..4)
        .map(|r| (0..6).map(|c| synth_face(r * 6 + c, size)).collect())
        .collect();
    let per = t.elapsed().as_secs_f64() * 1000.0 / 24.0;
    save_png_atomic(&grid(&rows), std::path::Path::new(&out)).expect("write");
    println!("{out}: {per:.2} ms per face");
}
