//! Convolution geometry shared by conv2d and conv-transpose2d, and the im2col / col2im kernels.
//!
//! A stride-`s` convolution maps a "big" image to a "small" one; its transpose maps small to big with the
//! same index relation `big_y = small_y * s - pad + ky * dilation`. conv2d's input is the big side,
//! conv_transpose2d's output is. Both store the weight as `[small_c, big_c * kh * kw]` row-major
//! (candle's `[c_out, c_in, kh, kw]` for conv2d, `[c_in, c_out, kh, kw]` for the transpose), so one
//! set of kernels serves both ops and their gradients.
use super::simd::multiversion;
use std::mem::MaybeUninit;

/// Shapes of one convolution, per image (the batch is handled by the callers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geom {
    pub big_c: usize,
    pub big_h: usize,
    pub big_w: usize,
    pub small_c: usize,
    pub small_h: usize,
    pub small_w: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub pad: usize,
    pub dil: usize,
}

impl Geom {
    /// Rows of the column matrix: one per (big channel, ky, kx).
    pub fn col_rows(&self) -> usize {
        self.big_c * self.kh * self.kw
    }
    /// Pixels of one small-side plane (the columns of the column matrix).
    pub fn small_hw(&self) -> usize {
        self.small_h * self.small_w
    }
    pub fn big_hw(&self) -> usize {
        self.big_h * self.big_w
    }
    /// Elements of one big-side image.
    pub fn big_len(&self) -> usize {
        self.big_c * self.big_hw()
    }
    /// Elements of one small-side image.
    pub fn small_len(&self) -> usize {
        self.small_c * self.small_hw()
    }
    /// Elements of the column matrix `[col_rows, small_hw]`.
    pub fn col_len(&self) -> usize {
        self.col_rows() * self.small_hw()
    }
    /// A 1x1, stride-1, unpadded convolution: the column matrix is the big image itself.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.pad == 0
    }

    /// The small-side range `[lo, hi)` whose big coordinate `o * stride + off` lies in `[0, big)`.
    fn valid(&self, off: isize, big: usize, small: usize) -> (usize, usize) {
        let s = self.stride as isize;
        let lo = if off < 0 { (-off + s - 1) / s } else { 0 };
        let last = big as isize - 1 - off;
        let hi = if last < 0 { 0 } else { last / s + 1 };
        let lo = (lo as usize).min(small);
        let hi = (hi as usize).min(small).max(lo);
        (lo, hi)
    }

    /// The small rows `[lo, hi)` of `valid` clamped to the chunk `[o0, o1)`.
    fn clamp_rows((lo, hi): (usize, usize), o0: usize, o1: usize) -> (usize, usize) {
        let lo = lo.clamp(o0, o1);
        (lo, hi.clamp(lo, o1))
    }

    /// Calls `f(col_row, small_y, big_row_offset, x_lo, x_hi, x_off)` for every (row of the column
    /// matrix, small row in `[o0, o1)`) pair whose big row is inside the image; `x_off` is the big x of
    /// small x 0.
    #[inline(always)]
    fn for_each_row(&self, o0: usize, o1: usize, mut f: impl FnMut(usize, usize, usize, usize, usize, isize)) {
        for c in 0..self.big_c {
            for ky in 0..self.kh {
                let off_y = (ky * self.dil) as isize - self.pad as isize;
                let (y_lo, y_hi) = Self::clamp_rows(self.valid(off_y, self.big_h, self.small_h), o0, o1);
                for kx in 0..self.kw {
                    let row = (c * self.kh + ky) * self.kw + kx;
                    let off_x = (kx * self.dil) as isize - self.pad as isize;
                    let (x_lo, x_hi) = self.valid(off_x, self.big_w, self.small_w);
                    for oy in y_lo..y_hi {
                        let by = (oy * self.stride) as isize + off_y;
                        let big_row = c * self.big_hw() + by as usize * self.big_w;
                        f(row, oy, big_row, x_lo, x_hi, off_x);
                    }
                }
            }
        }
    }

    /// Column matrix `col[(c,ky,kx), (oy,ox)] = big[c, oy*s-p+ky*d, ox*s-p+kx*d]` (0 outside). Every
    /// entry is written exactly once (zeros only where the window leaves the image).
    pub fn im2col(&self, big: &[f32], col: &mut [f32]) {
        self.im2col_rows(big, col, 0, self.small_h)
    }

    /// The columns of small rows `[o0, o1)` only: `col` is `[col_rows, (o1 - o0) * small_w]`, the
    /// columns of [`Geom::im2col`] from `o0 * small_w` on (one image split across threads).
    pub fn im2col_rows(&self, big: &[f32], col: &mut [f32], o0: usize, o1: usize) {
        im2col_rows_mv(self, big, col, o0, o1)
    }

    #[inline(always)]
    fn im2col_rows_body(&self, big: &[f32], col: &mut [f32], o0: usize, o1: usize) {
        debug_assert_eq!(big.len(), self.big_len());
        debug_assert!(o0 <= o1 && o1 <= self.small_h);
        debug_assert_eq!(col.len(), self.col_rows() * (o1 - o0) * self.small_w);
        if self.stride > 1 {
            return self.im2col_strided(big, col, o0, o1);
        }
        let (sw, cw, s) = (self.small_w, (o1 - o0) * self.small_w, self.stride);
        for c in 0..self.big_c {
            for ky in 0..self.kh {
                let off_y = (ky * self.dil) as isize - self.pad as isize;
                let (y_lo, y_hi) = Self::clamp_rows(self.valid(off_y, self.big_h, self.small_h), o0, o1);
                for kx in 0..self.kw {
                    let row = &mut col[((c * self.kh + ky) * self.kw + kx) * cw..][..cw];
                    let off_x = (kx * self.dil) as isize - self.pad as isize;
                    let (x_lo, x_hi) = self.valid(off_x, self.big_w, self.small_w);
                    row[..(y_lo - o0) * sw].fill(0.0);
                    row[(y_hi - o0) * sw..].fill(0.0);
                    for oy in y_lo..y_hi {
                        let by = ((oy * s) as isize + off_y) as usize;
                        let dst = &mut row[(oy - o0) * sw..][..sw];
                        zero_short(&mut dst[..x_lo]);
                        zero_short(&mut dst[x_hi..]);
                        let start = (c * self.big_hw() + by * self.big_w) as isize + (x_lo * s) as isize + off_x;
                        let dst = &mut dst[x_lo..x_hi];
                        let src = &big[start as usize..];
                        if s == 1 {
                            copy_short(dst, &src[..dst.len()]);
                        } else {
                            for (i, d) in dst.iter_mut().enumerate() {
                                *d = src[i * s];
                            }
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of [`Geom::im2col`]: adds every column entry into its big-image pixel.
    pub fn col2im_add(&self, col: &[f32], big: &mut [f32]) {
        self.col2im_add_rows(col, big, 0, self.small_h)
    }

    /// The adjoint of [`Geom::im2col_rows`]: adds the columns of small rows `[o0, o1)` (laid out as
    /// there) into their big-image pixels.
    pub fn col2im_add_rows(&self, col: &[f32], big: &mut [f32], o0: usize, o1: usize) {
        col2im_add_rows_mv(self, col, big, o0, o1)
    }

    #[inline(always)]
    fn col2im_add_rows_body(&self, col: &[f32], big: &mut [f32], o0: usize, o1: usize) {
        debug_assert_eq!(big.len(), self.big_len());
        debug_assert!(o0 <= o1 && o1 <= self.small_h);
        debug_assert_eq!(col.len(), self.col_rows() * (o1 - o0) * self.small_w);
        if self.stride > 1 {
            return self.col2im_add_strided(col, big, o0, o1);
        }
        let (sw, cw, s) = (self.small_w, (o1 - o0) * self.small_w, self.stride);
        self.for_each_row(o0, o1, |row, oy, big_row, x_lo, x_hi, off_x| {
            let src = &col[row * cw + (oy - o0) * sw..][x_lo..x_hi];
            let start = (big_row as isize + (x_lo * s) as isize + off_x) as usize;
            if s == 1 {
                for (d, v) in big[start..start + src.len()].iter_mut().zip(src) {
                    *d += v;
                }
            } else {
                for (i, v) in src.iter().enumerate() {
                    big[start + i * s] += v;
                }
            }
        });
    }
}

multiversion! {
    /// [`Geom::im2col_rows`] compiled for the CPU's widest vectors: its row copies are most of its time,
    /// and the baseline build copies 16 bytes at a time.
    fn im2col_rows_mv(g: &Geom, big: &[f32], col: &mut [f32], o0: usize, o1: usize) = im2col_rows_mv_body
}

#[inline(always)]
fn im2col_rows_mv_body<const FMA: bool>(g: &Geom, big: &[f32], col: &mut [f32], o0: usize, o1: usize) {
    g.im2col_rows_body(big, col, o0, o1)
}

multiversion! {
    /// [`Geom::col2im_add_rows`] compiled for the CPU's widest vectors (its row additions).
    fn col2im_add_rows_mv(g: &Geom, col: &[f32], big: &mut [f32], o0: usize, o1: usize) = col2im_add_rows_mv_body
}

#[inline(always)]
fn col2im_add_rows_mv_body<const FMA: bool>(g: &Geom, col: &[f32], big: &mut [f32], o0: usize, o1: usize) {
    g.col2im_add_rows_body(col, big, o0, o1)
}

/// Strided convolutions: a big row is split once into `stride` phases (`phase[r][j] = row[j * s + r]`), so
/// that every kernel column becomes a contiguous copy (im2col) or add (col2im) instead of a strided
/// gather/scatter per (ky, kx).
impl Geom {
    fn phase_width(&self) -> usize {
        self.big_w.div_ceil(self.stride)
    }

    /// The big rows that small rows `[o0, o1)` read (empty when `o0 == o1`).
    fn big_rows_of(&self, o0: usize, o1: usize) -> std::ops::Range<usize> {
        if o0 >= o1 {
            return 0..0;
        }
        let lo = (o0 * self.stride).saturating_sub(self.pad);
        let hi = ((o1 - 1) * self.stride + (self.kh - 1) * self.dil + 1).saturating_sub(self.pad);
        lo.min(self.big_h)..hi.min(self.big_h)
    }

    /// The taps of small rows `[o0, o1)`, tabulated once per call so that the row loops below do no
    /// integer divisions (they did several per big row and kernel column).
    fn taps(&self, o0: usize, o1: usize) -> Taps {
        let s = self.stride as isize;
        let cols = (0..self.kw)
            .filter_map(|kx| {
                let off_x = (kx * self.dil) as isize - self.pad as isize;
                let (x_lo, x_hi) = self.valid(off_x, self.big_w, self.small_w);
                // big x = ox * s + off_x = (ox + q) * s + r.
                let (r, q) = (off_x.rem_euclid(s) as usize, off_x.div_euclid(s));
                (x_lo < x_hi).then(|| ColTap {
                    kx,
                    x_lo,
                    x_hi,
                    phase: r,
                    start: (x_lo as isize + q) as usize,
                })
            })
            .collect();
        let rows_range = self.big_rows_of(o0, o1);
        let (mut row_start, mut rows) = (Vec::with_capacity(rows_range.len() + 1), Vec::new());
        for by in rows_range.clone() {
            row_start.push(rows.len());
            for ky in 0..self.kh {
                let t = by as isize + self.pad as isize - (ky * self.dil) as isize;
                if t >= 0 && t % s == 0 && (o0..o1).contains(&((t / s) as usize)) {
                    rows.push((ky, (t / s) as usize));
                }
            }
        }
        row_start.push(rows.len());
        Taps {
            cols,
            rows,
            row_start,
            first_row: rows_range.start,
        }
    }

    /// Calls `f(col_row, small_y, phase, x_lo, x_hi, start)` for each kernel tap in `taps` that reads
    /// big row `by` of channel `c`: small x `x_lo + i` (up to `x_hi`) reads `phase[start + i]`.
    #[inline(always)]
    fn taps_of_row(
        &self,
        taps: &Taps,
        c: usize,
        by: usize,
        mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
    ) {
        let i = by - taps.first_row;
        for &(ky, oy) in &taps.rows[taps.row_start[i]..taps.row_start[i + 1]] {
            let base = (c * self.kh + ky) * self.kw;
            for t in &taps.cols {
                f(base + t.kx, oy, t.phase, t.x_lo, t.x_hi, t.start);
            }
        }
    }

    #[inline(always)]
    fn im2col_strided(&self, big: &[f32], col: &mut [f32], o0: usize, o1: usize) {
        let (sw, cw, s, pw) = (self.small_w, (o1 - o0) * self.small_w, self.stride, self.phase_width());
        // Zeros for the small rows whose window row leaves the image (and the rare taps whose window
        // column never enters it); the rest of each row is written by the copy loop below.
        for c in 0..self.big_c {
            for ky in 0..self.kh {
                let off_y = (ky * self.dil) as isize - self.pad as isize;
                let (y_lo, y_hi) = Self::clamp_rows(self.valid(off_y, self.big_h, self.small_h), o0, o1);
                for kx in 0..self.kw {
                    let row = &mut col[((c * self.kh + ky) * self.kw + kx) * cw..][..cw];
                    let (x_lo, x_hi) =
                        self.valid((kx * self.dil) as isize - self.pad as isize, self.big_w, self.small_w);
                    if x_lo >= x_hi {
                        row.fill(0.0);
                        continue;
                    }
                    row[..(y_lo - o0) * sw].fill(0.0);
                    row[(y_hi - o0) * sw..].fill(0.0);
                }
            }
        }
        let mut phases = vec![0f32; s * pw];
        let taps = self.taps(o0, o1);
        for c in 0..self.big_c {
            for by in self.big_rows_of(o0, o1) {
                let src = &big[c * self.big_hw() + by * self.big_w..][..self.big_w];
                deinterleave(src, s, pw, &mut phases);
                // Each (tap, small row) inside the image is visited exactly once: its window row `by`.
                self.taps_of_row(&taps, c, by, |row, oy, r, x_lo, x_hi, start| {
                    let dst = &mut col[row * cw + (oy - o0) * sw..][..sw];
                    zero_short(&mut dst[..x_lo]);
                    copy_short(&mut dst[x_lo..x_hi], &phases[r * pw + start..][..x_hi - x_lo]);
                    zero_short(&mut dst[x_hi..]);
                });
            }
        }
    }

    #[inline(always)]
    fn col2im_add_strided(&self, col: &[f32], big: &mut [f32], o0: usize, o1: usize) {
        let (sw, cw, s, pw) = (self.small_w, (o1 - o0) * self.small_w, self.stride, self.phase_width());
        let mut phases = vec![0f32; s * pw];
        let taps = self.taps(o0, o1);
        for c in 0..self.big_c {
            for by in self.big_rows_of(o0, o1) {
                phases.fill(0.0);
                let mut touched = false;
                self.taps_of_row(&taps, c, by, |row, oy, r, x_lo, x_hi, start| {
                    let src = &col[row * cw + (oy - o0) * sw..][x_lo..x_hi];
                    for (p, v) in phases[r * pw + start..][..src.len()].iter_mut().zip(src) {
                        *p += v;
                    }
                    touched = true;
                });
                if touched {
                    let dst = &mut big[c * self.big_hw() + by * self.big_w..][..self.big_w];
                    interleave_add(&phases, s, pw, dst);
                }
            }
        }
    }
}

/// One kernel column's tap in a strided convolution: small x `x_lo..x_hi` read phase `phase` of the big
/// row from `start` on.
struct ColTap {
    kx: usize,
    x_lo: usize,
    x_hi: usize,
    phase: usize,
    start: usize,
}

/// The taps of a strided convolution over a range of small rows (see [`Geom::taps`]).
struct Taps {
    cols: Vec<ColTap>,
    /// `(ky, small row)` pairs reading big row `first_row + i`: `rows[row_start[i]..row_start[i + 1]]`.
    rows: Vec<(usize, usize)>,
    row_start: Vec<usize>,
    first_row: usize,
}

/// Writing instead of adding: for outputs that have no values yet (a transposed convolution's output,
/// conv2d's input gradient), so that they need no zeroing pass first.
impl Geom {
    /// `big = col2im(col)`, writing every element of `big` (which may be uninitialised), then
    /// `post(channel, row)` on each row (strided) or channel plane (stride 1) while it is in cache: the
    /// bias and activation. Strided convolutions visit each big row exactly once and write it; others are
    /// zeroed and then added to.
    pub fn col2im_set<'a>(
        &self,
        col: &[f32],
        big: &'a mut [MaybeUninit<f32>],
        post: impl Fn(usize, &mut [f32]),
    ) -> &'a mut [f32] {
        assert_eq!(big.len(), self.big_len(), "col2im_set: output size");
        if self.stride == 1 || self.big_w == 0 {
            big.fill(MaybeUninit::new(0.0));
            // SAFETY: every element was written just above.
            let big = unsafe { &mut *(big as *mut [MaybeUninit<f32>] as *mut [f32]) };
            self.col2im_add(col, big);
            for (c, plane) in big.chunks_mut(self.big_hw().max(1)).enumerate() {
                post(c, plane);
            }
            return big;
        }
        let (sw, shw, s, pw) = (self.small_w, self.small_hw(), self.stride, self.phase_width());
        let mut phases = vec![0f32; s * pw];
        let taps = self.taps(0, self.small_h);
        let rows = self.big_rows_of(0, self.small_h);
        for c in 0..self.big_c {
            for by in 0..self.big_h {
                phases.fill(0.0);
                if rows.contains(&by) {
                    self.taps_of_row(&taps, c, by, |row, oy, r, x_lo, x_hi, start| {
                        let src = &col[row * shw + oy * sw..][x_lo..x_hi];
                        for (p, v) in phases[r * pw + start..][..src.len()].iter_mut().zip(src) {
                            *p += v;
                        }
                    });
                } // (else no small row's window reads this big row: zeros, then `post`)
                let dst = &mut big[c * self.big_hw() + by * self.big_w..][..self.big_w];
                post(c, interleave_set(&phases, s, pw, dst));
            }
        }
        // SAFETY: the loops above wrote every row of every channel, each completely (`interleave_set`).
        unsafe { &mut *(big as *mut [MaybeUninit<f32>] as *mut [f32]) }
    }
}

/// `row[2 j] = even[j]`, `row[2 j + 1] = odd[j]`, every element of `row`; returns it, initialised.
pub(super) fn interleave2<'a>(even: &[f32], odd: &[f32], row: &'a mut [MaybeUninit<f32>]) -> &'a mut [f32] {
    let n = row.len();
    for ((pair, e), o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
        pair[0].write(*e);
        pair[1].write(*o);
    }
    if n % 2 == 1 {
        row[n - 1].write(even[n / 2]);
    }
    // SAFETY: every element was written above (pairs, and the odd tail).
    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `row[j * s + r] = phases[r * pw + j]`, every element of `row`; returns it, initialised.
fn interleave_set<'a>(phases: &[f32], s: usize, pw: usize, row: &'a mut [MaybeUninit<f32>]) -> &'a mut [f32] {
    if s == 2 {
        let (even, odd) = phases.split_at(pw);
        return interleave2(even, odd, row);
    }
    for (i, v) in row.iter_mut().enumerate() {
        v.write(phases[(i % s) * pw + i / s]);
    }
    // SAFETY: every element was written above, one by one.
    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `dst = src` for the short rows of im2col (8-64 floats): in blocks of 8 with a fixed size, so that no
/// `memcpy` call is made (its call and size dispatch cost about as much as such a copy).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let (mut d, mut s) = (dst.chunks_exact_mut(8), src.chunks_exact(8));
    for (d, s) in (&mut d).zip(&mut s) {
        let block: &[f32; 8] = s.try_into().expect("8 elements");
        d.copy_from_slice(block);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Zeros for a window's border columns: usually one element (padding 1), written without a `memset` call.
#[inline(always)]
fn zero_short(dst: &mut [f32]) {
    match dst.len() {
        0 => {}
        1 => dst[0] = 0.0,
        _ => dst.fill(0.0),
    }
}

/// `phases[r * pw + j] = row[j * s + r]`.
#[inline(always)]
fn deinterleave(row: &[f32], s: usize, pw: usize, phases: &mut [f32]) {
    if s == 2 {
        let (even, odd) = phases.split_at_mut(pw);
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
            *e = pair[0];
            *o = pair[1];
        }
        if row.len() % 2 == 1 {
            even[row.len() / 2] = row[row.len() - 1];
        }
    } else {
        for (i, v) in row.iter().enumerate() {
            phases[(i % s) * pw + i / s] = *v;
        }
    }
}

/// `row[j * s + r] += phases[r * pw + j]`.
#[inline(always)]
fn interleave_add(phases: &[f32], s: usize, pw: usize, row: &mut [f32]) {
    if s == 2 {
        let (even, odd) = phases.split_at(pw);
        let n = row.len();
        for ((pair, e), o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
            pair[0] += e;
            pair[1] += o;
        }
        if n % 2 == 1 {
            row[n - 1] += even[n / 2];
        }
    } else {
        for (i, v) in row.iter_mut().enumerate() {
            *v += phases[(i % s) * pw + i / s];
        }
    }
}

#[cfg(test)]
impl Geom {
    /// A 3x3, stride-2, pad-1 layer between `big_c` channels at `2 * side` px and `small_c` at `side` px:
    /// the shape of every strided layer of the seed and unet networks (tests and kernel benches).
    pub fn stride2_3x3(big_c: usize, small_c: usize, side: usize) -> Geom {
        Geom {
            big_c,
            big_h: 2 * side,
            big_w: 2 * side,
            small_c,
            small_h: side,
            small_w: side,
            kh: 3,
            kw: 3,
            stride: 2,
            pad: 1,
            dil: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(big: (usize, usize), k: usize, stride: usize, pad: usize, dil: usize) -> Geom {
        let out = |n: usize| (n + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        Geom {
            big_c: 2,
            big_h: big.0,
            big_w: big.1,
            small_c: 1,
            small_h: out(big.0),
            small_w: out(big.1),
            kh: k,
            kw: k,
            stride,
            pad,
            dil,
        }
    }

    /// im2col against its definition, and col2im as its exact adjoint: <im2col(x), c> == <x, col2im(c)>.
    #[test]
    fn im2col_matches_definition_and_col2im_is_adjoint() {
        for &(h, w, k, s, p, d) in &[
            (5, 7, 3, 1, 1, 1),
            (8, 8, 3, 2, 1, 1),
            (9, 7, 3, 2, 0, 2),
            (4, 5, 2, 3, 1, 1),
            (7, 9, 3, 3, 1, 2),
            (6, 5, 1, 2, 0, 1),
        ] {
            let g = geom((h, w), k, s, p, d);
            let big: Vec<f32> = (0..g.big_len()).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut col = vec![f32::NAN; g.col_len()];
            g.im2col(&big, &mut col);
            for c in 0..g.big_c {
                for ky in 0..k {
                    for kx in 0..k {
                        for oy in 0..g.small_h {
                            for ox in 0..g.small_w {
                                let y = (oy * s + ky * d) as isize - p as isize;
                                let x = (ox * s + kx * d) as isize - p as isize;
                                let want = if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                                    0.0
                                } else {
                                    big[c * h * w + y as usize * w + x as usize]
                                };
                                let got = col[((c * k + ky) * k + kx) * g.small_hw() + oy * g.small_w + ox];
                                assert_eq!(got, want, "{g:?} c{c} k{ky}{kx} o{oy},{ox}");
                            }
                        }
                    }
                }
            }
            let cvec: Vec<f32> = (0..g.col_len()).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut back = vec![0.0; g.big_len()];
            g.col2im_add(&cvec, &mut back);
            let lhs: f64 = col.iter().zip(&cvec).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let rhs: f64 = big.iter().zip(&back).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            assert!((lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0), "{g:?}: {lhs} vs {rhs}");

            // Writing: the same as adding to a bias-filled image, on uninitialised memory.
            let bias: Vec<f32> = (0..g.big_c).map(|c| c as f32 - 0.5).collect();
            let mut set = vec![std::mem::MaybeUninit::new(f32::NAN); g.big_len()];
            let written = g.col2im_set(&cvec, &mut set, |c, row| row.iter_mut().for_each(|v| *v += bias[c]));
            for (i, (a, b)) in written.iter().zip(&back).enumerate() {
                let want = b + bias[i / g.big_hw()];
                assert!(
                    (a - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "{g:?} col2im_set at {i}: {a} vs {want}"
                );
            }
            // In chunks of small rows: the same columns, and col2im over the chunks adds up to the whole.
            for chunk in [1, 2, 3] {
                let mut back_chunks = vec![0.0; g.big_len()];
                for o0 in (0..g.small_h).step_by(chunk) {
                    let o1 = (o0 + chunk).min(g.small_h);
                    let cw = (o1 - o0) * g.small_w;
                    let mut part = vec![f32::NAN; g.col_rows() * cw];
                    g.im2col_rows(&big, &mut part, o0, o1);
                    let mut cpart = vec![0.0; part.len()];
                    for r in 0..g.col_rows() {
                        let full = &col[r * g.small_hw() + o0 * g.small_w..][..cw];
                        assert_eq!(&part[r * cw..][..cw], full, "{g:?} rows {o0}..{o1}");
                        cpart[r * cw..][..cw].copy_from_slice(&cvec[r * g.small_hw() + o0 * g.small_w..][..cw]);
                    }
                    g.col2im_add_rows(&cpart, &mut back_chunks, o0, o1);
                }
                for (a, b) in back_chunks.iter().zip(&back) {
                    assert!(
                        (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                        "{g:?} chunk {chunk}: {a} vs {b}"
                    );
                }
            }
        }
    }
}
