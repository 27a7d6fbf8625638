//! Zeroing holes and compositing a reconstruction back into the original image, and the pixel
//! types: the 8-bit RGB view the network sees of any decoded image, and writing hole values back
//! into the image's own type (grey or colour, 8 or 16 bits, alpha kept).

use facerecon_contract::is_hole;
use image::imageops::{self, FilterType};
use image::{DynamicImage, GenericImageView, GrayImage, ImageBuffer, Pixel, RgbImage};

/// Returns `img` with every hole pixel ([`is_hole`]) set to black (0,0,0),
/// which is what the network sees as input. Panics if the sizes differ.
pub fn zero_holes(img: &RgbImage, mask: &GrayImage) -> RgbImage {
    assert_eq!(
        img.dimensions(),
        mask.dimensions(),
        "zero_holes: image and mask sizes differ"
    );
    let mut out = img.clone();
    for (p, m) in out.pixels_mut().zip(mask.pixels()) {
        if is_hole(m[0]) {
            *p = image::Rgb([0, 0, 0]);
        }
    }
    out
}

/// Upsamples `recon` (model size) to the original's size (Catmull-Rom) and replaces only the
/// hole pixels ([`is_hole`]) of `original`; every other pixel is copied bit-for-bit.
///
/// `mask` must have the original's size. Panics otherwise.
///
/// ```
/// use facerecon_imaging::composite::composite;
/// use image::{GrayImage, Luma, Rgb, RgbImage};
/// let original = RgbImage::from_pixel(4, 4, Rgb([10, 20, 30]));
/// let recon = RgbImage::from_pixel(4, 4, Rgb([200, 200, 200]));
/// let mut mask = GrayImage::new(4, 4);
/// mask.put_pixel(1, 2, Luma([255]));
/// let out = composite(&original, &recon, &mask);
/// assert_eq!(out.get_pixel(1, 2).0, [200, 200, 200]); // the hole comes from the reconstruction
/// assert_eq!(out.pixels().filter(|p| p.0 == [10, 20, 30]).count(), 15); // everything else is the original
/// ```
pub fn composite(original: &RgbImage, recon: &RgbImage, mask: &GrayImage) -> RgbImage {
    assert_eq!(
        original.dimensions(),
        mask.dimensions(),
        "composite: original and mask sizes differ"
    );
    let (w, h) = original.dimensions();
    let resized;
    let recon = if recon.dimensions() == (w, h) {
        recon
    } else {
        resized = imageops::resize(recon, w, h, FilterType::CatmullRom);
        &resized
    };
    let mut out = original.clone();
    for ((o, r), m) in out.pixels_mut().zip(recon.pixels()).zip(mask.pixels()) {
        if is_hole(m[0]) {
            *o = *r;
        }
    }
    out
}

/// The grey (sRGB 128) that the network sees behind transparent pixels: a neutral backdrop, not
/// black (which would read as a hole or as dark content next to one).
pub const BACKDROP: u8 = 128;

/// Whether the pixels of `img` can be kept exactly in the PNG output: 8 or 16 bits per sample,
/// grey or colour, with or without alpha. 32-bit float samples (float TIFF) cannot.
pub fn check_keepable(img: &DynamicImage) -> Result<(), String> {
    match img {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => Ok(()),
        other => Err(format!(
            "{:?} pixels (32-bit float samples) cannot be kept: the output is a PNG, which holds 8 or 16 \
             bits per sample; convert the image to 16-bit first",
            other.color()
        )),
    }
}

