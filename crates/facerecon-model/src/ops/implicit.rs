//! Strided convolutions without a column matrix (an implicit GEMM over the image's phase planes).
//!
//! For stride `s`, big pixel `(y, x)` is pixel `(y / s, x / s)` of phase plane `(y % s, x % s)`. Tap
//! `(ky, kx)` of small pixel `(oy, ox)` reads big `(oy * s + off_y, ox * s + off_x)` (`off = k * dil - pad`),
//! which is pixel `(oy + qy, ox + qx)` of phase `(ry, rx)` (`off = q * s + r`): the same phase plane, shifted,
//! for every small pixel. So with the phase planes stored padded (`ph x pw`, zeros around), the column
//! matrix's row `k = (c, ky, kx)` is one contiguous run of the planes from a per-row offset, with the
//! small pixels laid out `pw` wide (the columns `ox >= small_w` are unused). The kernels below read the
//! column matrix from there inside their inner loops instead of having it written out (im2col) and read
//! back by the `gemm` crate's packing:
//!
//! - [`igemm`]: `out[m][q] = Σ_k a[k][m] · x[off[k] + q]` — conv2d's forward and a transposed
//!   convolution's input gradient (`a` = the weight, transposed), and, over the small image padded the
//!   same way, the other direction: each phase of the big image is one such product whose `k` runs over
//!   (small channel, taps that land on the phase) — a transposed convolution's forward and conv2d's input
//!   gradient, without col2im's scatter-adds;
//! - [`dw`]: `d[k][m] += Σ_q y[m][q] · x[off[k] + q]` — the weight gradient.
//!
//! With stride 1 there is one phase plane, the zero-padded image: [`Implicit::for_forward`] takes the forward
//! pass of the wide stride-1 layers this way too (one GEMM of `k = 9 c_in` instead of `kernels::Shifted`'s
//! nine of `k = c_in`).
//!
//! AVX-512 only (the micro-kernels hold 24 accumulators in `zmm` registers); elsewhere the column matrix
//! path stays (the scalar forms of the kernels exist for the tests).
use super::geom::{interleave2, Geom};
use super::kernels::{crop_bias_act, with_scratch, zero_around};
use super::simd::multiversion;
use super::Act;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// Pixels per step of [`igemm`] (4 vectors of 16 lanes; the last step of a row may take 1-3).
const STEP: usize = 64;
/// Vector lanes: what pixel counts are rounded up to.
const LANES: usize = 16;
/// Rows of `a` per block of [`igemm`] (6 x 4 accumulators, as the `gemm` crate's own micro-kernel).
const MR: usize = 6;

/// Small images narrower than this keep the column matrix: one row of 16 lanes per few pixels would
/// leave most of each vector on unused columns, and their column matrices are small anyway.
const MIN_SMALL_W: usize = 16;

/// Stride-1 outputs narrower than this keep `kernels::Shifted` for their forward pass (see
/// [`Implicit::stride1_forward`]).
const STRIDE1_MIN_W: usize = 48;

thread_local! {
    // Per-thread scratch (taken out while in use, as in `kernels`).
    static PLANES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static WIDE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static WIDE2: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Forces the column-matrix path (for the tests of both paths).
#[cfg(test)]
pub(super) static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes the implicit path also where the column matrix measured faster (for the tests of the kernels on
/// few channels).
#[cfg(test)]
pub(super) static FORCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether [`FORCE`] is set (always false outside the tests).
fn forced() -> bool {
    #[cfg(test)]
    return FORCE.load(std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(test))]
    false
}

/// `FACERECON_IMPLICIT=0` turns the implicit path off (for A/B measurements in one binary).
fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("FACERECON_IMPLICIT").as_deref() != Ok("0"))
}

/// One small→big phase of a strided convolution: the big pixels `(i * s + ry, j * s + rx)`.
struct Phase {
    ry: usize,
    rx: usize,
    rows: usize,
    cols: usize,
    /// `a[k][c]` for `k = (small channel o, tap of this phase)`: `w[o, c, tap]`.
    a: Vec<f32>,
    /// The offset of each `k` in the padded small image.
    off: Vec<usize>,
}

/// The layouts and per-call tables of one strided convolution (see the module docs).
pub(super) struct Implicit {
    s: usize,
    /// Padded phase plane of the big image: `ph x pw`, content from row `ly`, column `lx`.
    ly: usize,
    lx: usize,
    ph: usize,
    pw: usize,
    /// Small pixels in the `pw`-wide layout, and that rounded up to [`STEP`].
    nr: usize,
    /// Offset of each column-matrix row `(c, ky, kx)` in the planes.
    toff: Vec<usize>,
    /// The weight transposed, `[col_rows][small_c]` (for [`igemm`] on the big side).
    w_t: Vec<f32>,
    /// The padded small image (small→big): `hs x ws` per channel, content from `(ay, ax)`.
    ay: usize,
    ax: usize,
    hs: usize,
    ws: usize,
    phases: Vec<Phase>,
}

