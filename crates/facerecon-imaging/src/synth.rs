//! Procedural cartoon faces: the embedded default dataset, so that training and tests run
//! without downloading anything.
//!
//! Every face is drawn from its seed alone (a private SplitMix64 generator, so the images never
//! change with the `rand` crate's version). Shapes are signed-distance functions in *face
//! coordinates* (the image spans [-1,1] before the pose is applied); each is painted over its
//! bounding box with analytic anti-aliasing (coverage = distance to the edge in pixels), back to
//! front: background gradient, long hair, shoulders, neck, ears, head (shaded), hair cap,
//! eyebrows, eyes (white, iris, pupil, highlight, lid), nose shading, lips, blush, glasses,
//! then mild noise. Variation: skin tone (realistic palette), hair style and colour, iris colour,
//! feature sizes and positions, expression, accessories, background, and a small random pose
//! (rotation, offset, scale).

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::ImagingError;

/// Small deterministic PRNG (SplitMix64).
struct Rng64(u64);

impl Rng64 {
    fn new(seed: u64) -> Self {
        // Decorrelate consecutive seeds.
        let mut r = Rng64(seed ^ 0x5EED_FACE_0BAD_CAFE);
        r.next();
        r
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0,1).
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

type Rgb = [f32; 3];

fn lerp(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn scale(c: Rgb, k: f32) -> Rgb {
    [c[0] * k, c[1] * k, c[2] * k]
}

/// Interpolates along a palette with t in [0,1].
fn palette(colors: &[Rgb], t: f32) -> Rgb {
    let x = t.clamp(0.0, 1.0) * (colors.len() - 1) as f32;
    let i = (x.floor() as usize).min(colors.len() - 2);
    lerp(colors[i], colors[i + 1], x - i as f32)
}

/// Skin tones from very light to very dark (roughly the Fitzpatrick range).
const SKIN: &[Rgb] = &[
    [255.0, 226.0, 204.0],
    [241.0, 194.0, 167.0],
    [224.0, 172.0, 138.0],
    [198.0, 134.0, 98.0],
    [141.0, 85.0, 54.0],
    [92.0, 58.0, 40.0],
];
const HAIR: &[Rgb] = &[
    [28.0, 22.0, 20.0],    // black
    [62.0, 40.0, 28.0],    // dark brown
    [105.0, 70.0, 42.0],   // brown
    [160.0, 115.0, 70.0],  // light brown
    [214.0, 180.0, 115.0], // blond
    [150.0, 65.0, 32.0],   // auburn
    [160.0, 160.0, 165.0], // gray
    [225.0, 222.0, 215.0], // white
];
const IRIS: &[Rgb] = &[
    [92.0, 56.0, 30.0],
    [60.0, 36.0, 22.0],
    [70.0, 118.0, 170.0],
    [84.0, 128.0, 86.0],
    [128.0, 104.0, 56.0],
    [110.0, 120.0, 128.0],
];

/// The pose: face coordinates -> pixels.
struct Canvas {
    size: usize,
    px: Vec<Rgb>,
    cos: f32,
    sin: f32,
    scale: f32,
    off: (f32, f32),
    /// One pixel in face units.
    pixel: f32,
}

impl Canvas {
    fn to_image(&self, u: f32, v: f32) -> (f32, f32) {
        let half = self.size as f32 / 2.0;
        let (ru, rv) = (self.cos * u - self.sin * v, self.sin * u + self.cos * v);
        (
            half * (1.0 + self.off.0 + self.scale * ru),
            half * (1.0 + self.off.1 + self.scale * rv),
        )
    }

    fn to_face(&self, x: f32, y: f32) -> (f32, f32) {
        let half = self.size as f32 / 2.0;
        let (a, b) = (
            ((x / half) - 1.0 - self.off.0) / self.scale,
            ((y / half) - 1.0 - self.off.1) / self.scale,
        );
        (self.cos * a + self.sin * b, -self.sin * a + self.cos * b)
    }

    /// Paints the shape `sd` (negative inside) with `color(u,v)` at opacity `alpha` over the
    /// pixels within `radius` (face units) of `(cu,cv)`. `feather` widens the edge (face units)
    /// for soft shading; 0 gives a crisp anti-aliased edge.
    #[allow(clippy::too_many_arguments)]
    fn paint(
        &mut self,
        (cu, cv): (f32, f32),
        radius: f32,
        alpha: f32,
        feather: f32,
        sd: impl Fn(f32, f32) -> f32,
        color: impl Fn(f32, f32) -> Rgb,
    ) {
        let (cx, cy) = self.to_image(cu, cv);
        let r = radius * self.scale * self.size as f32 / 2.0 + 2.0;
        let n = self.size as f32;
        let x0 = (cx - r).floor().clamp(0.0, n) as usize;
        let x1 = (cx + r).ceil().clamp(0.0, n) as usize;
        let y0 = (cy - r).floor().clamp(0.0, n) as usize;
        let y1 = (cy + r).ceil().clamp(0.0, n) as usize;
        let edge = self.pixel + feather;
        for y in y0..y1 {
            for x in x0..x1 {
                let (u, v) = self.to_face(x as f32 + 0.5, y as f32 + 0.5);
                let d = sd(u, v);
                let cover = (0.5 - d / edge).clamp(0.0, 1.0) * alpha;
                if cover <= 0.0 {
                    continue;
                }
                let c = color(u, v);
                let p = &mut self.px[y * self.size + x];
                *p = lerp(*p, c, cover);
            }
        }
    }
}

/// Signed distance to an axis-aligned ellipse centred at the origin (Quilez's approximation:
/// exact on the boundary, good near it, which is all anti-aliasing needs).
fn sd_ellipse(u: f32, v: f32, rx: f32, ry: f32) -> f32 {
    let k0 = ((u / rx).powi(2) + (v / ry).powi(2)).sqrt();
    let k1 = ((u / (rx * rx)).powi(2) + (v / (ry * ry)).powi(2)).sqrt();
    if k1 == 0.0 {
        -rx.min(ry)
    } else {
        k0 * (k0 - 1.0) / k1
    }
}

/// Ellipse centred at `(cx,cy)`, rotated by `rot` radians.
fn ellipse(cx: f32, cy: f32, rx: f32, ry: f32, rot: f32) -> impl Fn(f32, f32) -> f32 {
    let (c, s) = (rot.cos(), rot.sin());
    move |u, v| {
        let (a, b) = (u - cx, v - cy);
        sd_ellipse(c * a + s * b, -s * a + c * b, rx, ry)
    }
}

/// Segment from a to b with round caps of radius r.
fn capsule(a: (f32, f32), b: (f32, f32), r: f32) -> impl Fn(f32, f32) -> f32 {
    move |u, v| {
        let (pa, ba) = ((u - a.0, v - a.1), (b.0 - a.0, b.1 - a.1));
        let l2 = ba.0 * ba.0 + ba.1 * ba.1;
        let t = if l2 > 0.0 {
            ((pa.0 * ba.0 + pa.1 * ba.1) / l2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        ((pa.0 - t * ba.0).powi(2) + (pa.1 - t * ba.1).powi(2)).sqrt() - r
    }
}

/// A thick polyline along the parabola y = cy + bend*(1 - (x/half)^2), x in [cx-half, cx+half].
fn curve(cx: f32, cy: f32, half: f32, bend: f32, r: f32) -> impl Fn(f32, f32) -> f32 {
    const N: usize = 6;
    let pts: Vec<(f32, f32)> = (0..=N)
        .map(|i| {
            let t = -1.0 + 2.0 * i as f32 / N as f32;
            (cx + half * t, cy + bend * (1.0 - t * t))
        })
        .collect();
    move |u, v| {
        pts.windows(2)
            .map(|w| capsule(w[0], w[1], r)(u, v))
            .fold(f32::INFINITY, f32::min)
    }
}

fn solid(c: Rgb) -> impl Fn(f32, f32) -> Rgb {
    move |_, _| c
}

fn random_color(rng: &mut Rng64, lo: f32, hi: f32) -> Rgb {
    [rng.range(lo, hi), rng.range(lo, hi), rng.range(lo, hi)]
}

/// A deterministic cartoon face for `seed`, `size x size` pixels.
pub fn synth_face(seed: u64, size: u32) -> RgbImage {
    let mut rng = Rng64::new(seed);
    let n = size as usize;
    let rot = rng.range(-0.14, 0.14);
    let scale_f = rng.range(0.98, 1.18);
    let mut cv = Canvas {
        size: n,
        px: vec![[0.0; 3]; n * n],
        cos: rot.cos(),
        sin: rot.sin(),
        scale: scale_f,
        off: (rng.range(-0.06, 0.06), rng.range(-0.02, 0.06)),
        pixel: 2.0 / (n.max(1) as f32 * scale_f),
    };

    // Background: a linear gradient in a random direction between two muted colours.
    let (bg0, bg1) = (random_color(&mut rng, 40.0, 235.0), random_color(&mut rng, 40.0, 235.0));
    let bg_angle = rng.range(0.0, std::f32::consts::TAU);
    let (ga, gb) = (bg_angle.cos(), bg_angle.sin());
    for y in 0..n {
        for x in 0..n {
            let (fx, fy) = (2.0 * x as f32 / n as f32 - 1.0, 2.0 * y as f32 / n as f32 - 1.0);
            let t = 0.5 + 0.35 * (ga * fx + gb * fy);
            cv.px[y * n + x] = lerp(bg0, bg1, t);
        }
    }

    let skin = palette(SKIN, rng.unit());
    let skin_dark = scale(skin, 0.8);
    let hair = lerp(rng.pick(HAIR), random_color(&mut rng, 0.0, 255.0), 0.08);
    let hair_style = rng.next() % 5; // 0 short, 1 long, 2 bob, 3 buzz/bald, 4 curly
    let head_rx = rng.range(0.40, 0.47);
    let head_ry = rng.range(0.52, 0.60);
    let head_cy = rng.range(-0.12, -0.04);

    // Long hair falls behind the shoulders.
    if hair_style == 1 {
        let len = rng.range(0.75, 1.05);
        cv.paint(
            (0.0, head_cy + 0.2),
            1.2,
            1.0,
            0.0,
            capsule((0.0, head_cy - 0.1), (0.0, head_cy + len - 0.4), head_rx + 0.1),
            solid(scale(hair, 0.85)),
        );
    }

    // Neck (darker than the face: it is in the chin's shadow), then the clothed shoulders
    // over its lower end, then sometimes a neckline showing skin.
    let neck_w = rng.range(0.13, 0.17);
    cv.paint(
        (0.0, head_cy + 0.6),
        0.6,
        1.0,
        0.0,
        capsule((0.0, head_cy + 0.3), (0.0, 0.95), neck_w),
        solid(skin_dark),
    );
    let cloth = random_color(&mut rng, 20.0, 230.0);
    let shoulder_w = rng.range(0.85, 1.15);
    let shoulder_top = rng.range(0.68, 0.8);
    cv.paint(
        (0.0, shoulder_top + 0.6),
        1.3,
        1.0,
        0.0,
        ellipse(0.0, shoulder_top + 0.6, shoulder_w, 0.6, 0.0),
        move |u, _| scale(cloth, 1.0 - 0.15 * u.abs()),
    );
    if rng.chance(0.5) {
        let depth = rng.range(0.06, 0.16);
        cv.paint(
            (0.0, shoulder_top),
            0.4,
            1.0,
            0.0,
            ellipse(0.0, shoulder_top, neck_w + 0.04, depth, 0.0),
            solid(skin_dark),
        );
    }

    // Ears.
    let ear_y = head_cy + rng.range(0.02, 0.08);
    for side in [-1.0f32, 1.0] {
        cv.paint(
            (side * head_rx, ear_y),
            0.2,
            1.0,
            0.0,
            ellipse(side * (head_rx - 0.01), ear_y, 0.075, 0.12, side * 0.2),
            solid(scale(skin, 0.93)),
        );
        cv.paint(
            (side * head_rx, ear_y),
            0.2,
            0.5,
            0.01,
            ellipse(side * (head_rx + 0.005), ear_y, 0.03, 0.07, side * 0.2),
            solid(skin_dark),
        );
    }

    // Head, shaded darker toward the rim and lit from the upper left.
    let light = rng.range(-0.3, 0.3);
    cv.paint(
        (0.0, head_cy),
        head_ry + 0.05,
        1.0,
        0.0,
        ellipse(0.0, head_cy, head_rx, head_ry, 0.0),
        move |u, v| {
            let r2 = (u / head_rx).powi(2) + ((v - head_cy) / head_ry).powi(2);
            let k = 1.0 - 0.16 * r2 * r2 - 0.06 * (u + light * 0.5) - 0.04 * (v - head_cy);
            scale(skin, k.clamp(0.6, 1.1))
        },
    );
    // Chin shadow onto the neck is implied by the head drawn over the darker neck.

    // Hair on top of the head.
    let hairline = head_cy - head_ry * rng.range(0.35, 0.6);
    let part = rng.range(-0.15, 0.15);
    let hair_col = move |u: f32, v: f32| scale(hair, 1.0 - 0.12 * ((u * 9.0 + v * 3.0).sin() * 0.5 + 0.5) * 0.8);
    match hair_style {
        3 => {
            // Buzz cut or bald: a thin, semi-transparent cap.
            let a = rng.range(0.0, 0.7);
            let cap_ry = head_ry + 0.02;
            let face_cut = ellipse(0.0, hairline + head_ry * 0.95, head_rx * 0.95, head_ry, 0.0);
            let cap = ellipse(0.0, head_cy, head_rx + 0.01, cap_ry, 0.0);
            cv.paint(
                (0.0, head_cy - 0.2),
                head_ry + 0.1,
                a,
                0.0,
                move |u, v| cap(u, v).max(-face_cut(u, v)),
                hair_col,
            );
        }
        4 => {
            // Curly / afro: a big lumpy cloud.
            let r = rng.range(0.55, 0.7);
            let cy = head_cy - 0.12;
            let face_cut = ellipse(0.0, hairline + head_ry * 0.92, head_rx * 0.93, head_ry, 0.0);
            let bumps = rng.range(0.02, 0.05);
            let freq = rng.pick(&[7.0f32, 9.0, 11.0]);
            cv.paint(
                (0.0, cy),
                r + 0.1,
                1.0,
                0.0,
                move |u, v| {
                    let ang = (v - cy).atan2(u);
                    let d = ((u).powi(2) + (v - cy).powi(2)).sqrt() - r - bumps * (freq * ang).sin();
                    d.max(-face_cut(u, v)).max(v - (head_cy + 0.25))
                },
                hair_col,
            );
        }
        _ => {
            // Short, long or bob: a cap minus the face, with a parted fringe.
            let cap_rx = head_rx + rng.range(0.03, 0.07);
            let cap_ry = head_ry + rng.range(0.03, 0.08);
            let side_len = match hair_style {
                0 => rng.range(0.0, 0.1),
                1 => 0.6,
                _ => rng.range(0.3, 0.45),
            };
            let cap = ellipse(0.0, head_cy - 0.02, cap_rx, cap_ry, 0.0);
            let face_cut = ellipse(
                part * 0.3,
                hairline + head_ry * 0.93,
                head_rx * 0.9,
                head_ry,
                part * 0.4,
            );
            let bottom = head_cy + side_len;
            cv.paint(
                (0.0, head_cy),
                cap_ry + 0.1,
                1.0,
                0.0,
                move |u, v| cap(u, v).max(-face_cut(u, v)).max(v - bottom),
                hair_col,
            );
        }
    }

    // Eyes.
    let eye_y = head_cy + rng.range(-0.02, 0.05);
    let eye_dx = rng.range(0.15, 0.2);
    let eye_rx = rng.range(0.07, 0.095);
    let eye_ry = eye_rx * rng.range(0.5, 0.7);
    let iris = lerp(rng.pick(IRIS), random_color(&mut rng, 0.0, 255.0), 0.1);
    let gaze = (rng.range(-0.02, 0.02), rng.range(-0.008, 0.008));
    let brow_h = rng.range(0.07, 0.11);
    let brow_tilt = rng.range(-0.04, 0.04);
    let brow_w = rng.range(0.012, 0.022);
    let brow_col = scale(hair, 0.8);
    for side in [-1.0f32, 1.0] {
        let ex = side * eye_dx;
        let white = ellipse(ex, eye_y, eye_rx, eye_ry, 0.0);
        cv.paint(
            (ex, eye_y),
            eye_rx + 0.02,
            1.0,
            0.0,
            &white,
            solid([242.0, 240.0, 235.0]),
        );
        let (ix, iy) = (ex + gaze.0, eye_y + gaze.1);
        let iris_r = eye_ry * 0.95;
        // Iris and pupil are clipped to the eye white.
        cv.paint(
            (ix, iy),
            iris_r + 0.02,
            1.0,
            0.0,
            |u, v| (((u - ix).powi(2) + (v - iy).powi(2)).sqrt() - iris_r).max(white(u, v)),
            move |u, v| {
                let r = ((u - ix).powi(2) + (v - iy).powi(2)).sqrt() / iris_r;
                scale(iris, 1.1 - 0.4 * r)
            },
        );
        cv.paint(
            (ix, iy),
            iris_r,
            1.0,
            0.0,
            |u, v| (((u - ix).powi(2) + (v - iy).powi(2)).sqrt() - iris_r * 0.45).max(white(u, v)),
            solid([12.0, 10.0, 10.0]),
        );
        let (hx, hy) = (ix - iris_r * 0.35, iy - iris_r * 0.35);
        cv.paint(
            (hx, hy),
            0.03,
            0.9,
            0.0,
            move |u, v| ((u - hx).powi(2) + (v - hy).powi(2)).sqrt() - iris_r * 0.18,
            solid([255.0, 255.0, 255.0]),
        );
        // Upper lid line.
        cv.paint(
            (ex, eye_y),
            eye_rx + 0.03,
            1.0,
            0.0,
            move |u, v| white(u, v).abs() - 0.006 + (v - eye_y).max(0.0) * 3.0,
            solid(scale(skin, 0.35)),
        );
        // Eyebrow.
        let by = eye_y - eye_ry - brow_h;
        let (a, b) = (
            (ex - side * eye_rx * 0.9, by + 0.01),
            (ex + side * eye_rx * 1.1, by + side * brow_tilt),
        );
        cv.paint(
            (ex, by),
            eye_rx + 0.05,
            1.0,
            0.0,
            capsule(a, b, brow_w),
            solid(brow_col),
        );
    }

    // Nose: a soft side shadow and a darker tip with nostrils.
    let nose_y = eye_y + rng.range(0.17, 0.23);
    let nose_w = rng.range(0.05, 0.075);
    let shade_side = if light > 0.0 { 1.0 } else { -1.0 };
    cv.paint(
        (0.0, nose_y - 0.08),
        0.2,
        0.35,
        0.04,
        ellipse(shade_side * nose_w * 0.6, nose_y - 0.08, 0.025, 0.12, 0.0),
        solid(skin_dark),
    );
    cv.paint(
        (0.0, nose_y),
        0.12,
        0.5,
        0.02,
        ellipse(0.0, nose_y, nose_w, nose_w * 0.55, 0.0),
        solid(scale(skin, 0.85)),
    );
    for side in [-1.0f32, 1.0] {
        cv.paint(
            (side * nose_w * 0.45, nose_y + 0.01),
            0.05,
            0.7,
            0.005,
            ellipse(side * nose_w * 0.45, nose_y + 0.012, 0.016, 0.01, side * 0.3),
            solid(scale(skin, 0.45)),
        );
    }

    // Mouth: lips and a curved line (smile / neutral / slight frown).
    let mouth_y = nose_y + rng.range(0.12, 0.17);
    let mouth_half = rng.range(0.09, 0.15);
    let bend = rng.range(-0.035, 0.02); // negative: corners up (smile)
    let lip = lerp(scale(skin, 0.8), [190.0, 70.0, 80.0], rng.range(0.2, 0.6));
    let lip_h = rng.range(0.02, 0.04);
    cv.paint(
        (0.0, mouth_y),
        mouth_half + 0.05,
        1.0,
        0.0,
        ellipse(0.0, mouth_y + bend * 0.3, mouth_half * 0.95, lip_h, 0.0),
        solid(lip),
    );
    if rng.chance(0.3) {
        // Open smile showing teeth.
        cv.paint(
            (0.0, mouth_y),
            mouth_half,
            1.0,
            0.0,
            ellipse(0.0, mouth_y + bend * 0.3, mouth_half * 0.75, lip_h * 0.6, 0.0),
            solid([235.0, 232.0, 225.0]),
        );
    }
    cv.paint(
        (0.0, mouth_y),
        mouth_half + 0.05,
        1.0,
        0.0,
        curve(0.0, mouth_y, mouth_half, bend, 0.007),
        solid(scale(lip, 0.5)),
    );

    // Cheek blush.
    if rng.chance(0.5) {
        for side in [-1.0f32, 1.0] {
            let (bx, by) = (side * (eye_dx + 0.05), eye_y + 0.15);
            cv.paint(
                (bx, by),
                0.15,
                0.25,
                0.06,
                ellipse(bx, by, 0.07, 0.04, 0.0),
                solid([225.0, 110.0, 110.0]),
            );
        }
    }

    // Glasses.
    if rng.chance(0.2) {
        let frame = random_color(&mut rng, 10.0, 120.0);
        let r = eye_rx * 1.45;
        for side in [-1.0f32, 1.0] {
            let ex = side * eye_dx;
            cv.paint(
                (ex, eye_y),
                r + 0.03,
                1.0,
                0.0,
                move |u, v| (((u - ex).powi(2) + (v - eye_y).powi(2)).sqrt() - r).abs() - 0.009,
                solid(frame),
            );
        }
        cv.paint(
            (0.0, eye_y),
            eye_dx,
            1.0,
            0.0,
            capsule((-eye_dx + r, eye_y - 0.01), (eye_dx - r, eye_y - 0.01), 0.008),
            solid(frame),
        );
    }

    // Mild sensor-like noise, then quantise.
    let noise = rng.range(1.0, 5.0);
    let mut img = RgbImage::new(size, size);
    for (i, p) in img.pixels_mut().enumerate() {
        let c = cv.px[i];
        for k in 0..3 {
            let e = (rng.unit() + rng.unit() - 1.0) * noise;
            p[k] = (c[k] + e).round().clamp(0.0, 255.0) as u8;
        }
    }
    img
}

/// Writes `count` synthetic faces (`synth_00000.png`, ..., seeds 0..count) of `size x size`
/// pixels into `dir` (created if missing), in parallel, each written atomically, plus a
/// `README.txt` saying the set is synthetic.
pub fn write_dataset(dir: &Path, count: usize, size: u32) -> Result<(), ImagingError> {
    std::fs::create_dir_all(dir).map_err(|e| ImagingError::Write {
        path: dir.to_owned(),
        message: e.to_string(),
    })?;
    (0..count).into_par_iter().try_for_each(|i| {
        let img = synth_face(i as u64, size);
        crate::io::save_png_atomic(&img, &dir.join(format!("synth_{i:05}.png")))
    })?;
    let readme = format!(
        "This directory holds {count} SYNTHETIC faces ({size}x{size} PNG), drawn procedurally by\n\
         facerecon_imaging::synth (seed = file number). They are cartoon faces for smoke tests and\n\
         demos, not photographs; models trained on them will not reconstruct real faces well.\n"
    );
    crate::io::write_atomic(&dir.join("README.txt"), readme.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_are_deterministic_and_varied() {
        let a = synth_face(42, 64);
        assert_eq!(a.dimensions(), (64, 64));
        assert!(a == synth_face(42, 64), "same seed must give the same image");
        assert!(a != synth_face(43, 64));
        // Not flat: a face has plenty of contrast.
        let lum: Vec<f64> = a
            .pixels()
            .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
            .collect();
        let mean = lum.iter().sum::<f64>() / lum.len() as f64;
        let sd = (lum.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / lum.len() as f64).sqrt();
        assert!(sd > 15.0, "std dev {sd}");
        // Different seeds have different mean colours (backgrounds, skin, hair vary).
        let means: Vec<u32> = (0..8)
            .map(|s| synth_face(s, 32).pixels().map(|p| p[0] as u32).sum::<u32>() / 1024)
            .collect();
        let (lo, hi) = (means.iter().min().unwrap(), means.iter().max().unwrap());
        assert!(hi - lo > 30, "means {means:?}");
        // Odd sizes work.
        assert_eq!(synth_face(1, 17).dimensions(), (17, 17));
    }

    #[test]
    fn write_dataset_writes_pngs_and_readme() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("synth");
        write_dataset(&out, 5, 24).unwrap();
        let files = crate::io::list_images(&out);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "synth_00000.png",
                "synth_00001.png",
                "synth_00002.png",
                "synth_00003.png",
                "synth_00004.png"
            ]
        );
        assert!(crate::io::load_rgb(&files[3]).unwrap() == synth_face(3, 24));
        let readme = std::fs::read_to_string(out.join("README.txt")).unwrap();
        assert!(readme.contains("SYNTHETIC"));
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 6, "no temp files left");
    }
}
