//! A windowed twin of `image::imageops::resize` for RGB8: it resizes a rectangle of the source
//! (no crop copy) and computes only a rectangle of the result, bit-identical to the same pixels of
//! `imageops::resize` on the cropped source.
//!
//! Why not `imageops::resize`: compositing needs the upsampled reconstruction at the hole pixels
//! only (a face-sized hole is a few percent of a camera frame), and the generic resize spends much
//! of its time in `roundf` calls and per-pixel generic code. This follows `image` 0.25's separable
//! algorithm operation by operation (vertical pass into f32, then horizontal pass, same tap ranges,
//! same weights and normalisation, same summation order per value, then clamp and
//! round-half-away-from-zero), so the results are the same bits. The vertical pass runs over whole
//! rows at a time (each value still sums its taps in the same order), which the compiler
//! vectorises. `tests/fast_path.rs` and the unit tests compare against `imageops::resize`.

use image::RgbImage;

/// The two filters the pipeline uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// `FilterType::Triangle` (support 1).
    Triangle,
    /// `FilterType::CatmullRom` (support 2).
    CatmullRom,
}

impl Kernel {
    fn support(self) -> f32 {
        match self {
            Kernel::Triangle => 1.0,
            Kernel::CatmullRom => 2.0,
        }
    }

    fn eval(self, x: f32) -> f32 {
        match self {
            Kernel::Triangle => {
                if x.abs() < 1.0 {
                    1.0 - x.abs()
                } else {
                    0.0
                }
            }
            Kernel::CatmullRom => {
                // image's bc_cubic_spline with b = 0, c = 0.5, written with the same operations.
                let (b, c) = (0.0f32, 0.5f32);
                let a = x.abs();
                let k = if a < 1.0 {
                    (12.0 - 9.0 * b - 6.0 * c) * a.powi(3) + (-18.0 + 12.0 * b + 6.0 * c) * a.powi(2) + (6.0 - 2.0 * b)
                } else if a < 2.0 {
                    (-b - 6.0 * c) * a.powi(3)
                        + (6.0 * b + 30.0 * c) * a.powi(2)
                        + (-12.0 * b - 48.0 * c) * a
                        + (8.0 * b + 24.0 * c)
                } else {
                    0.0
                };
                k / 6.0
            }
        }
    }
}

/// The taps of output index `out` when resizing an axis of `src` pixels to `dst`: `weights` is
/// cleared and receives them (`weights[k]` applies to source index `left + k`); returns `left`.
/// Into a caller's buffer: a resize computes this for every output row and column, and an
/// allocation each was a tenth of a frame's finish.
fn taps_into(src: u32, dst: u32, kernel: Kernel, out: u32, weights: &mut Vec<f32>) -> u32 {
    let ratio = src as f32 / dst as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let src_support = kernel.support() * sratio;
    let input = (out as f32 + 0.5) * ratio;
    let left = ((input - src_support).floor() as i64).clamp(0, src as i64 - 1) as u32;
    let right = ((input + src_support).ceil() as i64).clamp(left as i64 + 1, src as i64) as u32;
    let input = input - 0.5;
    weights.clear();
    weights.extend((left..right).map(|i| kernel.eval((i as f32 - input) / sratio)));
    let mut sum = 0.0;
    for w in weights.iter() {
        sum += w;
    }
    for w in weights.iter_mut() {
        *w /= sum;
    }
    // Zero weights at either end add `v * 0.0 = ±0.0` to a sum, which leaves it unchanged (up to
    // the sign of a zero sum, which rounds to the same byte): they are dropped. Catmull-Rom is 0 at
    // integer distances, so an upsampling output has a zero tap at one end or both (5 taps where
    // 4 count, 1 where the output lands on a source pixel).
    let lead = weights.iter().take_while(|&&w| w == 0.0).count();
    if lead == weights.len() {
        return left;
    }
    let trail = weights.iter().rev().take_while(|&&w| w == 0.0).count();
    weights.truncate(weights.len() - trail);
    weights.drain(..lead);
    left + lead as u32
}

/// Ask the CPU to bring `bytes` into its caches ahead of use (a hint: no effect on results, a
/// no-op off x86_64). A camera frame's rows arrive from memory, and rows of a crop are too short
/// for the hardware prefetcher to run ahead of the reads (or writes) of the next ones.
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing architecturally and never faults; the address is
        // inside `bytes` anyway.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Round half away from zero for `t` in `[0, 255]`, exactly as `f32::round`, without a libm call.
/// (NaN gives 0.)
pub(crate) fn round_u8(t: f32) -> u8 {
    let t = t.clamp(0.0, 255.0);
    let i = t as u32; // truncation; exact for these values
    (if t - i as f32 >= 0.5 { i + 1 } else { i }) as u8
}

/// The taps of every output of an axis in flat tables, each padded with zero weights after its own
/// taps to the longest count `n`: every output then runs the same straight-line code (no loop
/// whose length changes from one pixel to the next, which the branch predictor misses). A padded
/// tap adds `v * 0.0 = ±0.0` to a finite sum, which leaves it unchanged (up to the sign of a zero
/// sum, which rounds to the same byte), so the results stay the same bytes.
struct TapTable {
    /// Per output: its first source index.
    left: Vec<u32>,
    /// Per output, `n` weights, each repeated over 4 lanes (one aligned load per tap).
    weights: Vec<[f32; 4]>,
    /// Taps per output.
    n: usize,
    /// The largest `left`.
    max_left: u32,
    /// The largest `left` + the output's own tap count: one past the last source index read.
    max_right: u32,
}