impl Implicit {
    /// The tables for `g` and weight `w` (`[small_c][col_rows]`), or `None` where the column matrix path
    /// stays: stride 1 (see `kernels::Shifted`; but [`Implicit::for_forward`]), narrow small images, CPUs
    /// without AVX-512.
    pub(super) fn of(g: &Geom, w: &[f32]) -> Option<Self> {
        if g.stride < 2 {
            return None;
        }
        Self::checked(g, w)
    }

    /// [`Implicit::of`] for conv2d's forward pass: also the stride-1 layers of [`Implicit::stride1_forward`].
    pub(super) fn for_forward(g: &Geom, w: &[f32]) -> Option<Self> {
        if g.stride == 1 && Self::stride1_forward(g) {
            return Self::checked(g, w);
        }
        Self::of(g, w)
    }

    /// Whether a stride-1 conv2d's forward pass takes the implicit path: one GEMM of `k = 9 c_in` instead of
    /// `kernels::Shifted`'s nine accumulating GEMMs of `k = c_in`, for images at least [`STRIDE1_MIN_W`]
    /// wide (the unet's `d2c`: 1.26x, 14.5 -> 11.5 ms per batch of 16; 32 wide, `d3c`, measured even and
    /// the 16-wide dilated bottleneck slower) and more than 3 output channels (the direct kernels'). The
    /// gradients stay on the shifted GEMMs, which measured as fast or faster.
    pub(super) fn stride1_forward(g: &Geom) -> bool {
        forced() || (g.small_w >= STRIDE1_MIN_W && g.small_c > 3 && !g.is_pointwise())
    }

    /// [`Implicit::build`] where the CPU has AVX-512 and the path is not switched off.
    fn checked(g: &Geom, w: &[f32]) -> Option<Self> {
        #[cfg(test)]
        if DISABLED.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        if !cfg!(target_arch = "x86_64") || super::simd::level() != super::simd::Level::V4 || !enabled() {
            return None;
        }
        Self::build(g, w)
    }

    /// [`Implicit::of`] for a transposed convolution's forward pass (small → big): not for 3 or fewer big
    /// channels, where the column-matrix path measured faster (the seed's `dec4`: 0.83x, interleaved A/B).
    pub(super) fn for_small_to_big(g: &Geom, w: &[f32]) -> Option<Self> {
        if g.big_c <= 3 && !forced() {
            return None;
        }
        Self::of(g, w)
    }

    /// [`Implicit::of`] for the gradients: not for column matrices of at most 36 rows (3-4 big channels:
    /// `enc1`, `e1` and `dec4`), where the `gemm` crate's dW measured faster than [`dw`] (0.81-0.95x).
    pub(super) fn for_backward(g: &Geom, w: &[f32]) -> Option<Self> {
        if g.col_rows() <= 36 && !forced() {
            return None;
        }
        Self::of(g, w)
    }

