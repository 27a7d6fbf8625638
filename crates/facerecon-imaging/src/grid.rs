//! Sample grids: rows of equally sized images separated by a 2-pixel gap.

use image::{imageops, RgbImage};

/// Gap between tiles, in pixels.
pub const GAP: u32 = 2;

/// Tiles `rows` (each a row of images, all the same size) into one image, with a
/// [`GAP`]-pixel white gap between tiles. Rows may have different lengths (short rows leave
/// white space). Returns a 1x1 white image when there is nothing to tile.
/// Panics if the images are not all the same size.
pub fn grid(rows: &[Vec<RgbImage>]) -> RgbImage {
    let Some(first) = rows.iter().flatten().next() else {
        return RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255]));
    };
    let (tw, th) = first.dimensions();
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0) as u32;
    let n = rows.len() as u32;
    let width = cols * tw + (cols - 1) * GAP;
    let height = n * th + (n - 1) * GAP;
    let mut out = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            assert_eq!(img.dimensions(), (tw, th), "grid: all images must have the same size");
            let x = c as u32 * (tw + GAP);
            let y = r as u32 * (th + GAP);
            imageops::replace(&mut out, img, x as i64, y as i64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn grid_places_tiles_with_gaps() {
        let tile = |v: u8| RgbImage::from_pixel(10, 8, Rgb([v, 0, 0]));
        let rows = vec![vec![tile(1), tile(2), tile(3)], vec![tile(4), tile(5)]];
        let g = grid(&rows);
        assert_eq!(g.dimensions(), (3 * 10 + 2 * GAP, 2 * 8 + GAP));
        assert_eq!(g.get_pixel(0, 0)[0], 1);
        assert_eq!(g.get_pixel(12, 0)[0], 2);
        assert_eq!(g.get_pixel(10, 0), &Rgb([255, 255, 255])); // gap
        assert_eq!(g.get_pixel(24, 7)[0], 3);
        assert_eq!(g.get_pixel(12, 10)[0], 5);
        assert_eq!(g.get_pixel(25, 10), &Rgb([255, 255, 255])); // missing tile
        assert_eq!(grid(&[]).dimensions(), (1, 1));
    }
}