/// The colour of pixel `(x, y)` in `[0,1]` as the network sees it: grey replicated to RGB, and
/// alpha composited over [`BACKDROP`] (straight alpha: `a*c + (1-a)*backdrop`). Opaque pixels are
/// exactly their own colour.
pub fn view_colour(img: &DynamicImage, x: u32, y: u32) -> [f32; 3] {
    fn over(c: [f32; 3], a: f32) -> [f32; 3] {
        let b = BACKDROP as f32 / 255.0;
        if a >= 1.0 {
            return c;
        }
        c.map(|v| a * v + (1.0 - a) * b)
    }
    let n8 = |v: u8| v as f32 / 255.0;
    let n16 = |v: u16| v as f32 / 65535.0;
    match img {
        DynamicImage::ImageLuma8(i) => [n8(i.get_pixel(x, y)[0]); 3],
        DynamicImage::ImageLumaA8(i) => {
            let p = i.get_pixel(x, y).0;
            over([n8(p[0]); 3], n8(p[1]))
        }
        DynamicImage::ImageRgb8(i) => i.get_pixel(x, y).0.map(n8),
        DynamicImage::ImageRgba8(i) => {
            let p = i.get_pixel(x, y).0;
            over([n8(p[0]), n8(p[1]), n8(p[2])], n8(p[3]))
        }
        DynamicImage::ImageLuma16(i) => [n16(i.get_pixel(x, y)[0]); 3],
        DynamicImage::ImageLumaA16(i) => {
            let p = i.get_pixel(x, y).0;
            over([n16(p[0]); 3], n16(p[1]))
        }
        DynamicImage::ImageRgb16(i) => i.get_pixel(x, y).0.map(n16),
        DynamicImage::ImageRgba16(i) => {
            let p = i.get_pixel(x, y).0;
            over([n16(p[0]), n16(p[1]), n16(p[2])], n16(p[3]))
        }
        DynamicImage::ImageRgb32F(i) => i.get_pixel(x, y).0,
        DynamicImage::ImageRgba32F(i) => {
            let p = i.get_pixel(x, y).0;
            over([p[0], p[1], p[2]], p[3].clamp(0.0, 1.0))
        }
        other => {
            let p = other.get_pixel(x, y).0;
            over([n8(p[0]), n8(p[1]), n8(p[2])], n8(p[3]))
        }
    }
}

/// The 8-bit RGB picture the network and the hole detection see ([`view_colour`], rounded; for an
/// 8-bit image without alpha, its own values).
pub fn network_view(img: &DynamicImage) -> RgbImage {
    match img {
        DynamicImage::ImageRgb8(i) => i.clone(),
        DynamicImage::ImageLuma8(_) => img.to_rgb8(),
        other => RgbImage::from_fn(other.width(), other.height(), |x, y| {
            image::Rgb(view_colour(other, x, y).map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8))
        }),
    }
}

/// For an image with alpha, which pixels are fully opaque (row-major); `None` without alpha. Only
/// opaque pixels can be detected as holes: transparency is never a hole.
pub fn opaque_pixels(img: &DynamicImage) -> Option<Vec<bool>> {
    Some(match img {
        DynamicImage::ImageLumaA8(i) => i.pixels().map(|p| p[1] == u8::MAX).collect(),
        DynamicImage::ImageRgba8(i) => i.pixels().map(|p| p[3] == u8::MAX).collect(),
        DynamicImage::ImageLumaA16(i) => i.pixels().map(|p| p[1] == u16::MAX).collect(),
        DynamicImage::ImageRgba16(i) => i.pixels().map(|p| p[3] == u16::MAX).collect(),
        DynamicImage::ImageRgba32F(i) => i.pixels().map(|p| p[3] >= 1.0).collect(),
        _ => return None,
    })
}