    /// [`Implicit::of`] without the CPU check (the tests run the scalar kernels with it).
    pub(super) fn build(g: &Geom, w: &[f32]) -> Option<Self> {
        if g.stride == 0 || g.small_w < MIN_SMALL_W || g.small_h == 0 || g.big_h == 0 || g.big_w == 0 {
            return None;
        }
        let (s, kk) = (g.stride as isize, g.kh * g.kw);
        let split = |k: usize| {
            let off = (k * g.dil) as isize - g.pad as isize;
            (off.rem_euclid(s) as usize, off.div_euclid(s))
        };
        let qys: Vec<(usize, isize)> = (0..g.kh).map(split).collect();
        let qxs: Vec<(usize, isize)> = (0..g.kw).map(split).collect();
        let min = |v: &[(usize, isize)]| v.iter().map(|p| p.1).min().unwrap_or(0);
        let max = |v: &[(usize, isize)]| v.iter().map(|p| p.1).max().unwrap_or(0);
        let s = g.stride;
        // Big → small: the phase planes.
        let ly = (-min(&qys)).max(0) as usize;
        let lx = (-min(&qxs)).max(0) as usize;
        let ph = (g.small_h as isize + max(&qys) + ly as isize).max(1) as usize;
        let pw = (g.small_w as isize + max(&qxs) + lx as isize).max(1) as usize;
        let nr = (g.small_h * pw).next_multiple_of(LANES);
        let plane = ph * pw;
        let mut toff = Vec::with_capacity(g.col_rows());
        for c in 0..g.big_c {
            for &(ry, qy) in &qys {
                for &(rx, qx) in &qxs {
                    let p = (c * s + ry) * s + rx;
                    toff.push(p * plane + ((qy + ly as isize) as usize) * pw + (qx + lx as isize) as usize);
                }
            }
        }
        let rows = g.col_rows();
        let mut w_t = vec![0f32; rows * g.small_c];
        super::transpose::transpose(w, g.small_c, rows, &mut w_t);
        // Small → big: the padded small image and the phases.
        let ay = max(&qys).max(0) as usize;
        let ax = max(&qxs).max(0) as usize;
        let (max_rows, max_cols) = (g.big_h.div_ceil(s), g.big_w.div_ceil(s));
        let hs = (g.small_h + ay).max((max_rows as isize + ay as isize - min(&qys)) as usize);
        let ws = (g.small_w + ax).max((max_cols as isize + ax as isize - min(&qxs)) as usize);
        let mut phases = Vec::new();
        for ry in 0..s.min(g.big_h) {
            for rx in 0..s.min(g.big_w) {
                let (mut a, mut off) = (Vec::new(), Vec::new());
                for o in 0..g.small_c {
                    for (ky, &(ty, qy)) in qys.iter().enumerate() {
                        for (kx, &(tx, qx)) in qxs.iter().enumerate() {
                            if (ty, tx) != (ry, rx) {
                                continue;
                            }
                            let t = ky * g.kw + kx;
                            a.extend((0..g.big_c).map(|c| w[o * rows + c * kk + t]));
                            let dy = (ay as isize - qy) as usize;
                            let dx = (ax as isize - qx) as usize;
                            off.push(o * hs * ws + dy * ws + dx);
                        }
                    }
                }
                phases.push(Phase {
                    ry,
                    rx,
                    rows: (g.big_h - ry).div_ceil(s),
                    cols: (g.big_w - rx).div_ceil(s),
                    a,
                    off,
                });
            }
        }
        Some(Implicit {
            s,
            ly,
            lx,
            ph,
            pw,
            nr,
            toff,
            w_t,
            ay,
            ax,
            hs,
            ws,
            phases,
        })
    }

    /// Length of the phase planes' buffer: every plane, plus the reach of the last rows' vectors.
    fn planes_len(&self, g: &Geom) -> usize {
        let reach = self.toff.iter().max().copied().unwrap_or(0) + self.nr;
        (g.big_c * self.s * self.s * self.ph * self.pw).max(reach)
    }

    /// `xp` = the padded phase planes of one big image (every element written).
    fn planes(&self, g: &Geom, big: &[f32], xp: &mut [f32]) {
        planes_mv(self, g, big, xp)
    }

    /// `yt` (`nr x small_c`) = `small` laid out `pw` wide and transposed (pixel-major), zeros elsewhere:
    /// each image row of every channel transposed straight into place.
    fn widen_t(&self, g: &Geom, small: &[f32], yt: &mut [f32]) {
        let (sc, sw) = (g.small_c, g.small_w);
        zero_around(yt, 0, sw * sc, g.small_h, self.pw * sc);
        for y in 0..g.small_h {
            let dst = &mut yt[y * self.pw * sc..];
            super::transpose::transpose_strided(&small[y * sw..], sc, sw, g.small_hw(), dst, sc);
        }
    }

    /// One image of `out = act(W · im2col(big) + bias)` (conv2d's forward; the transposed convolution's
    /// input gradient with no bias or activation), every element of `out` written.
    pub(super) fn big_to_small(
        &self,
        g: &Geom,
        big: &[f32],
        out: &mut [MaybeUninit<f32>],
        bias: Option<&[f32]>,
        act: Option<Act>,
    ) {
        with_scratch(&PLANES, self.planes_len(g), |xp| {
            self.planes(g, big, xp);
            self.big_to_small_from(g, xp, out, bias, act)
        })
    }

    /// [`Implicit::big_to_small`] from the phase planes already made.
    pub(super) fn big_to_small_from(
        &self,
        g: &Geom,
        xp: &[f32],
        out: &mut [MaybeUninit<f32>],
        bias: Option<&[f32]>,
        act: Option<Act>,
    ) {
        with_scratch(&WIDE, g.small_c * self.nr, |wide| {
            igemm(
                g.small_c,
                g.col_rows(),
                &self.w_t,
                xp,
                &self.toff,
                self.nr,
                wide,
                self.nr,
            );
            let shw = g.small_hw();
            for c in 0..g.small_c {
                let dst = &mut out[c * shw..][..shw];
                crop_bias_act(
                    &wide[c * self.nr..],
                    self.pw,
                    dst,
                    g.small_w,
                    bias.map_or(0.0, |b| b[c]),
                    act,
                );
            }
        })
    }

