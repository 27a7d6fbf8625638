//! `--decoded-cache DIR` (`TrainOptions::decoded_cache`, `data::cache`): the same training as decoding every
//! draw, one cache file per file list and size, rebuilt when a file changes or the cache is damaged, and
//! never a half-written file under the cache's name.
mod common;

use facerecon_train::{run, Summary, TrainOptions};
use std::path::{Path, PathBuf};

fn train(data: &Path, out: &Path, cache: Option<&Path>) -> Summary {
    run(&TrainOptions {
        config: Some(common::tiny_config()),
        data: Some(data.to_path_buf()),
        out: out.to_path_buf(),
        device: "cpu".into(),
        epochs: Some(1),
        batch_size: Some(4),
        max_steps: Some(5),
        seed: Some(3),
        force: true,
        decoded_cache: cache.map(Path::to_path_buf),
        ..Default::default()
    })
    .unwrap()
}

/// The cache directory's files, sorted.
fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn decoded_cache_trains_identically_and_is_rebuilt_when_files_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, out, cache) = (
        tmp.path().join("faces"),
        tmp.path().join("run"),
        tmp.path().join("cache"),
    );
    common::write_images(&data, 40, 40, 36);
    common::write_corrupt(&data, "corrupt.png");

    let plain = train(&data, &out, None);
    let first = train(&data, &out, Some(&cache));
    assert_eq!(
        first.step_losses, plain.step_losses,
        "cached images must be the decoded ones"
    );
    assert_eq!(first.skipped, plain.skipped, "unreadable files are still reported");
    assert!(plain.skipped >= 1);
    let files = listing(&cache);
    assert_eq!(files.len(), 1, "one cache file, no temporary left: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("decoded-") && name.ends_with(".bin"), "{name}");
    let built = std::fs::read(&files[0]).unwrap();

    // Reused as is.
    let again = train(&data, &out, Some(&cache));
    assert_eq!(again.step_losses, plain.step_losses);
    assert_eq!(listing(&cache), files);
    assert_eq!(std::fs::read(&files[0]).unwrap(), built);

    // A damaged cache (cut short, e.g. by a full disk) is detected and rebuilt under the same name.
    std::fs::write(&files[0], &built[..built.len() / 2]).unwrap();
    let repaired = train(&data, &out, Some(&cache));
    assert_eq!(repaired.step_losses, plain.step_losses);
    assert_eq!(std::fs::read(&files[0]).unwrap(), built);

    // Changed images (new size and time; ten of them, so that training files are among them) are another
    // file list: a second cache, built from the new pixels.
    for i in 0..10 {
        let dir = if i % 2 == 0 { data.clone() } else { data.join("nested") };
        image::RgbImage::from_pixel(50, 44, image::Rgb([200, 10, 10]))
            .save(dir.join(format!("face_{i:04}.png")))
            .unwrap();
    }
    let new_plain = train(&data, &out, None);
    let new_cached = train(&data, &out, Some(&cache));
    assert_eq!(listing(&cache).len(), 2);
    assert_eq!(new_cached.step_losses, new_plain.step_losses);
    assert_ne!(new_plain.step_losses, plain.step_losses, "the changed images are drawn");
}