impl TapTable {
    /// The taps of outputs `outs` of an axis of `src` pixels resized to `dst`.
    fn new(src: u32, dst: u32, kernel: Kernel, outs: std::ops::Range<u32>) -> TapTable {
        // Every output's taps back to back first (their counts differ), then padded to the longest.
        let (mut flat, mut spans, mut left) = (Vec::new(), Vec::new(), Vec::new());
        let mut buf = Vec::new();
        for out in outs {
            left.push(taps_into(src, dst, kernel, out, &mut buf));
            spans.push(flat.len()..flat.len() + buf.len());
            flat.extend_from_slice(&buf);
        }
        let n = spans.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut weights = Vec::with_capacity(spans.len() * n);
        for r in &spans {
            weights.extend(flat[r.clone()].iter().map(|&w| [w; 4]));
            weights.extend(std::iter::repeat_n([0.0f32; 4], n - r.len()));
        }
        let max_right = left
            .iter()
            .zip(&spans)
            .map(|(&l, r)| l + r.len() as u32)
            .max()
            .unwrap_or(0);
        TapTable {
            max_left: left.iter().copied().max().unwrap_or(0),
            max_right,
            left,
            weights,
            n,
        }
    }
}

/// The horizontal pass of [`resize_rows`] for one output row: `line` holds the row's vertical pass
/// (source column `cx0` first, then at least [`h_pad`] values of padding), `out` receives the
/// pixels `a..b` of the row, 3 bytes each. Each value sums its taps in `image`'s order (then the
/// zero-weight padding of [`TapTable`]), then [`round_u8`]. `sums` is scratch (`3 * width + 1`).
fn horizontal_row(line: &[f32], xtaps: &TapTable, cx0: u32, sums: &mut [f32], a: usize, b: usize, out: &mut [u8]) {
    // Every read below stays inside `line`: the farthest tap of any pixel (padding included) plus
    // the fourth lane.
    let reach = (xtaps.max_left - cx0) as usize * 3 + h_pad(xtaps.n);
    assert!(
        reach <= line.len() && sums.len() > 3 * b,
        "horizontal: line or sums too short"
    );
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! taps_of {
            ($f:ident) => {
                match xtaps.n {
                    1 => $f::<1>(line, xtaps, cx0, sums, a, b),
                    2 => $f::<2>(line, xtaps, cx0, sums, a, b),
                    3 => $f::<3>(line, xtaps, cx0, sums, a, b),
                    4 => $f::<4>(line, xtaps, cx0, sums, a, b),
                    5 => $f::<5>(line, xtaps, cx0, sums, a, b),
                    6 => $f::<6>(line, xtaps, cx0, sums, a, b),
                    _ => sums_any(line, xtaps, cx0, sums, a, b),
                }
            };
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX is present (checked above); `line` holds every value read (the assert
            // above), and `sums` the 4 values written at each pixel `x < b`.
            unsafe { taps_of!(sums_avx) }
        } else {
            // SAFETY: SSE2 is part of the x86_64 baseline; as above.
            unsafe { taps_of!(sums_sse2) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    sums_any(line, xtaps, cx0, sums, a, b);
    round_row(&sums[3 * a..3 * b], out);
}

/// Values after the vertical pass's line that [`horizontal_row`] may read with `n` taps per output:
/// the padded taps and the fourth lane.
fn h_pad(n: usize) -> usize {
    3 * n.max(1) + 1
}

/// The columns of row `row` to compute: its span, or the whole row of `width`.
fn span(spans: Option<&[(u32, u32)]>, row: usize, width: usize) -> (usize, usize) {
    spans.map_or((0, width), |s| (s[row].0 as usize, s[row].1 as usize))
}

/// The three sums of each pixel `a..b` of one row into `sums[3x..3x+3]`, any tap count.
fn sums_any(line: &[f32], xtaps: &TapTable, cx0: u32, sums: &mut [f32], a: usize, b: usize) {
    let n = xtaps.n;
    for x in a..b {
        let first = (xtaps.left[x] - cx0) as usize * 3;
        let mut acc = [0f32; 3];
        for (k, w) in xtaps.weights[x * n..(x + 1) * n].iter().enumerate() {
            for (c, a) in acc.iter_mut().enumerate() {
                *a += line[first + 3 * k + c] * w[0];
            }
        }
        sums[3 * x..3 * x + 3].copy_from_slice(&acc);
    }
}

/// [`sums_any`] for exactly `N` taps in SSE2: a pixel's three sums run as the first lanes of one
/// 4-lane vector (the fourth lane reads the next value and is overwritten by the next pixel's
/// store): the same operations per channel in the same order.
///
/// # Safety
/// `line` holds the values up to `3 * (left - cx0) + 3 * N + 1` for every pixel `a..b`, and
/// `sums` has `3 * b + 1` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
unsafe fn sums_sse2<const N: usize>(line: &[f32], xtaps: &TapTable, cx0: u32, sums: &mut [f32], a: usize, b: usize) {
    use std::arch::x86_64::*;
    debug_assert!(xtaps.n == N && sums.len() > 3 * b);
    let (src, out) = (line.as_ptr(), sums.as_mut_ptr());
    let weights = xtaps.weights.as_ptr();
    for x in a..b {
        let first = (xtaps.left[x] - cx0) as usize * 3;
        // SAFETY: `first + 3k + 4 <= 3 * (left - cx0) + 3N + 1` values lie in `line` (the caller's
        // contract); tap `x * N + k` lies in the table (N per output).
        let tap = |k: usize| unsafe {
            _mm_mul_ps(
                _mm_loadu_ps(src.add(first + 3 * k)),
                _mm_loadu_ps(weights.add(x * N + k).cast::<f32>()),
            )
        };
        // `image` starts each sum at 0.0: `0.0 + t` is `t` (a zero's sign aside, which rounds to the
        // same byte), so the first product starts it here, one addition shorter.
        let mut acc = tap(0);
        for k in 1..N {
            acc = _mm_add_ps(acc, tap(k));
        }
        // SAFETY: `3x + 4 <= 3b + 1 <= sums.len()`.
        unsafe { _mm_storeu_ps(out.add(3 * x), acc) };
    }
}

/// [`sums_sse2`] two pixels at a time in AVX: pixel `x` in the low 4 lanes, `x + 1` in the high 4,
/// each lane the same operations in the same order as there.
///
/// # Safety
/// AVX is available, and the contract of [`sums_sse2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn sums_avx<const N: usize>(line: &[f32], xtaps: &TapTable, cx0: u32, sums: &mut [f32], a: usize, b: usize) {
    use std::arch::x86_64::*;
    debug_assert!(xtaps.n == N && sums.len() > 3 * b);
    let (src, out) = (line.as_ptr(), sums.as_mut_ptr());
    let weights = xtaps.weights.as_ptr();
    let mut x = a;
    while x + 2 <= b {
        let (f0, f1) = (
            (xtaps.left[x] - cx0) as usize * 3,
            (xtaps.left[x + 1] - cx0) as usize * 3,
        );
        // SAFETY: as in `sums_sse2`, for pixels `x` and `x + 1` (both below `b`).
        let tap = |k: usize| unsafe {
            _mm256_mul_ps(
                _mm256_loadu2_m128(src.add(f1 + 3 * k), src.add(f0 + 3 * k)),
                _mm256_loadu2_m128(
                    weights.add((x + 1) * N + k).cast::<f32>(),
                    weights.add(x * N + k).cast::<f32>(),
                ),
            )
        };
        let mut acc = tap(0);
        for k in 1..N {
            acc = _mm256_add_ps(acc, tap(k));
        }
        // Pixel x, then x + 1 over x's fourth lane.
        // SAFETY: `3(x + 1) + 4 <= 3b + 1 <= sums.len()`.
        unsafe {
            _mm_storeu_ps(out.add(3 * x), _mm256_castps256_ps128(acc));
            _mm_storeu_ps(out.add(3 * x + 3), _mm256_extractf128_ps::<1>(acc));
        }
        x += 2;
    }
    if x < b {
        // SAFETY: SSE2 is part of AVX; the same contract for the last pixel.
        unsafe { sums_sse2::<N>(line, xtaps, cx0, sums, x, b) };
    }
}

/// [`round_u8`] of every value of `sums` into `out` (same length): 16 at a time in SSE2 on x86_64.
fn round_row(sums: &[f32], out: &mut [u8]) {
    debug_assert_eq!(sums.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    let done = {
        let done = sums.len() / 16 * 16;
        // SAFETY: SSE2 is part of the x86_64 baseline; `done <= len` of both slices.
        unsafe { round_sse2(&sums[..done], &mut out[..done]) };
        done
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, &v) in out[done..].iter_mut().zip(&sums[done..]) {
        *o = round_u8(v);
    }
}

/// [`round_u8`] on four lanes: clamp to `[0, 255]` (NaN to 0: `max` returns its second operand
/// then), truncate (exact in that range), +1 where the fraction is >= 0.5 (the comparison's lanes
/// are -1 there). The result is in 32-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn round_lanes(v: std::arch::x86_64::__m128) -> std::arch::x86_64::__m128i {
    use std::arch::x86_64::*;
    let t = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), _mm_set1_ps(255.0));
    let i = _mm_cvttps_epi32(t);
    let up = _mm_cmpge_ps(_mm_sub_ps(t, _mm_cvtepi32_ps(i)), _mm_set1_ps(0.5));
    _mm_sub_epi32(i, _mm_castps_si128(up))
}

