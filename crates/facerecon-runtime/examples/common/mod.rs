//! What the examples share: camera_loop's synthetic frames (edge_bench times the same frames).

use facerecon_runtime::{GrayImage, Luma, Region, Rgb, RgbImage};

/// Where [`frame`] `n` has its hole: what camera software would know from its face detector or
/// from the area it blanked itself.
pub fn hole_box(n: u32, width: u32, height: u32) -> Region {
    let (hw, hh) = (width / 6 + 4, height / 7 + 4);
    Region {
        x: (width / 5 + 7 * n) % (width - hw),
        y: (height / 4 + 5 * n) % (height - hh),
        width: hw,
        height: hh,
    }
}

/// Frame `n`: a drifting colour gradient with a black box that moves with `n`, the box being the hole
/// (a sixth by a seventh of the frame plus 4 pixels: 324x158 at 1920x1080), as a camera pipeline
/// that blanks a region would deliver it.
pub fn frame(n: u32, width: u32, height: u32) -> (RgbImage, GrayImage) {
    let Region {
        x: hx,
        y: hy,
        width: hw,
        height: hh,
    } = hole_box(n, width, height);
    let hole = |x: u32, y: u32| x >= hx && x < hx + hw && y >= hy && y < hy + hh;
    let mask = GrayImage::from_fn(width, height, |x, y| Luma([if hole(x, y) { 255 } else { 0 }]));
    let image = RgbImage::from_fn(width, height, |x, y| {
        if hole(x, y) {
            Rgb([0, 0, 0])
        } else {
            Rgb([
                (x * 255 / width + n) as u8,
                (y * 255 / height) as u8,
                (x + y + 3 * n) as u8,
            ])
        }
    });
    (image, mask)
}