    /// One image of `big = act(col2im(Wᵀ · small) + bias)` (the transposed convolution's forward; conv2d's
    /// input gradient with no bias or activation), every element of `big` written.
    pub(super) fn small_to_big(
        &self,
        g: &Geom,
        small: &[f32],
        big: &mut [MaybeUninit<f32>],
        bias: Option<&[f32]>,
        act: Option<Act>,
    ) {
        let (s, plane_s) = (self.s, self.hs * self.ws);
        let nr = self
            .phases
            .iter()
            .map(|p| p.rows * self.ws)
            .max()
            .unwrap_or(0)
            .next_multiple_of(LANES);
        let reach = self
            .phases
            .iter()
            .flat_map(|p| p.off.iter())
            .max()
            .copied()
            .unwrap_or(0)
            + nr;
        with_scratch(&PLANES, (g.small_c * plane_s).max(reach), |sp| {
            let row = |o: usize, y: usize| o * plane_s + (y + self.ay) * self.ws + self.ax;
            for o in 0..g.small_c {
                zero_around(
                    &mut sp[o * plane_s..][..plane_s],
                    row(0, 0),
                    g.small_w,
                    g.small_h,
                    self.ws,
                );
            }
            sp[g.small_c * plane_s..].fill(0.0);
            for o in 0..g.small_c {
                for y in 0..g.small_h {
                    sp[row(o, y)..][..g.small_w]
                        .copy_from_slice(&small[o * g.small_hw() + y * g.small_w..][..g.small_w]);
                }
            }
            let np = self.phases.len();
            with_scratch(&WIDE, np * g.big_c * nr, |wide| {
                for (pi, p) in self.phases.iter().enumerate() {
                    let k = p.off.len();
                    igemm(g.big_c, k, &p.a, sp, &p.off, nr, &mut wide[pi * g.big_c * nr..], nr);
                }
                let two = s == 2 && np == 4;
                for c in 0..g.big_c {
                    for by in 0..g.big_h {
                        let (ry, i) = (by % s, by / s);
                        let dst = &mut big[c * g.big_hw() + by * g.big_w..][..g.big_w];
                        let row = if two {
                            let at = |rx: usize| &wide[((ry * 2 + rx) * g.big_c + c) * nr + i * self.ws..][..self.ws];
                            interleave2(at(0), at(1), dst)
                        } else {
                            for (pi, p) in self.phases.iter().enumerate().filter(|(_, p)| p.ry == ry) {
                                let src = &wide[(pi * g.big_c + c) * nr + i * self.ws..][..p.cols];
                                for (d, v) in dst[p.rx..].iter_mut().step_by(s).zip(src) {
                                    d.write(*v);
                                }
                            }
                            // SAFETY: the phases of row `by` (rx = 0..s) cover every column of it.
                            unsafe { &mut *(dst as *mut [MaybeUninit<f32>] as *mut [f32]) }
                        };
                        super::kernels::bias_act(row, bias.map_or(0.0, |b| b[c]), act);
                    }
                }
            });
        });
    }

    /// One image's share of the gradients from the big side: `dw_t += dW` (the column-major layout of
    /// `kernels::backward`) and the small side's input gradient `W · im2col(big)`, each when given.
    pub(super) fn backward_big(
        &self,
        g: &Geom,
        big: &[f32],
        small: &[f32],
        dw_t: Option<&mut [f32]>,
        dsmall: Option<&mut [MaybeUninit<f32>]>,
    ) {
        with_scratch(&PLANES, self.planes_len(g), |xp| {
            self.planes(g, big, xp);
            if let Some(d) = dw_t {
                with_scratch(&WIDE2, g.small_c * self.nr, |yt| {
                    self.widen_t(g, small, yt);
                    dw(g.small_c, g.col_rows(), yt, xp, &self.toff, g.small_h * self.pw, d);
                });
            }
            if let Some(d) = dsmall {
                self.big_to_small_from(g, xp, d, None, None);
            }
        })
    }
}

multiversion! {
    /// [`Implicit::planes`], compiled for the CPU's widest vectors (stride 2: one pass splitting each row
    /// into its even and odd columns).
    fn planes_mv(im: &Implicit, g: &Geom, big: &[f32], xp: &mut [f32]) = planes_body
}