/// [`round_row`] for a multiple of 16 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn round_sse2(sums: &[f32], out: &mut [u8]) {
    use std::arch::x86_64::*;
    for (s, o) in sums.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        let s: &[f32; 16] = s.try_into().expect("16 values");
        // SAFETY: each load reads 4 of the 16 values of `s`.
        let [q0, q1, q2, q3] = std::array::from_fn(|k| round_lanes(unsafe { _mm_loadu_ps(s.as_ptr().add(4 * k)) }));
        let bytes = _mm_packus_epi16(_mm_packs_epi32(q0, q1), _mm_packs_epi32(q2, q3));
        // SAFETY: `o` has 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), bytes) };
    }
}

/// `round_u8(v.clamp(0.0, 1.0) * 255.0)` of every value of `src` into `out` (same length): the
/// conversion of a `[0,1]` plane to bytes, 16 at a time in SSE2 on x86_64 (`min`/`max` give what
/// `clamp` gives, NaN becoming 0 either way).
pub(crate) fn unit_to_u8(src: &[f32], out: &mut [u8]) {
    debug_assert_eq!(src.len(), out.len());
    #[cfg(target_arch = "x86_64")]
    let done = {
        let done = src.len() / 16 * 16;
        // SAFETY: SSE2 is part of the x86_64 baseline; `done <= len` of both slices.
        unsafe { unit_sse2(&src[..done], &mut out[..done]) };
        done
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    for (o, &v) in out[done..].iter_mut().zip(&src[done..]) {
        *o = round_u8(v.clamp(0.0, 1.0) * 255.0);
    }
}

/// [`unit_to_u8`] for a multiple of 16 values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn unit_sse2(src: &[f32], out: &mut [u8]) {
    use std::arch::x86_64::*;
    for (s, o) in src.chunks_exact(16).zip(out.chunks_exact_mut(16)) {
        let s: &[f32; 16] = s.try_into().expect("16 values");
        let [q0, q1, q2, q3] = std::array::from_fn(|k| {
            // SAFETY: each load reads 4 of the 16 values of `s`.
            let v = unsafe { _mm_loadu_ps(s.as_ptr().add(4 * k)) };
            let unit = _mm_min_ps(_mm_max_ps(v, _mm_setzero_ps()), _mm_set1_ps(1.0));
            round_lanes(_mm_mul_ps(unit, _mm_set1_ps(255.0)))
        });
        let bytes = _mm_packus_epi16(_mm_packs_epi32(q0, q1), _mm_packs_epi32(q2, q3));
        // SAFETY: `o` has 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), bytes) };
    }
}