/// Writes `colour(x, y)` (RGB in `[0,1]`; `None` leaves the pixel) into the hole pixels
/// ([`is_hole`]) of `img`, in the image's own type: 8- and 16-bit samples are rounded from the
/// value (so an 8-bit value `v/255` comes back as `v`), grey types get the luma (Rec. 709 weights,
/// as `image` converts), and alpha keeps its value. No other pixel is touched.
/// Panics if the sizes differ.
pub fn paste_holes(img: &mut DynamicImage, mask: &GrayImage, colour: impl Fn(u32, u32) -> Option<[f32; 3]>) {
    assert_eq!(
        img.dimensions(),
        mask.dimensions(),
        "paste_holes: image and mask sizes differ"
    );
    fn paste<P: Pixel>(
        buf: &mut ImageBuffer<P, Vec<P::Subpixel>>,
        mask: &GrayImage,
        colour: &dyn Fn(u32, u32) -> Option<[f32; 3]>,
        quantise: impl Fn(f32) -> P::Subpixel,
    ) {
        let grey = P::CHANNEL_COUNT <= 2;
        for (x, y, p) in buf.enumerate_pixels_mut() {
            if !is_hole(mask.get_pixel(x, y)[0]) {
                continue;
            }
            let Some(c) = colour(x, y) else { continue };
            let ch = p.channels_mut();
            if grey {
                ch[0] = quantise(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]);
            } else {
                for k in 0..3 {
                    ch[k] = quantise(c[k]);
                }
            }
        }
    }
    let q8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let q16 = |v: f32| (v.clamp(0.0, 1.0) * 65535.0).round() as u16;
    let qf = |v: f32| v;
    match img {
        DynamicImage::ImageLuma8(b) => paste(b, mask, &colour, q8),
        DynamicImage::ImageLumaA8(b) => paste(b, mask, &colour, q8),
        DynamicImage::ImageRgb8(b) => paste(b, mask, &colour, q8),
        DynamicImage::ImageRgba8(b) => paste(b, mask, &colour, q8),
        DynamicImage::ImageLuma16(b) => paste(b, mask, &colour, q16),
        DynamicImage::ImageLumaA16(b) => paste(b, mask, &colour, q16),
        DynamicImage::ImageRgb16(b) => paste(b, mask, &colour, q16),
        DynamicImage::ImageRgba16(b) => paste(b, mask, &colour, q16),
        DynamicImage::ImageRgb32F(b) => paste(b, mask, &colour, qf),
        DynamicImage::ImageRgba32F(b) => paste(b, mask, &colour, qf),
        other => panic!("paste_holes: unsupported pixel type {:?}", other.color()),
    }
}

#[cfg(all(test, feature = "synth"))]
mod tests {
    use super::*;
    use crate::masks::box_mask;
    use facerecon_contract::HOLE_THRESHOLD;
    use image::Rgb;