#[inline(always)]
fn planes_body<const FMA: bool>(im: &Implicit, g: &Geom, big: &[f32], xp: &mut [f32]) {
    let (s, plane) = (im.s, im.ph * im.pw);
    let len = im.pw - im.lx;
    // Each phase plane's content (written below): rows from ly, columns from lx; zeros around it.
    let content = |r: usize, n: usize| if r < n { (n - r).div_ceil(s) } else { 0 };
    for p in 0..g.big_c * s * s {
        let (ry, rx) = ((p / s) % s, p % s);
        let (rows, cols) = (content(ry, g.big_h).min(im.ph - im.ly), content(rx, g.big_w).min(len));
        zero_around(&mut xp[p * plane..][..plane], im.ly * im.pw + im.lx, cols, rows, im.pw);
    }
    xp[g.big_c * s * s * plane..].fill(0.0);
    for c in 0..g.big_c {
        for by in 0..g.big_h {
            let (ry, i) = (by % s, by / s + im.ly);
            if i >= im.ph {
                continue;
            }
            let row = &big[c * g.big_hw() + by * g.big_w..][..g.big_w];
            let at = |rx: usize| ((c * s + ry) * s + rx) * plane + i * im.pw + im.lx;
            if s == 1 {
                let n = len.min(g.big_w);
                xp[at(0)..][..n].copy_from_slice(&row[..n]);
            } else if s == 2 && g.big_w >= 2 {
                let (head, tail) = xp.split_at_mut(at(1));
                let (even, odd) = (&mut head[at(0)..][..len], &mut tail[..len]);
                for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(row.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
                if g.big_w % 2 == 1 && g.big_w / 2 < len {
                    even[g.big_w / 2] = row[g.big_w - 1];
                }
            } else {
                for rx in 0..s.min(g.big_w) {
                    for (d, v) in xp[at(rx)..][..len].iter_mut().zip(row[rx..].iter().step_by(s)) {
                        *d = *v;
                    }
                }
            }
        }
    }
}

/// `out[m][q] = Σ_k a[k * rows + m] · x[off[k] + q]` for `m < rows`, `q < nr` (`nr` a multiple of
/// [`LANES`]); `out`'s rows are `ldo` apart.
#[allow(clippy::too_many_arguments)]
pub(super) fn igemm(
    rows: usize,
    k: usize,
    a: &[f32],
    x: &[f32],
    off: &[usize],
    nr: usize,
    out: &mut [f32],
    ldo: usize,
) {
    assert!(nr.is_multiple_of(LANES) && ldo >= nr && off.len() == k && a.len() >= k * rows);
    assert!(rows == 0 || out.len() >= (rows - 1) * ldo + nr);
    assert!(off.iter().all(|&o| o + nr <= x.len()), "igemm: reads past x");
    if rows == 0 || nr == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::level() == super::simd::Level::V4 {
        // SAFETY: AVX-512F is available; every read a[kk * rows + m] (kk < k, m < rows), x[off[kk] + q]
        // (q < nr) and every write out[m * ldo + q] is inside its slice (asserted above).
        unsafe { igemm_v4_all(rows, k, a, x, off, nr, out, ldo) };
        return;
    }
    igemm_scalar(rows, k, a, x, off, nr, out, ldo);
}

/// The portable form of [`igemm`] (and its reference in the tests).
#[allow(clippy::too_many_arguments)]
pub(super) fn igemm_scalar(
    rows: usize,
    k: usize,
    a: &[f32],
    x: &[f32],
    off: &[usize],
    nr: usize,
    out: &mut [f32],
    ldo: usize,
) {
    for m in 0..rows {
        let o = &mut out[m * ldo..][..nr];
        o.fill(0.0);
        for kk in 0..k {
            let av = a[kk * rows + m];
            for (d, v) in o.iter_mut().zip(&x[off[kk]..][..nr]) {
                *d += av * v;
            }
        }
    }
}

/// # Safety
/// AVX-512F, and the bounds asserted by [`igemm`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn igemm_v4_all(
    rows: usize,
    k: usize,
    a: &[f32],
    x: &[f32],
    off: &[usize],
    nr: usize,
    out: &mut [f32],
    ldo: usize,
) {
    let (ap, xp, op) = (a.as_ptr(), x.as_ptr(), out.as_mut_ptr());
    if k == 0 {
        for r in 0..rows {
            out[r * ldo..][..nr].fill(0.0);
        }
        return;
    }
    // Per block of STEP pixels: the image rows of KC column-matrix rows (KC x 256 bytes) stay in L1
    // while every block of MR output rows passes over them; the output block is reloaded per chunk.
    // At most 3 rows (a 3-channel output): 8 vectors of pixels per step, so that each loaded vector
    // serves more than 3 multiply-adds.
    let step = if rows <= 3 { 2 * STEP } else { STEP };
    for q in (0..nr).step_by(step) {
        for k0 in (0..k).step_by(KC) {
            let offs = &off[k0..(k0 + KC).min(k)];
            let v = ((nr - q) / LANES).min(step / LANES);
            for m0 in (0..rows).step_by(MR) {
                // SAFETY: m0 < rows and k0 < k: a[(k0 + kk) * rows + m0 + r] and out[(m0 + r) * ldo + q..]
                // are inside for the block's rows (the caller's bounds).
                let (a0, o0) = unsafe { (ap.add(k0 * rows + m0), op.add(m0 * ldo + q)) };
                let first = k0 == 0;
                // SAFETY: (all arms) the caller's bounds, for rows m0..m0 + mr and pixels q..q + 16 v.
                unsafe {
                    let x0 = xp.add(q);
                    macro_rules! by_v {
                        ($m:literal; $($v:literal),*) => {
                            match v {
                                $($v => igemm_v4::<$m, $v>(rows, a0, x0, offs, o0, ldo, first),)*
                                _ => unreachable!(),
                            }
                        };
                        ($m:literal) => {
                            by_v!($m; 1, 2, 3, 4)
                        };
                    }
                    match (rows - m0).min(MR) {
                        1 => by_v!(1; 1, 2, 3, 4, 5, 6, 7, 8),
                        2 => by_v!(2; 1, 2, 3, 4, 5, 6, 7, 8),
                        3 => by_v!(3; 1, 2, 3, 4, 5, 6, 7, 8),
                        4 => by_v!(4),
                        5 => by_v!(5),
                        _ => by_v!(6),
                    }
                }
            }
        }
    }
}