/// The `(x, y, w, h)` window of `imageops::resize(&crop, new_w, new_h, kernel)`, where `crop` is the
/// `source` rectangle `(sx, sy, sw, sh)` of `img`, computed alone and without copying the crop.
/// Panics if the source rectangle is empty or not inside `img`, or the window not inside
/// `new_w x new_h`.
pub(crate) fn resize_window(
    img: &RgbImage,
    source: (u32, u32, u32, u32),
    new: (u32, u32),
    kernel: Kernel,
    window: (u32, u32, u32, u32),
) -> RgbImage {
    resize_window_spans(img, source, new, kernel, window, None)
}

/// [`resize_window`] computing, in row `r` of the window, only the columns `spans[r].0..spans[r].1`
/// (relative to the window; `(0, 0)` for none): the pixels outside them stay 0. `None`: every pixel.
/// Compositing needs the upsampled reconstruction at the hole pixels only, which for a round hole
/// are a fraction of its bounding box.
pub(crate) fn resize_window_spans(
    img: &RgbImage,
    source: (u32, u32, u32, u32),
    new: (u32, u32),
    kernel: Kernel,
    window: (u32, u32, u32, u32),
    spans: Option<&[(u32, u32)]>,
) -> RgbImage {
    let (w, h) = (window.2, window.3);
    let mut result = RgbImage::new(w, h);
    let row_len = w as usize * 3;
    let dst = &mut *result;
    resize_rows(img, source, new, kernel, window, spans, |row, a, bytes| {
        dst[row * row_len + 3 * a..][..bytes.len()].copy_from_slice(bytes);
    });
    result
}