    #[test]
    fn zero_holes_blacks_out_only_holes() {
        let img = crate::synth::synth_face(5, 32);
        let mask = box_mask(32, 32, 4, 6, 10, 5);
        let z = zero_holes(&img, &mask);
        for (x, y, p) in z.enumerate_pixels() {
            if is_hole(mask.get_pixel(x, y)[0]) {
                assert_eq!(*p, Rgb([0, 0, 0]));
            } else {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
    }

    #[test]
    fn composite_replaces_exactly_the_holes_at_full_resolution() {
        let original = crate::synth::synth_face(9, 96);
        let recon = RgbImage::from_pixel(32, 32, Rgb([10, 200, 30]));
        let mut mask = box_mask(96, 96, 20, 30, 25, 17);
        mask.put_pixel(0, 0, image::Luma([HOLE_THRESHOLD])); // the threshold counts
        mask.put_pixel(1, 0, image::Luma([HOLE_THRESHOLD - 1])); // below it does not
        let out = composite(&original, &recon, &mask);
        assert_eq!(out.dimensions(), (96, 96));
        let mut replaced = 0;
        for (x, y, p) in out.enumerate_pixels() {
            if is_hole(mask.get_pixel(x, y)[0]) {
                assert_eq!(*p, Rgb([10, 200, 30]));
                replaced += 1;
            } else {
                assert_eq!(p, original.get_pixel(x, y), "known pixel ({x},{y}) changed");
            }
        }
        assert_eq!(replaced, 25 * 17 + 1);

        // A same-size reconstruction is used as is.
        let recon = crate::synth::synth_face(10, 96);
        let out = composite(&original, &recon, &mask);
        assert_eq!(out.get_pixel(30, 40), recon.get_pixel(30, 40));
        assert_eq!(out.get_pixel(90, 90), original.get_pixel(90, 90));
    }

    #[test]
    fn the_view_shows_transparency_over_grey_and_keeps_opaque_colours() {
        let rgba = image::RgbaImage::from_fn(3, 1, |x, _| {
            image::Rgba([[10, 20, 30, 255], [0, 0, 0, 0], [200, 100, 0, 51]][x as usize])
        });
        let img = DynamicImage::ImageRgba8(rgba);
        let view = network_view(&img);
        assert_eq!(view.get_pixel(0, 0), &Rgb([10, 20, 30]), "opaque: its own colour");
        assert_eq!(
            view.get_pixel(1, 0),
            &Rgb([BACKDROP; 3]),
            "transparent black is grey, not a hole"
        );
        // a = 0.2: 0.2 * c + 0.8 * 128.
        assert_eq!(view.get_pixel(2, 0), &Rgb([142, 122, 102]));
        assert_eq!(opaque_pixels(&img), Some(vec![true, false, false]));
        // Grey and 16-bit: replicated and rounded.
        let l16 = image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(2, 1, |x, _| {
            image::Luma([[257 * 9, 65535][x as usize]])
        });
        let img = DynamicImage::ImageLuma16(l16);
        assert_eq!(network_view(&img).as_raw(), &vec![9, 9, 9, 255, 255, 255]);
        assert_eq!(opaque_pixels(&img), None);
        assert!(check_keepable(&img).is_ok());
        let float = DynamicImage::ImageRgb32F(image::Rgb32FImage::new(1, 1));
        assert!(check_keepable(&float).unwrap_err().contains("32-bit float"));
    }

    #[test]
    fn paste_holes_writes_only_holes_in_the_image_s_own_type() {
        let mask = box_mask(6, 4, 1, 1, 3, 2);
        let colour = |_: u32, _: u32| Some([0.1f32, 0.3, 0.5]);
        let la16 = image::ImageBuffer::<image::LumaA<u16>, Vec<u16>>::from_fn(6, 4, |x, y| {
            image::LumaA([x as u16 * 1000 + y as u16, 40000 + x as u16])
        });
        let rgba8 = image::RgbaImage::from_fn(6, 4, |x, y| image::Rgba([x as u8, y as u8, 7, 100 + x as u8]));
        for original in [DynamicImage::ImageLumaA16(la16), DynamicImage::ImageRgba8(rgba8)] {
            let mut out = original.clone();
            paste_holes(&mut out, &mask, colour);
            assert_eq!(out.color(), original.color());
            for (x, y, m) in mask.enumerate_pixels() {
                let (a, b) = (original.get_pixel(x, y), out.get_pixel(x, y));
                if !is_hole(m[0]) {
                    assert_eq!(a, b, "known pixel {x},{y}");
                } else {
                    assert_eq!(a[3], b[3], "alpha of hole pixel {x},{y}");
                }
            }
            match &out {
                // Grey gets the luma, at 16 bits: 0.27192 * 65535.
                DynamicImage::ImageLumaA16(b) => assert_eq!(b.get_pixel(2, 1).0, [17820, 40002]),
                DynamicImage::ImageRgba8(b) => assert_eq!(b.get_pixel(2, 1).0, [26, 77, 128, 102]),
                _ => unreachable!(),
            }
        }
        // An 8-bit value v/255 comes back as v; None leaves the pixel.
        let mut rgb = DynamicImage::ImageRgb8(RgbImage::new(6, 4));
        paste_holes(&mut rgb, &mask, |x, _| {
            (x != 3).then(|| [1.0 / 255.0, 254.0 / 255.0, 0.5])
        });
        let rgb = rgb.to_rgb8();
        assert_eq!(rgb.get_pixel(1, 1), &Rgb([1, 254, 128]));
        assert_eq!(rgb.get_pixel(3, 1), &Rgb([0, 0, 0]));
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([0, 0, 0]));
    }
}