/// Column-matrix rows per chunk of [`igemm_v4_all`].
const KC: usize = 64;

/// `M` rows x `V` vectors of pixels of [`igemm`] over the column-matrix rows `off` (`a` at the chunk's
/// first row and the block's first output row, `x` and `out` at the block's first pixel); adds to `out`
/// unless `first`.
///
/// # Safety
/// AVX-512F; `a[kk * lda + r]`, `x[off[kk] + i]` and `out[r * ldo + i]` valid for `r < M`,
/// `kk < off.len()`, `i < 16 V`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn igemm_v4<const M: usize, const V: usize>(
    lda: usize,
    a: *const f32,
    x: *const f32,
    off: &[usize],
    out: *mut f32,
    ldo: usize,
    first: bool,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); V]; M];
    if !first {
        for (r, acc_r) in acc.iter_mut().enumerate() {
            for (v, av) in acc_r.iter_mut().enumerate() {
                // SAFETY: out[r * ldo + 16 v..][..16] is inside (the caller's bounds).
                *av = unsafe { _mm512_loadu_ps(out.add(r * ldo + LANES * v)) };
            }
        }
    }
    for (kk, &o) in off.iter().enumerate() {
        // SAFETY: x[o..o + 16 V] and a[kk * lda + r] are valid (the caller's bounds).
        unsafe {
            let xq = x.add(o);
            let xv: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xq.add(LANES * v)));
            let ak = a.add(kk * lda);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ak.add(r));
                for v in 0..V {
                    acc_r[v] = _mm512_fmadd_ps(av, xv[v], acc_r[v]);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (v, a) in acc_r.iter().enumerate() {
            // SAFETY: out[r * ldo + 16 v..][..16] is inside (the caller's bounds).
            unsafe { _mm512_storeu_ps(out.add(r * ldo + LANES * v), *a) };
        }
    }
}

/// `d[k * rows + m] += Σ_{q < nr} x[off[k] + q] · yt[q * rows + m]`: the weight gradient in
/// `kernels::backward`'s column-major layout, from the small image transposed (`yt`: pixel-major).
#[allow(clippy::too_many_arguments)]
pub(super) fn dw(rows: usize, k: usize, yt: &[f32], x: &[f32], off: &[usize], nr: usize, d: &mut [f32]) {
    assert!(off.len() == k && d.len() >= k * rows && yt.len() >= nr * rows);
    assert!(off.iter().all(|&o| o + nr <= x.len()), "dw: reads past x");
    if rows == 0 || k == 0 || nr == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::simd::level() == super::simd::Level::V4 {
        // SAFETY: AVX-512F is available; all reads and writes are inside their slices (asserted above).
        unsafe { dw_v4_all(rows, k, yt, x, off, nr, d) };
        return;
    }
    dw_scalar(rows, k, yt, x, off, nr, d);
}

/// The portable form of [`dw`].
pub(super) fn dw_scalar(rows: usize, k: usize, yt: &[f32], x: &[f32], off: &[usize], nr: usize, d: &mut [f32]) {
    for kk in 0..k {
        let dk = &mut d[kk * rows..][..rows];
        for (q, &xv) in x[off[kk]..][..nr].iter().enumerate() {
            for (dv, yv) in dk.iter_mut().zip(&yt[q * rows..][..rows]) {
                *dv += xv * yv;
            }
        }
    }
}

/// Pixels per chunk of [`dw_v4_all`]: a chunk of `yt` (`DW_Q x rows`, 16 KiB at 64 channels) stays in L1
/// while every block of column-matrix rows passes over it.
const DW_Q: usize = 64;