/// [`resize_window_spans`] row by row, without the window's image: `sink(row, a, bytes)` receives
/// the pixels `a..b` of each row `row` of the window (its span; the rows with an empty span are
/// skipped), 3 bytes each, in order. The vertical pass runs one row at a time into a line buffer,
/// so the working memory is a few rows, not the window (the same operations per value as over the
/// whole window, so the same bytes).
pub(crate) fn resize_rows(
    img: &RgbImage,
    source: (u32, u32, u32, u32),
    (new_w, new_h): (u32, u32),
    kernel: Kernel,
    window: (u32, u32, u32, u32),
    spans: Option<&[(u32, u32)]>,
    mut sink: impl FnMut(usize, usize, &[u8]),
) {
    let (sx, sy, sw, sh) = source;
    let (x0, y0, w, h) = window;
    assert!(
        x0 + w <= new_w && y0 + h <= new_h,
        "resize_window: window outside the image"
    );
    assert!(sw > 0 && sh > 0, "resize_window: empty source");
    assert!(
        sx + sw <= img.width() && sy + sh <= img.height(),
        "resize_window: source outside the image"
    );
    if let Some(spans) = spans {
        assert!(
            spans.len() == h as usize && spans.iter().all(|&(a, b)| a <= b && b <= w),
            "resize_window: spans outside the window"
        );
    }
    let src = img.as_raw();
    let stride = img.width() as usize * 3;
    if w == 0 || h == 0 {
        return;
    }
    if (new_w, new_h) == (sw, sh) {
        // imageops::resize copies in this case.
        for row in 0..h as usize {
            let (a, b) = span(spans, row, w as usize);
            if a < b {
                let from = (sy + y0) as usize * stride + row * stride + (sx + x0) as usize * 3;
                sink(row, a, &src[from..][3 * a..3 * b]);
            }
        }
        return;
    }
    let xtaps = TapTable::new(sw, new_w, kernel, x0..x0 + w);
    // Source columns (of the crop) the horizontal pass reads.
    let cx0 = xtaps.left.iter().copied().min().unwrap_or(0);
    let cx1 = xtaps.max_right;
    let line_len = (cx1 - cx0) as usize * 3;
    let first_byte = (sx + cx0) as usize * 3;
    // One row of the vertical pass (plus the padding the horizontal pass reads past it), the
    // horizontal pass's sums and its bytes: reused for every row.
    let mut line = vec![0f32; line_len + h_pad(xtaps.n)];
    let mut sums = vec![0f32; w as usize * 3 + 1];
    let mut bytes = vec![0u8; w as usize * 3];
    let mut ytaps = Vec::new();
    // Single-threaded on purpose: the caller's threads are ONNX Runtime's (`RuntimeOptions::threads`),
    // and the CLI already prepares whole images in parallel.
    for row in 0..h as usize {
        let (a, b) = span(spans, row, w as usize);
        if a == b {
            continue;
        }
        // Vertical pass: row y0+row of the (new_h x sw) intermediate, columns cx0..cx1, in f32.
        // Each value is `0.0 + p[0]*w[0] + p[1]*w[1] + ...` in tap order, as in `image`. Columns
        // go in blocks of LANES values whose sums stay in registers over all the taps.
        let left = taps_into(sh, new_h, kernel, y0 + row as u32, &mut ytaps);
        let row0 = (sy + left) as usize * stride + first_byte;
        const LANES: usize = 32;
        let mut block = 0;
        while block + LANES <= line_len {
            let mut acc = [0f32; LANES];
            for (k, &wt) in ytaps.iter().enumerate() {
                let px: &[u8; LANES] = src[row0 + k * stride + block..][..LANES]
                    .try_into()
                    .expect("LANES bytes");
                for (a, &p) in acc.iter_mut().zip(px) {
                    *a += p as f32 * wt;
                }
            }
            line[block..block + LANES].copy_from_slice(&acc);
            block += LANES;
        }
        line[block..line_len].fill(0.0);
        for (k, &wt) in ytaps.iter().enumerate() {
            let start = row0 + k * stride + block;
            for (acc, &p) in line[block..line_len]
                .iter_mut()
                .zip(&src[start..start + line_len - block])
            {
                *acc += p as f32 * wt;
            }
        }
        // Horizontal pass.
        horizontal_row(&line, &xtaps, cx0, &mut sums, a, b, &mut bytes[3 * a..3 * b]);
        sink(row, a, &bytes[3 * a..3 * b]);
    }
}

/// The integer factor by which an axis of `extent` source pixels is box-averaged before the Triangle
/// resize to `size` ([`box_reduce`]): 1 (no box pass) below a [`BOX_FROM`]x reduction, so images
/// up to that many times the model size resize exactly as before; else the largest divisor of
/// `extent` that is at most the reduction (`extent / size`), capped at [`MAX_BOX`], so that the
/// Triangle after it still reduces (or at least keeps) the size. Dividing the extent exactly keeps
/// the geometry exact: the reduced pixel `i` covers source pixels `[i*k, (i+1)*k)`, and the
/// region maps onto the model's grid as without the box pass.
pub(crate) fn box_factor(extent: u32, size: u32) -> u32 {
    let ratio = extent / size.max(1);
    if ratio < BOX_FROM {
        return 1;
    }
    (1..=ratio.min(MAX_BOX))
        .rev()
        .find(|&k| extent.is_multiple_of(k))
        .unwrap_or(1)
}

/// The reduction (region extent / model size) from which [`box_factor`] averages blocks first.
pub(crate) const BOX_FROM: u32 = 4;

/// The largest box factor per axis: keeps `kx * ky` (at most 63 * 63) small enough for the exact
/// reciprocal division in [`box_reduce`].
pub(crate) const MAX_BOX: u32 = 63;

/// The `source` rectangle `(sx, sy, sw, sh)` of `img` averaged over `kx x ky` blocks (`kx` divides
/// `sw`, `ky` divides `sh`): `(sum + n/2) / n` per channel, `n = kx * ky`, in integers (so the
/// result is exact, whatever the summation order). The vertical sums run over whole rows (a loop
/// the compiler vectorises); the division is a multiplication by a rounded-up reciprocal, exact for
/// these sums (see below).
pub(crate) fn box_reduce(img: &RgbImage, source: (u32, u32, u32, u32), (kx, ky): (u32, u32)) -> RgbImage {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return box_reduce_with(img, source, (kx, ky), BoxPass::Avx2);
    }
    box_reduce_with(img, source, (kx, ky), BoxPass::Portable)
}

