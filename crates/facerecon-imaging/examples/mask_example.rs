//! Renders sample masks over synthetic faces: `cargo run -p facerecon-imaging --example mask_example [OUT.png]`.
use facerecon_imaging::composite::zero_holes;
use facerecon_imaging::masks::{MaskSampler, MaskSpec};
use facerecon_imaging::{grid::grid, io::save_png_atomic, synth::synth_face};
use rand::SeedableRng;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/mask_example.png".into());
    let specs = [
        MaskSpec::Box {
            min: 28,
            max: 28,
            weight: 1.0,
        },
        MaskSpec::Boxes {
            min: 16,
            max: 48,
            count_min: 1,
            count_max: 3,
            weight: 1.0,
        },
        MaskSpec::Strokes {
            width_min: 6,
            width_max: 16,
            count_min: 1,
            count_max: 4,
            weight: 1.0,
        },
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let rows: Vec<Vec<_>> = specs
        .iter()
        .enumerate()
        .map(|(r, spec)| {
            let sampler = MaskSampler::new(std::slice::from_ref(spec)).expect("valid spec");
            (0..6)
                .map(|c| zero_holes(&synth_face((r * 6 + c) as u64, 128), &sampler.sample(128, &mut rng)))
                .collect()
        })
        .collect();
    save_png_atomic(&grid(&rows), std::path::Path::new(&out)).expect("write");
    println!("{out}");
}