/// # Safety
/// AVX-512F, and the bounds asserted by [`dw`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_v4_all(rows: usize, k: usize, yt: &[f32], x: &[f32], off: &[usize], nr: usize, d: &mut [f32]) {
    let zeros = [0f32; DW_Q];
    let mut sink = [0f32; 64];
    let (yp, xp, dp) = (yt.as_ptr(), x.as_ptr(), d.as_mut_ptr());
    for q0 in (0..nr).step_by(DW_Q) {
        let qn = DW_Q.min(nr - q0);
        for o0 in (0..rows).step_by(64) {
            let vecs = (rows - o0).min(64).div_ceil(16);
            let rem = (rows - o0).min(64) - (vecs - 1) * 16;
            let mask: u16 = if rem == 16 { u16::MAX } else { (1u16 << rem) - 1 };
            // Blocks of at most 24 / vecs rows, as even as the kernels' sizes allow.
            let max = 24 / vecs;
            let per = k.div_ceil(k.div_ceil(max));
            let kb = [1, 2, 3, 4, 6, 8, 9, 12, 16, 24]
                .into_iter()
                .find(|&b| b >= per && b <= max)
                .unwrap_or(max);
            for k0 in (0..k).step_by(kb) {
                // Rows past k read zeros and write to `sink`, so that every block has `kb` rows. (The
                // pointers are inside their slices: x[off[k0 + j] + q0..][..qn], d[(k0 + j) * rows + o0..]
                // and yt[q0 * rows + o0..], by the caller's bounds.)
                let xr: [*const f32; 24] = std::array::from_fn(|j| {
                    if j < kb && k0 + j < k {
                        xp.wrapping_add(off[k0 + j] + q0)
                    } else {
                        zeros.as_ptr()
                    }
                });
                let dr: [*mut f32; 24] = std::array::from_fn(|j| {
                    if j < kb && k0 + j < k {
                        dp.wrapping_add((k0 + j) * rows + o0)
                    } else {
                        sink.as_mut_ptr()
                    }
                });
                let y0 = yp.wrapping_add(q0 * rows + o0);
                // SAFETY: every row pointer is valid for qn reads (x) or the block's channels (d, sink: 64);
                // yt rows q0..q0 + qn hold the block's channels from o0 (masked last vector).
                unsafe {
                    macro_rules! by_k {
                        ($v:literal; $($k:literal),*) => {
                            match kb {
                                $($k => dw_v4::<$v, $k>(&xr, &dr, y0, rows, qn, mask),)*
                                _ => unreachable!(),
                            }
                        };
                    }
                    match vecs {
                        1 => by_k!(1; 1, 2, 3, 4, 6, 8, 9, 12, 16, 24),
                        2 => by_k!(2; 1, 2, 3, 4, 6, 8, 9, 12),
                        3 => by_k!(3; 1, 2, 3, 4, 6, 8),
                        _ => by_k!(4; 1, 2, 3, 4, 6),
                    }
                }
            }
        }
    }
}