/// Which implementation of [`box_reduce`] runs (the tests run each one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoxPass {
    /// Plain Rust (what the compiler vectorises for the baseline target).
    Portable,
    /// AVX2 (the caller has checked that the CPU has it), with software prefetch of the next
    /// output row's source rows.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// [`box_reduce`] through the given implementation; every one gives the same bytes (integer sums).
pub(crate) fn box_reduce_with(
    img: &RgbImage,
    source: (u32, u32, u32, u32),
    (kx, ky): (u32, u32),
    pass: BoxPass,
) -> RgbImage {
    let (sx, sy, sw, sh) = source;
    assert!(
        kx >= 1 && ky >= 1 && kx <= MAX_BOX && ky <= MAX_BOX && sw.is_multiple_of(kx) && sh.is_multiple_of(ky),
        "box_reduce: factors must divide the source"
    );
    assert!(
        sx + sw <= img.width() && sy + sh <= img.height(),
        "box_reduce: source outside the image"
    );
    #[cfg(target_arch = "x86_64")]
    assert!(
        pass == BoxPass::Portable || std::arch::is_x86_feature_detected!("avx2"),
        "box_reduce: AVX2 asked for on a CPU without it"
    );
    // Off x86_64 there is only the portable pass.
    #[cfg(not(target_arch = "x86_64"))]
    let _ = pass;
    let (ow, oh) = (sw / kx, sh / ky);
    let n = (kx * ky) as u64;
    // floor(x / n) == (x * m) >> 32 with m = ceil(2^32 / n) whenever x * n < 2^32: the error term
    // x * (m - 2^32/n) / 2^32 < x / 2^32 < 1/n is smaller than the distance from x/n to the next
    // integer. Here x <= 255 * n + n / 2 < 256 * n, and n <= 63 * 63, so x * n < 2^28.
    let m = (1u64 << 32).div_ceil(n);
    let half = n / 2;
    let divide = |t: u32| (((t as u64 + half) * m) >> 32) as u8;
    let stride = img.width() as usize * 3;
    let src = img.as_raw();
    let line_len = sw as usize * 3;
    // Column sums of `ky` rows fit 16 bits (63 * 255 < 2^16): twice the lanes of 32-bit sums.
    let mut sums = vec![0u16; line_len];
    let mut result = RgbImage::new(ow, oh);
    for (oy, out_row) in result.chunks_exact_mut(ow as usize * 3).enumerate() {
        let first = (sy as usize + oy * ky as usize) * stride + sx as usize * 3;
        let mut block = 0;
        #[cfg(target_arch = "x86_64")]
        if pass == BoxPass::Avx2 {
            let next = (oy + 1 < oh as usize).then(|| first + ky as usize * stride);
            // SAFETY: AVX2 is present (asserted above); `first` is the first byte of this output
            // row's source rows and `next` (when some) of the next one's, each row of `ky` holding
            // `line_len` bytes of `src`; `sums` holds `line_len` values.
            block = unsafe { box_columns_avx2(src, first, next, stride, ky as usize, line_len, &mut sums) };
        }
        // Blocks of LANES columns, all `ky` rows at once: the sums stay in registers, and the `ky`
        // row streams are read side by side (a camera frame comes from memory after the network
        // ran, and one row at a time left the loads waiting on it).
        const LANES: usize = 32;
        while block + LANES <= line_len {
            let mut acc = [0u16; LANES];
            for dy in 0..ky as usize {
                let px: &[u8; LANES] = src[first + dy * stride + block..][..LANES]
                    .try_into()
                    .expect("LANES bytes");
                for (a, &p) in acc.iter_mut().zip(px) {
                    *a += p as u16;
                }
            }
            sums[block..block + LANES].copy_from_slice(&acc);
            block += LANES;
        }
        sums[block..line_len].fill(0);
        for dy in 0..ky as usize {
            let start = first + dy * stride + block;
            for (s, &p) in sums[block..line_len]
                .iter_mut()
                .zip(&src[start..first + dy * stride + line_len])
            {
                *s += p as u16;
            }
        }
        match kx {
            1 => block_totals::<1>(&sums, out_row, divide),
            2 => block_totals::<2>(&sums, out_row, divide),
            3 => block_totals::<3>(&sums, out_row, divide),
            4 => block_totals::<4>(&sums, out_row, divide),
            5 => block_totals::<5>(&sums, out_row, divide),
            6 => block_totals::<6>(&sums, out_row, divide),
            _ => {
                for (out, block) in out_row.chunks_exact_mut(3).zip(sums.chunks_exact(kx as usize * 3)) {
                    let mut total = [0u32; 3];
                    for px in block.chunks_exact(3) {
                        total[0] += px[0] as u32;
                        total[1] += px[1] as u32;
                        total[2] += px[2] as u32;
                    }
                    for (o, t) in out.iter_mut().zip(total) {
                        *o = divide(t);
                    }
                }
            }
        }
    }
    result
}

/// The horizontal step of [`box_reduce`] for blocks `K` pixels wide: each output pixel's three
/// channel totals of its `K` column sums, divided. A constant `K` unrolls the block (a loop of a
/// few iterations per pixel otherwise costs more than its additions).
fn block_totals<const K: usize>(sums: &[u16], out_row: &mut [u8], divide: impl Fn(u32) -> u8) {
    for (out, block) in out_row.chunks_exact_mut(3).zip(sums.chunks_exact(3 * K)) {
        for (c, o) in out.iter_mut().enumerate() {
            let mut total = 0u32;
            for j in 0..K {
                total += block[3 * j + c] as u32;
            }
            *o = divide(total);
        }
    }
}

