//! The data pipeline on real (small, generated) files: shapes, determinism, corrupt files.
mod common;

use facerecon_imaging::io::list_images;
use facerecon_imaging::masks::{MaskSampler, MaskSpec};
use facerecon_train::data::{split_files, SkipLog, TrainData, ValidationSet};

fn sampler() -> MaskSampler {
    let specs: Vec<MaskSpec> = serde_yaml::from_str("[{kind: box, min: 6, max: 12}]").unwrap();
    MaskSampler::new(&specs).unwrap()
}

#[test]
fn batches_have_the_right_shapes_and_a_corrupt_file_is_skipped_once() {
    let dir = tempfile::tempdir().unwrap();
    common::write_images(dir.path(), 10, 40, 30);
    let bad = common::write_corrupt(dir.path(), "broken.png");
    std::fs::write(dir.path().join("notes.txt"), "not an image").unwrap();
    let files = list_images(dir.path());
    assert_eq!(files.len(), 11, "{files:?}");
    let split = split_files(dir.path(), &files, 0.0, None, 10);
    assert_eq!((split.train.len(), split.val.len()), (11, 0));

    let skipped = SkipLog::default();
    let data = TrainData::new(split.train, sampler(), 16, 4, 7, true, skipped.clone());
    assert_eq!(data.batches_per_epoch(), 3);
    let epoch0: Vec<_> = data.epoch(0, 0).collect();
    let lens: Vec<usize> = epoch0.iter().map(|b| b.len).collect();
    assert_eq!(lens.iter().sum::<usize>(), 10, "{lens:?}");
    for b in &epoch0 {
        assert_eq!(b.size, 16);
        assert_eq!(b.images.len(), b.len * 3 * 16 * 16);
        assert_eq!(b.masks.len(), b.len * 16 * 16);
        assert!(b.images.iter().all(|v| (0.0..=1.0).contains(v)));
        assert!(b.masks.iter().all(|v| *v == 0.0 || *v == 1.0));
        // The network input is the image with exactly the hole pixels zeroed, in every channel.
        assert_eq!(b.inputs.len(), b.images.len());
        for (k, (input, image)) in b.inputs.iter().zip(&b.images).enumerate() {
            let (img, px) = (k / (3 * 256), k % 256);
            let hole = b.masks[img * 256 + px] == 1.0;
            assert_eq!(*input, if hole { 0.0 } else { *image }, "element {k}");
        }
        // Every image has a hole of 36..144 pixels.
        for m in b.masks.chunks(256) {
            let holes = m.iter().filter(|v| **v == 1.0).count();
            assert!((36..=144).contains(&holes), "{holes}");
        }
    }
    let entries = skipped.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, bad);
    assert!(!entries[0].1.is_empty());

    // Reproducible: the same epoch gives the same images and masks; resuming after one batch
    // replays the rest exactly; another epoch reshuffles and draws new masks.
    let again: Vec<_> = data.epoch(0, 0).collect();
    assert_eq!(
        again.iter().map(|b| &b.masks).collect::<Vec<_>>(),
        epoch0.iter().map(|b| &b.masks).collect::<Vec<_>>()
    );
    assert_eq!(
        again.iter().map(|b| &b.images).collect::<Vec<_>>(),
        epoch0.iter().map(|b| &b.images).collect::<Vec<_>>()
    );
    let resumed: Vec<_> = data.epoch(0, 1).collect();
    assert_eq!(resumed.len(), epoch0.len() - 1);
    assert_eq!(resumed[0].masks, epoch0[1].masks);
    let epoch1: Vec<_> = data.epoch(1, 0).collect();
    assert_ne!(epoch1[0].masks, epoch0[0].masks);
    assert_eq!(skipped.entries().len(), 1, "reported once");

    // Dropping a stream early stops its thread (no hang).
    let mut stream = data.epoch(2, 0);
    assert!(stream.next().is_some());
    drop(stream);
}

#[test]
fn validation_set_is_decoded_once_with_fixed_masks() {
    let dir = tempfile::tempdir().unwrap();
    common::write_images(dir.path(), 6, 24, 24);
    common::write_corrupt(dir.path(), "bad.jpg");
    let files = list_images(dir.path());
    let skipped = SkipLog::default();
    let a = ValidationSet::load(&files, &sampler(), 16, &skipped);
    let b = ValidationSet::load(&files, &sampler(), 16, &SkipLog::default());
    assert_eq!(a.len, 6);
    assert_eq!(skipped.entries().len(), 1);
    assert_eq!(a.masks, b.masks);
    assert_eq!(a.images, b.images);
    let s = a.slice(2, 5);
    assert_eq!((s.len, s.images.len(), s.masks.len()), (3, 3 * 768, 3 * 256));
    assert_eq!(s.images[..], a.images[2 * 768..5 * 768]);
}