/// A block of [`dw`]: `K` column-matrix rows (`x[j]`, `qn` pixels each) by `V` vectors of channels
/// (`yt` with rows `ldy` apart; `mask` for the last vector), added into `d[j][..16 V]`.
///
/// # Safety
/// AVX-512F; `x[j][..qn]` readable and `d[j][..]` writable for the masked channels, `yt[q * ldy..]` readable
/// for the masked channels, `q < qn`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dw_v4<const V: usize, const K: usize>(
    x: &[*const f32; 24],
    d: &[*mut f32; 24],
    yt: *const f32,
    ldy: usize,
    qn: usize,
    mask: u16,
) {
    use std::arch::x86_64::*;
    let m = |v: usize| if v + 1 == V { mask } else { u16::MAX };
    let mut acc = [[_mm512_setzero_ps(); V]; K];
    for (j, acc_j) in acc.iter_mut().enumerate() {
        for (v, a) in acc_j.iter_mut().enumerate() {
            // SAFETY: d[j][16 v..] for the masked lanes (the caller's bounds).
            *a = unsafe { _mm512_maskz_loadu_ps(m(v), d[j].add(16 * v)) };
        }
    }
    for q in 0..qn {
        // SAFETY: yt[q * ldy + 16 v..] for the masked lanes, x[j][q] (the caller's bounds).
        unsafe {
            let yq = yt.add(q * ldy);
            let yv: [__m512; V] = std::array::from_fn(|v| _mm512_maskz_loadu_ps(m(v), yq.add(16 * v)));
            for (j, acc_j) in acc.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*x[j].add(q));
                for v in 0..V {
                    acc_j[v] = _mm512_fmadd_ps(xv, yv[v], acc_j[v]);
                }
            }
        }
    }
    for (j, acc_j) in acc.iter().enumerate() {
        for (v, a) in acc_j.iter().enumerate() {
            // SAFETY: as for the loads above.
            unsafe { _mm512_mask_storeu_ps(d[j].add(16 * v), m(v), *a) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`igemm`] and [`dw`] alone on the strided layers' shapes, one image, one thread, GFLOP/s of the best of
    /// 5 x 40 calls (against `examples/sgemm_peak`'s one-thread figure): `cargo test --release -p
    /// facerecon-model --lib implicit::tests::kernels_bench -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn kernels_bench() {
        use std::time::Instant;
        for (name, big_c, small_c, side) in [
            ("enc2, e2, dec3, d2 (32 <-> 64 channels, 64 <-> 32 px)", 32, 64, 32),
            ("enc3, dec2 (64 <-> 64, 32 <-> 16 px)", 64, 64, 16),
            ("e3, d3 (64 <-> 128, 32 <-> 16 px)", 64, 128, 16),
            ("d1 (16 <-> 32, 128 <-> 64 px)", 16, 32, 64),
        ] {
            let g = Geom::stride2_3x3(big_c, small_c, side);
            let w: Vec<f32> = (0..small_c * g.col_rows())
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
                .collect();
            let im = Implicit::build(&g, &w).unwrap();
            let big: Vec<f32> = (0..g.big_len())
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            let small: Vec<f32> = (0..g.small_len())
                .map(|i| ((i * 17 % 71) as f32 - 35.0) / 25.0)
                .collect();
            let mut xp = vec![0f32; im.planes_len(&g)];
            im.planes(&g, &big, &mut xp);
            let mut out = vec![0f32; small_c * im.nr];
            let mut yt = vec![0f32; small_c * im.nr];
            im.widen_t(&g, &small, &mut yt);
            let mut d = vec![0f32; small_c * g.col_rows()];
            let reps = 40;
            let mut best = [f64::MAX; 2];
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    igemm(small_c, g.col_rows(), &im.w_t, &xp, &im.toff, im.nr, &mut out, im.nr);
                }
                best[0] = best[0].min(t.elapsed().as_secs_f64() / reps as f64);
                let t = Instant::now();
                for _ in 0..reps {
                    dw(small_c, g.col_rows(), &yt, &xp, &im.toff, g.small_h * im.pw, &mut d);
                }
                best[1] = best[1].min(t.elapsed().as_secs_f64() / reps as f64);
            }
            let flop = 2.0 * (small_c * g.col_rows() * g.small_hw()) as f64;
            println!(
                "{name}: igemm {:.1} GFLOP/s, dw {:.1} GFLOP/s",
                flop / best[0] / 1e9,
                flop / best[1] / 1e9
            );
        }
    }

    /// [`igemm`] and [`dw`] as dispatched (AVX-512 here) and in their portable forms, against f64 sums, for
    /// row counts on and off the blocks (1-13), column-matrix rows across a chunk (0-70) and offsets that
    /// overlap and start anywhere.
    #[test]
    fn kernels_match_f64_sums() {
        let x: Vec<f32> = (0..3000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        for (rows, k) in [(1, 1), (3, 27), (6, 9), (7, 70), (13, 5), (32, 0), (17, 64)] {
            let nr = 2 * STEP + 3 * LANES; // two whole steps and a 3-vector tail
            let off: Vec<usize> = (0..k).map(|j| (j * 53 + 7) % (x.len() - nr)).collect();
            let a: Vec<f32> = (0..k * rows).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
            let want: Vec<f64> = (0..rows * nr)
                .map(|i| {
                    let (m, q) = (i / nr, i % nr);
                    (0..k).map(|j| a[j * rows + m] as f64 * x[off[j] + q] as f64).sum()
                })
                .collect();
            let ldo = nr + 16;
            for scalar in [false, true] {
                let mut out = vec![f32::NAN; rows * ldo];
                if scalar {
                    igemm_scalar(rows, k, &a, &x, &off, nr, &mut out, ldo);
                } else {
                    igemm(rows, k, &a, &x, &off, nr, &mut out, ldo);
                }
                for m in 0..rows {
                    for q in 0..nr {
                        let (got, w) = (out[m * ldo + q] as f64, want[m * nr + q]);
                        assert!(
                            (got - w).abs() <= 1e-4 * (1.0 + w.abs()),
                            "igemm {rows}x{k} scalar {scalar} ({m}, {q})"
                        );
                    }
                }
            }
            // dW: d[k][m] += Σ_q x[off[k] + q] · yt[q][m] over nr = 80 pixels (not a whole chunk).
            let nr = 80;
            let yt: Vec<f32> = (0..nr * rows).map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0).collect();
            let want: Vec<f64> = (0..k * rows)
                .map(|i| {
                    let (j, m) = (i / rows, i % rows);
                    0.5 + (0..nr)
                        .map(|q| x[off[j] + q] as f64 * yt[q * rows + m] as f64)
                        .sum::<f64>()
                })
                .collect();
            for scalar in [false, true] {
                let mut d = vec![0.5f32; k * rows];
                if scalar {
                    dw_scalar(rows, k, &yt, &x, &off, nr, &mut d);
                } else {
                    dw(rows, k, &yt, &x, &off, nr, &mut d);
                }
                for (i, (got, w)) in d.iter().zip(&want).enumerate() {
                    assert!(
                        (*got as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "dw {rows}x{k} scalar {scalar} at {i}"
                    );
                }
            }
        }
    }
}