/// The column sums of one output row of [`box_reduce`] in AVX2, 32 bytes of each of the `ky` rows
/// at a time, into `sums[..done]`; returns `done` (a multiple of 32; the caller sums the rest).
/// While it reads, the next output row's rows (`next`) are prefetched a cache line per row per
/// 64 bytes: a camera frame arrives from memory, in rows too short (1920 bytes of a 640 crop) for
/// the hardware prefetcher to run ahead of, so without this every row starts with a miss.
///
/// # Safety
/// AVX2 is available; `src` holds `line_len` bytes from `first + dy * stride` for every `dy < ky`
/// (checked again by the slicing), and `sums` at least `line_len` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn box_columns_avx2(
    src: &[u8],
    first: usize,
    next: Option<usize>,
    stride: usize,
    ky: usize,
    line_len: usize,
    sums: &mut [u16],
) -> usize {
    use std::arch::x86_64::*;
    let mut block = 0;
    while block + 32 <= line_len {
        if let Some(next) = next.filter(|_| block % 64 == 0) {
            for dy in 0..ky {
                // A prefetch never faults; `wrapping_add` keeps the address computation defined
                // even past the end of `src` (the next rows are inside it, as the caller states).
                _mm_prefetch::<_MM_HINT_T0>(src.as_ptr().wrapping_add(next + dy * stride + block).cast());
            }
        }
        let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
        for dy in 0..ky {
            let bytes: &[u8; 32] = src[first + dy * stride + block..][..32].try_into().expect("32 bytes");
            // SAFETY: both loads read 16 of the 32 bytes of `bytes`.
            let (a, b) = unsafe {
                (
                    _mm_loadu_si128(bytes.as_ptr().cast()),
                    _mm_loadu_si128(bytes.as_ptr().add(16).cast()),
                )
            };
            lo = _mm256_add_epi16(lo, _mm256_cvtepu8_epi16(a));
            hi = _mm256_add_epi16(hi, _mm256_cvtepu8_epi16(b));
        }
        let out: &mut [u16; 32] = (&mut sums[block..block + 32]).try_into().expect("32 sums");
        // SAFETY: each store writes 16 of the 32 values of `out`.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(out.as_mut_ptr().add(16).cast(), hi);
        }
        block += 32;
    }
    block
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::imageops::{self, FilterType};

    /// xorshift32: deterministic test pixels without a `rand` dependency.
    struct Noise(u32);
    impl Noise {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
        fn below(&mut self, n: u32) -> u32 {
            self.next() % n
        }
    }

    fn random_image(rng: &mut Noise, w: u32, h: u32) -> RgbImage {
        // Smooth ramps plus noise plus hard edges: exercises clamping (CatmullRom overshoots).
        let (a, b) = (rng.below(400) as f32 / 100.0, rng.below(400) as f32 / 100.0);
        RgbImage::from_fn(w, h, |x, y| {
            let edge = if (x / 5 + y / 7) % 2 == 0 { 255 } else { 0 };
            image::Rgb([
                ((x as f32 * a) as u32 % 256) as u8,
                (rng.next() >> 24) as u8,
                if x % 3 == 0 {
                    edge
                } else {
                    ((y as f32 * b) as u32 % 256) as u8
                },
            ])
        })
    }

    #[test]
    fn rounding_matches_f32_round() {
        for i in 0..=2_560_000u32 {
            let t = i as f32 / 10_000.0 - 1.0;
            assert_eq!(round_u8(t), t.clamp(0.0, 255.0).round() as u8, "{t}");
        }
        for t in [0.49999997f32, 0.5, 1.5, 2.5, 254.5, 254.49998, 255.7, -3.0] {
            assert_eq!(round_u8(t), t.clamp(0.0, 255.0).round() as u8, "{t}");
        }
    }

    #[test]
    fn box_factor_divides_and_never_reduces_below_the_model() {
        assert_eq!(box_factor(128, 128), 1);
        assert_eq!(box_factor(511, 128), 1); // below 4x: unchanged
        assert_eq!(box_factor(512, 128), 4);
        assert_eq!(box_factor(648, 128), 4); // 162 -> 128 by the Triangle
        assert_eq!(box_factor(640, 128), 5); // camera_loop's crop around its hole: straight to 128
        assert_eq!(box_factor(1920, 128), 15);
        assert_eq!(box_factor(1080, 128), 8);
        assert_eq!(box_factor(1031, 128), 1); // a prime: no exact block size
        assert_eq!(box_factor(100_000, 128), 50);
        assert_eq!(box_factor(1 << 20, 128), 32); // capped at MAX_BOX, a power of two below it
        for extent in 1..3000 {
            let k = box_factor(extent, 128);
            assert!(
                extent.is_multiple_of(k) && (k == 1 || (extent >= 512 && extent / k >= 128)),
                "{extent}: {k}"
            );
        }
    }

    #[test]
    fn box_reduce_is_the_rounded_block_mean() {
        let mut rng = Noise(0x1234_5678);
        for (iw, ih, kx, ky) in [
            (12, 10, 3, 2),
            (7, 7, 7, 7),
            (64, 63, 1, 63),
            (126, 4, 63, 1),
            (30, 20, 2, 5),
            // The AVX2 pass: lines of several 32-byte blocks plus a tail; the largest sums (the
            // green channel is 255 everywhere).
            (640, 15, 5, 5),
            (120, 8, 4, 2),
            (600, 6, 6, 6),
            (650, 6, 13, 3),
            (256, 32, 16, 16),
            (66, 126, 1, 63),
            (120, 60, 20, 20),
            (189, 63, 63, 63),
        ] {
            let img = RgbImage::from_fn(iw + 3, ih + 2, |_, _| {
                image::Rgb([(rng.next() >> 24) as u8, 255, if rng.below(2) == 0 { 0 } else { 255 }])
            });
            let got = box_reduce_with(&img, (2, 1, iw, ih), (kx, ky), BoxPass::Portable);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                let avx2 = box_reduce_with(&img, (2, 1, iw, ih), (kx, ky), BoxPass::Avx2);
                assert_eq!(avx2, got, "AVX2 vs portable: {iw}x{ih} /{kx}x{ky}");
            }
            assert_eq!(box_reduce(&img, (2, 1, iw, ih), (kx, ky)), got);
            assert_eq!(got.dimensions(), (iw / kx, ih / ky));
            for (x, y, p) in got.enumerate_pixels() {
                for c in 0..3 {
                    let mut sum = 0u32;
                    for dy in 0..ky {
                        for dx in 0..kx {
                            sum += img.get_pixel(2 + x * kx + dx, 1 + y * ky + dy).0[c] as u32;
                        }
                    }
                    let n = kx * ky;
                    assert_eq!(p.0[c] as u32, (sum + n / 2) / n, "{iw}x{ih} /{kx}x{ky} at {x},{y}");
                }
            }
        }
        // The exactness bound of the reciprocal: every sum for the largest block.
        let n = (MAX_BOX * MAX_BOX) as u64;
        let m = (1u64 << 32).div_ceil(n);
        for t in 0..=255 * n {
            assert_eq!(((t + n / 2) * m) >> 32, (t + n / 2) / n);
        }
    }

    #[test]
    fn windows_of_crops_are_bit_identical_to_imageops_resize() {
        let mut rng = Noise(0x9e37_79b9);
        let cases = [
            (200, 200, 128, 128),
            (128, 128, 200, 200),
            (128, 128, 317, 211),
            (50, 31, 32, 32),
            (7, 9, 40, 3),
            (300, 120, 128, 128),
            (1920, 1080, 128, 128), // a camera frame
            (64, 64, 64, 64),       // same size: a copy
        ];
        for (iw, ih, nw, nh) in cases {
            let img = random_image(&mut rng, iw, ih);
            // The whole image, then a crop of it.
            let (cw, ch) = ((iw * 3 / 4).max(1), (ih * 2 / 3).max(1));
            let crop = (rng.below(iw - cw + 1), rng.below(ih - ch + 1), cw, ch);
            for source in [(0, 0, iw, ih), crop] {
                let (sx, sy, sw, sh) = source;
                let cut = imageops::crop_imm(&img, sx, sy, sw, sh).to_image();
                for (kernel, filter) in [
                    (Kernel::Triangle, FilterType::Triangle),
                    (Kernel::CatmullRom, FilterType::CatmullRom),
                ] {
                    let full = imageops::resize(&cut, nw, nh, filter);
                    let whole = resize_window(&img, source, (nw, nh), kernel, (0, 0, nw, nh));
                    assert_eq!(whole, full, "{source:?} -> {nw}x{nh} {kernel:?}");
                    for _ in 0..4 {
                        let (x, y) = (rng.below(nw), rng.below(nh));
                        let (w, h) = (1 + rng.below(nw - x), 1 + rng.below(nh - y));
                        let expected = imageops::crop_imm(&full, x, y, w, h).to_image();
                        assert_eq!(
                            resize_window(&img, source, (nw, nh), kernel, (x, y, w, h)),
                            expected,
                            "{source:?} -> {nw}x{nh} {kernel:?}, window {x},{y},{w},{h}"
                        );
                        // Row spans: the pixels inside them as above, the rest 0.
                        let spans: Vec<(u32, u32)> = (0..h)
                            .map(|_| {
                                let a = rng.below(w + 1);
                                (a, a + rng.below(w - a + 1))
                            })
                            .collect();
                        let part = resize_window_spans(&img, source, (nw, nh), kernel, (x, y, w, h), Some(&spans));
                        for (px, py, p) in part.enumerate_pixels() {
                            let (a, b) = spans[py as usize];
                            let want = if (a..b).contains(&px) {
                                *expected.get_pixel(px, py)
                            } else {
                                image::Rgb([0, 0, 0])
                            };
                            assert_eq!(*p, want, "{source:?} -> {nw}x{nh} {kernel:?}, spans, at {px},{py}");
                        }
                    }
                }
            }
        }
    }
}
