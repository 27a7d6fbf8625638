//! Batched convolution kernels on plain slices: im2col + GEMM (the `gemm` crate) per image, images spread
//! over rayon's threads. Forward and gradients of conv2d and conv_transpose2d all reduce to three kernels
//! on a [`Geom`]: big -> small (`W · im2col`), small -> big (`col2im(Wᵀ ·)`) and [`backward`].
use super::geom::Geom;
use super::implicit::Implicit;
use super::simd::multiversion;
use super::transpose::{transpose, transpose_ld};
use super::Act;
use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;
use std::mem::MaybeUninit;

/// A matrix view: element (i, j) lives at `i * rs + j * cs`.
#[derive(Clone, Copy)]
pub(super) struct Mat {
    rs: usize,
    cs: usize,
}

/// Row-major with `cols` columns.
pub(super) fn rm(cols: usize) -> Mat {
    Mat { rs: cols, cs: 1 }
}

/// The transpose of a row-major matrix with `cols` columns.
pub(super) fn tr(cols: usize) -> Mat {
    Mat { rs: 1, cs: cols }
}

fn fits(rows: usize, cols: usize, m: Mat, len: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * m.rs + (cols - 1) * m.cs < len
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)`, bounds-checked.
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    dims: (usize, usize, usize),
    dst: &mut [f32],
    d: Mat,
    accumulate: bool,
    lhs: &[f32],
    l: Mat,
    rhs: &[f32],
    r: Mat,
    par: Parallelism,
) {
    // SAFETY: dst is a distinct &mut slice of `dst.len()` elements.
    unsafe { sgemm_raw(dims, dst.as_mut_ptr(), dst.len(), d, accumulate, lhs, l, rhs, r, par) }
}

/// [`sgemm`] into a raw destination of `dst_len` elements. With `accumulate = false` the destination is
/// only written, never read, so it may be uninitialised.
///
/// # Safety
/// `dst` must be valid for writes of `dst_len` elements that nothing else reads or writes during the
/// call, except elements this product does not touch; it must not alias `lhs` or `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm_raw(
    (m, n, k): (usize, usize, usize),
    dst: *mut f32,
    dst_len: usize,
    d: Mat,
    accumulate: bool,
    lhs: &[f32],
    l: Mat,
    rhs: &[f32],
    r: Mat,
    par: Parallelism,
) {
    assert!(fits(m, n, d, dst_len) && fits(m, k, l, lhs.len()) && fits(k, n, r, rhs.len()));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    // SAFETY: (i, j) is inside the destination (checked above).
                    unsafe { *dst.add(i * d.rs + j * d.cs) = 0.0 };
                }
            }
        }
        return;
    }
    // SAFETY: every index the kernel touches is inside its buffer (checked above); dst is valid and
    // unaliased for the touched elements (the caller's contract).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr(),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr(),
            r.cs as isize,
            r.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

thread_local! {
    // Per-thread scratch for column matrices: reused across calls so that the hot loop does not fault in
    // fresh pages. Taken out while in use, so a re-entrant call (rayon work stealing) just allocates.
    static SCRATCH_A: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_C: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SCRATCH_D: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

type Scratch = std::thread::LocalKey<RefCell<Vec<f32>>>;

/// Run `f` on `len` floats of the per-thread scratch `key` (taken out while in use, so nested calls with
/// another key are fine; grown as needed and kept for the next call). Shared with `implicit`.
pub(super) fn with_scratch<R>(key: &'static Scratch, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = key.with(|c| std::mem::take(&mut *c.borrow_mut()));
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    key.with(|c| {
        let mut slot = c.borrow_mut();
        if slot.len() < buf.len() {
            *slot = buf;
        }
    });
    r
}

/// Stride-1 convolutions without a column matrix ("shifted images"). In a copy of the big image padded to
/// `hp x wp` (`pad` zeros left and top, zeros right and below up to the window's reach), tap `(ky, kx)` of
/// small pixel `(oy, ox)` reads the padded pixel at flat offset `p + ky * dil * wp + kx * dil` of its
/// channel plane, where `p = oy * wp + ox` indexes the small image laid out `wp` wide (the columns
/// `ox >= small_w` are unused). So each tap is one GEMM over the channels whose pixel operand is the
/// padded image itself, shifted: `small' (+)= x_pad[shift] · W_tap` (pixels × big_c times big_c ×
/// small_c), and likewise for the gradients. Nine accumulating GEMMs replace im2col's nine copies of the
/// image (17 % of a unet step) and col2im's adds (6 %); the price is the `wp - small_w` unused columns.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shifted {
    /// Padded width: the small image's pixels are `wp` apart per row.
    wp: usize,
    /// Padded height.
    hp: usize,
}

impl Shifted {
    /// The layout for `g`, or `None` where the column matrix stays the better way: strided and pointwise
    /// convolutions, and images so narrow that the unused columns cost more than an eighth of the work
    /// (the unet's 16-pixel dilated bottleneck: 20 and 24 wide; measured slower than its column matrix).
    pub(super) fn of(g: &Geom) -> Option<Self> {
        if g.stride != 1 || g.is_pointwise() || g.small_w == 0 || g.small_h == 0 {
            return None;
        }
        let wp = (g.big_w + g.pad).max(g.small_w + (g.kw - 1) * g.dil);
        let hp = (g.big_h + g.pad).max(g.small_h + (g.kh - 1) * g.dil);
        (8 * wp <= 9 * g.small_w).then_some(Shifted { wp, hp })
    }

    fn plane(&self) -> usize {
        self.hp * self.wp
    }

    /// Small pixels in the `wp`-wide layout.
    fn m(&self, g: &Geom) -> usize {
        g.small_h * self.wp
    }

    /// Length of a padded big image: the last channel's shifted reads run `(kw - 1) * dil` past its plane.
    fn padded_len(&self, g: &Geom) -> usize {
        g.big_c * self.plane() + (g.kw - 1) * g.dil + FWD_STEP
    }

    /// Whether the direct kernels (see [`DIRECT_MAX_C`]) serve `g`.
    fn direct(g: &Geom) -> bool {
        cfg!(target_arch = "x86_64")
            && g.small_c <= DIRECT_MAX_C
            && g.kh * g.kw == 9
            && super::simd::level() == super::simd::Level::V4
    }

    /// The tap offsets of a 3x3 kernel.
    fn offsets9(&self, g: &Geom) -> [usize; 9] {
        std::array::from_fn(|t| self.offset(g, t))
    }

    /// The direct kernels' copy of the small image: channel `o`'s `wp`-wide rows from `o * ld + lead` on,
    /// zeros around them (`lead` before, up to the next channel after), so that the transposed taps may
    /// read `lead` elements before and a whole padded plane after. Returns (`lead`, `ld`).
    fn small_ext(&self, g: &Geom, small: &[f32], ext: &mut [f32]) -> (usize, usize) {
        let (lead, ld) = self.ext_dims(g);
        for c in 0..g.small_c {
            zero_around(&mut ext[c * ld..][..ld], lead, g.small_w, g.small_h, self.wp);
        }
        ext[g.small_c * ld..].fill(0.0);
        for c in 0..g.small_c {
            for y in 0..g.small_h {
                ext[c * ld + lead + y * self.wp..][..g.small_w]
                    .copy_from_slice(&small[c * g.small_hw() + y * g.small_w..][..g.small_w]);
            }
        }
        (lead, ld)
    }

    fn ext_dims(&self, g: &Geom) -> (usize, usize) {
        let lead = self.offset(g, g.kh * g.kw - 1);
        (lead, lead + self.plane().max(self.m(g)) + 2 * DX_STEP)
    }

    /// Flat offset of tap `t` (`ky * kw + kx`).
    fn offset(&self, g: &Geom, t: usize) -> usize {
        (t / g.kw) * g.dil * self.wp + (t % g.kw) * g.dil
    }

    /// `xp` = `big` padded (every element written).
    fn pad(&self, g: &Geom, big: &[f32], xp: &mut [f32]) {
        let plane = self.plane();
        let row = |c: usize, y: usize| c * plane + (y + g.pad) * self.wp + g.pad;
        for c in 0..g.big_c {
            zero_around(&mut xp[c * plane..][..plane], row(0, 0), g.big_w, g.big_h, self.wp);
        }
        xp[g.big_c * plane..].fill(0.0);
        for c in 0..g.big_c {
            for y in 0..g.big_h {
                let src = &big[c * g.big_hw() + y * g.big_w..][..g.big_w];
                xp[row(c, y)..][..g.big_w].copy_from_slice(src);
            }
        }
    }

    /// `big` = the interior of the padded `xp`, whose channels are `ld` apart (the adjoint's crop).
    fn crop(&self, g: &Geom, xp: &[f32], ld: usize, big: &mut [MaybeUninit<f32>]) {
        for c in 0..g.big_c {
            for y in 0..g.big_h {
                let src = &xp[c * ld + (y + g.pad) * self.wp + g.pad..][..g.big_w];
                let dst = &mut big[c * g.big_hw() + y * g.big_w..][..g.big_w];
                for (d, s) in dst.iter_mut().zip(src) {
                    d.write(*s);
                }
            }
        }
    }

    /// `wide` (`small_c x m`) = `small` laid out `wp` wide, the unused columns zero.
    fn widen(&self, g: &Geom, small: &[f32], wide: &mut [f32]) {
        let sw = g.small_w;
        for c in 0..g.small_c {
            for y in 0..g.small_h {
                let row = &mut wide[(c * g.small_h + y) * self.wp..][..self.wp];
                row[..sw].copy_from_slice(&small[c * g.small_hw() + y * sw..][..sw]);
                row[sw..].fill(0.0);
            }
        }
    }

    /// `out` = `act(W · im2col(big) + bias)` for one image (conv2d's forward, the transposed convolution's
    /// input gradient), every element written.
    #[allow(clippy::too_many_arguments)]
    fn big_to_small(
        &self,
        g: &Geom,
        big: &[f32],
        w: &[f32],
        out: &mut [MaybeUninit<f32>],
        bias: Option<&[f32]>,
        act: Option<Act>,
        par: Parallelism,
    ) {
        let (m, kk, rows, plane) = (self.m(g), g.kh * g.kw, g.col_rows(), self.plane());
        with_scratch(&SCRATCH_C, self.padded_len(g), |xp| {
            self.pad(g, big, xp);
            // The direct kernel's channels are `m` rounded up to whole vectors apart.
            let ws = if Self::direct(g) {
                m.next_multiple_of(FWD_STEP)
            } else {
                m
            };
            with_scratch(&SCRATCH_D, g.small_c * ws, |wide| {
                if Self::direct(g) {
                    direct_fwd(g.small_c, g.big_c, xp, plane, &self.offsets9(g), w, ws, wide);
                } else {
                    for t in 0..kk {
                        // wide (pixel p, small channel o) (+)= Σ_c x_pad[c][p + offset] · w[o, c, t].
                        sgemm(
                            (m, g.small_c, g.big_c),
                            wide,
                            Mat { rs: 1, cs: m },
                            t > 0,
                            &xp[self.offset(g, t)..],
                            Mat { rs: 1, cs: plane },
                            &w[t..],
                            Mat { rs: kk, cs: rows },
                            par,
                        );
                    }
                }
                let shw = g.small_hw();
                for c in 0..g.small_c {
                    let dst = &mut out[c * shw..][..shw];
                    crop_bias_act(
                        &wide[c * ws..],
                        self.wp,
                        dst,
                        g.small_w,
                        bias.map_or(0.0, |b| b[c]),
                        act,
                    );
                }
            })
        })
    }

    /// One image's share of the gradients: `dw_t += (dW in [`backward`]'s column-major layout)` when given,
    /// and the big side's input gradient `dbig = col2im(Wᵀ · small)` (every element written) when given.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        g: &Geom,
        big: &[f32],
        small: &[f32],
        w: &[f32],
        dw_t: Option<&mut [f32]>,
        dbig: Option<&mut [MaybeUninit<f32>]>,
        par: Parallelism,
    ) {
        let (m, kk, rows, plane) = (self.m(g), g.kh * g.kw, g.col_rows(), self.plane());
        if Self::direct(g) {
            let (lead, ld) = self.ext_dims(g);
            return with_scratch(&SCRATCH_D, g.small_c * ld, |ext| {
                self.small_ext(g, small, ext);
                let offs = self.offsets9(g);
                if let Some(dw) = dw_t {
                    with_scratch(&SCRATCH_C, self.padded_len(g), |xp| {
                        self.pad(g, big, xp);
                        direct_dw(g.small_c, g.big_c, &ext[lead..], ld, m, xp, plane, &offs, dw);
                    });
                }
                if let Some(dbig) = dbig {
                    // Channels `plane + LANES` apart: the last vector of a channel may run past its plane.
                    let dld = plane + DX_STEP;
                    with_scratch(&SCRATCH_C, g.big_c * dld, |dp| {
                        // Only the interior rows are read back by the crop.
                        let (lo, hi) = (g.pad * self.wp, (g.pad + g.big_h) * self.wp);
                        direct_dx(g.small_c, g.big_c, ext, ld, lead, &offs, w, dp, dld, (lo, hi));
                        self.crop(g, dp, dld, dbig);
                    });
                }
            });
        }
        with_scratch(&SCRATCH_D, g.small_c * m, |wide| {
            self.widen(g, small, wide);
            if let Some(dw) = dw_t {
                with_scratch(&SCRATCH_C, self.padded_len(g), |xp| {
                    self.pad(g, big, xp);
                    with_scratch(&SCRATCH_B, m * g.small_c, |wide_t| {
                        transpose(wide, g.small_c, m, wide_t);
                        for t in 0..kk {
                            // dW[o, c, t] += Σ_p small[o][p] · x_pad[c][p + offset], stored at
                            // (c * kk + t) * small_c + o; the unused columns of `wide` are zero.
                            sgemm(
                                (g.small_c, g.big_c, m),
                                &mut dw[t * g.small_c..],
                                Mat {
                                    rs: 1,
                                    cs: kk * g.small_c,
                                },
                                true,
                                wide_t,
                                tr(g.small_c),
                                &xp[self.offset(g, t)..],
                                Mat { rs: 1, cs: plane },
                                par,
                            );
                        }
                    })
                });
            }
            if let Some(dbig) = dbig {
                with_scratch(&SCRATCH_C, self.padded_len(g), |dp| {
                    dp.fill(0.0);
                    for t in 0..kk {
                        // dx_pad[c][p + offset] += Σ_o small[o][p] · w[o, c, t] (zero unused columns).
                        sgemm(
                            (m, g.big_c, g.small_c),
                            &mut dp[self.offset(g, t)..],
                            Mat { rs: 1, cs: plane },
                            true,
                            wide,
                            Mat { rs: 1, cs: m },
                            &w[t..],
                            Mat { rs: rows, cs: kk },
                            par,
                        );
                    }
                    self.crop(g, dp, plane, dbig);
                });
            }
        })
    }
}

/// Vector lanes the direct kernels work in (one AVX-512 register of f32).
const LANES: usize = 16;

/// Small sides with at most this many channels (the unet's 3-channel `out` layer) use direct 3x3 kernels
/// (AVX-512 only) instead of the shifted GEMMs: with `m` or `k` = 3 the `gemm` crate's micro-kernel leaves
/// most of its lanes idle (the `out` layer ran at 22 GFLOP/s against ~100-180 for the other layers).
const DIRECT_MAX_C: usize = 3;

/// Pixels per step of [`direct_fwd`] (4 vectors: each broadcast weight serves 4 multiply-adds).
const FWD_STEP: usize = 4 * LANES;

/// Pixels per step of [`direct_dx`] (2 vectors).
const DX_STEP: usize = 2 * LANES;

/// Big channels per block of [`direct_dx`]: each loaded vector of the small image serves this many.
const DX_BLOCK: usize = 8;

/// Direct 3x3 forward (`small_c <= DIRECT_MAX_C`, AVX-512): `out[o][q] = Σ_c Σ_t w[o, c, t] · xp[c][q + offs[t]]`
/// for `q < m` (the `wp`-wide layout of [`Shifted`], `m` a multiple of [`FWD_STEP`]), `out`'s channels `m`
/// apart. `xp` must hold `(big_c - 1) * plane + m + offs[8]` elements.
#[allow(clippy::too_many_arguments)]
fn direct_fwd(
    small_c: usize,
    big_c: usize,
    xp: &[f32],
    plane: usize,
    offs: &[usize; 9],
    w: &[f32],
    m: usize,
    out: &mut [f32],
) {
    assert!(m.is_multiple_of(FWD_STEP) && big_c > 0 && offs.iter().all(|&o| o <= offs[8]));
    assert!(xp.len() >= (big_c - 1) * plane + m + offs[8] && w.len() >= small_c * big_c * 9);
    assert!(out.len() >= small_c * m && super::simd::level() == super::simd::Level::V4);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX-512F (asserted above); every index the kernels touch is inside its slice
    // (asserted above: the largest x read is (big_c - 1) * plane + (m - 1) + offs[8]).
    unsafe {
        match small_c {
            1 => direct_fwd_v4::<1>(big_c, xp, plane, offs, w, m, out),
            2 => direct_fwd_v4::<2>(big_c, xp, plane, offs, w, m, out),
            3 => direct_fwd_v4::<3>(big_c, xp, plane, offs, w, m, out),
            _ => unreachable!("direct kernels take at most {DIRECT_MAX_C} small channels"),
        }
    }
}

/// See [`direct_fwd`].
///
/// # Safety
/// AVX-512F, and the bounds asserted by [`direct_fwd`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn direct_fwd_v4<const CO: usize>(
    big_c: usize,
    xp: &[f32],
    plane: usize,
    offs: &[usize; 9],
    w: &[f32],
    m: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    const V: usize = FWD_STEP / LANES;
    let rows = big_c * 9;
    let (x0, w0, o0) = (xp.as_ptr(), w.as_ptr(), out.as_mut_ptr());
    for q in (0..m).step_by(FWD_STEP) {
        let mut acc = [[_mm512_setzero_ps(); V]; CO];
        for c in 0..big_c {
            for (t, &off) in offs.iter().enumerate() {
                // SAFETY: c * plane + q + off + FWD_STEP <= (big_c - 1) * plane + m + offs[8] <= xp.len().
                let x: [__m512; V] =
                    std::array::from_fn(|v| unsafe { _mm512_loadu_ps(x0.add(c * plane + q + off + v * LANES)) });
                for (o, a) in acc.iter_mut().enumerate() {
                    // SAFETY: o * rows + c * 9 + t < CO * big_c * 9 <= w.len().
                    let wv = _mm512_set1_ps(unsafe { *w0.add(o * rows + c * 9 + t) });
                    for v in 0..V {
                        a[v] = _mm512_fmadd_ps(wv, x[v], a[v]);
                    }
                }
            }
        }
        for (o, a) in acc.iter().enumerate() {
            for (v, av) in a.iter().enumerate() {
                // SAFETY: o * m + q + (v + 1) * LANES <= CO * m <= out.len().
                unsafe { _mm512_storeu_ps(o0.add(o * m + q + v * LANES), *av) };
            }
        }
    }
}

/// Direct 3x3 weight gradient (`small_c <= DIRECT_MAX_C`, AVX-512): `dw[(c * 9 + t) * small_c + o] +=
/// Σ_q small[o][q] · xp[c][q + offs[t]]` over `q < m` rounded up to [`LANES`]; `small`'s channels are `ld`
/// apart and zero from `m` on (and in the unused columns).
#[allow(clippy::too_many_arguments)]
fn direct_dw(
    small_c: usize,
    big_c: usize,
    small: &[f32],
    ld: usize,
    m: usize,
    xp: &[f32],
    plane: usize,
    offs: &[usize; 9],
    dw: &mut [f32],
) {
    let mr = m.next_multiple_of(LANES);
    assert!(big_c > 0 && small_c > 0 && offs.iter().all(|&o| o <= offs[8]));
    assert!(small.len() >= (small_c - 1) * ld + mr && xp.len() >= (big_c - 1) * plane + mr + offs[8]);
    assert!(dw.len() >= big_c * 9 * small_c && super::simd::level() == super::simd::Level::V4);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F (asserted); the largest reads are small[(small_c - 1) * ld + mr - 1] and
    // xp[(big_c - 1) * plane + mr - 1 + offs[8]], inside their slices (asserted).
    unsafe {
        match small_c {
            1 => direct_dw_v4::<1>(big_c, small, ld, mr, xp, plane, offs, dw),
            2 => direct_dw_v4::<2>(big_c, small, ld, mr, xp, plane, offs, dw),
            3 => direct_dw_v4::<3>(big_c, small, ld, mr, xp, plane, offs, dw),
            _ => unreachable!("direct kernels take at most {DIRECT_MAX_C} small channels"),
        }
    }
}

/// See [`direct_dw`] (`mr`: `m` rounded up to [`LANES`]).
///
/// # Safety
/// AVX-512F, and the bounds asserted by [`direct_dw`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn direct_dw_v4<const CO: usize>(
    big_c: usize,
    small: &[f32],
    ld: usize,
    mr: usize,
    xp: &[f32],
    plane: usize,
    offs: &[usize; 9],
    dw: &mut [f32],
) {
    use std::arch::x86_64::*;
    let (s0, x0) = (small.as_ptr(), xp.as_ptr());
    for c in 0..big_c {
        let mut acc = [[_mm512_setzero_ps(); 9]; CO];
        for q in (0..mr).step_by(LANES) {
            // SAFETY: o * ld + q + LANES <= (CO - 1) * ld + mr <= small.len().
            let d: [__m512; CO] = std::array::from_fn(|o| unsafe { _mm512_loadu_ps(s0.add(o * ld + q)) });
            for (t, &off) in offs.iter().enumerate() {
                // SAFETY: c * plane + q + off + LANES <= (big_c - 1) * plane + mr + offs[8] <= xp.len().
                let x = unsafe { _mm512_loadu_ps(x0.add(c * plane + q + off)) };
                for (o, a) in acc.iter_mut().enumerate() {
                    a[t] = _mm512_fmadd_ps(d[o], x, a[t]);
                }
            }
        }
        for (o, a) in acc.iter().enumerate() {
            for (t, v) in a.iter().enumerate() {
                dw[(c * 9 + t) * CO + o] += _mm512_reduce_add_ps(*v);
            }
        }
    }
}

/// Direct 3x3 input gradient of the big side (`small_c <= DIRECT_MAX_C`, AVX-512): `dp[c][r] = Σ_o Σ_t
/// w[o, c, t] · ext[o * ld + lead + r - offs[t]]` for `r` in `[lo, hi)` rounded up to [`DX_STEP`] (see
/// [`Shifted::small_ext`]); `dp`'s channels are `dld` apart, `dld >= hi + DX_STEP`.
#[allow(clippy::too_many_arguments)]
fn direct_dx(
    small_c: usize,
    big_c: usize,
    ext: &[f32],
    ld: usize,
    lead: usize,
    offs: &[usize; 9],
    w: &[f32],
    dp: &mut [f32],
    dld: usize,
    (lo, hi): (usize, usize),
) {
    assert!(big_c > 0 && small_c > 0 && lo <= hi && lead >= offs[8] && dld >= hi + DX_STEP);
    assert!(ext.len() >= (small_c - 1) * ld + lead + hi + DX_STEP && w.len() >= small_c * big_c * 9);
    assert!(dp.len() >= big_c * dld && super::simd::level() == super::simd::Level::V4);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: AVX-512F (asserted); every read is ext[o * ld + lead + r - off + i] with r < hi + DX_STEP - i,
    // off <= lead, and every write dp[c * dld + r + i] with r + i < hi + DX_STEP <= dld (asserted).
    unsafe {
        match small_c {
            1 => direct_dx_v4::<1>(big_c, ext, ld, lead, offs, w, dp, dld, lo, hi),
            2 => direct_dx_v4::<2>(big_c, ext, ld, lead, offs, w, dp, dld, lo, hi),
            3 => direct_dx_v4::<3>(big_c, ext, ld, lead, offs, w, dp, dld, lo, hi),
            _ => unreachable!("direct kernels take at most {DIRECT_MAX_C} small channels"),
        }
    }
}

/// See [`direct_dx`].
///
/// # Safety
/// AVX-512F, and the bounds asserted by [`direct_dx`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn direct_dx_v4<const CO: usize>(
    big_c: usize,
    ext: &[f32],
    ld: usize,
    lead: usize,
    offs: &[usize; 9],
    w: &[f32],
    dp: &mut [f32],
    dld: usize,
    lo: usize,
    hi: usize,
) {
    use std::arch::x86_64::*;
    const V: usize = DX_STEP / LANES;
    let rows = big_c * 9;
    let (e0, d0) = (ext.as_ptr(), dp.as_mut_ptr());
    for c0 in (0..big_c).step_by(DX_BLOCK) {
        let nc = DX_BLOCK.min(big_c - c0);
        // wv[o][t][j] = w[o, c0 + j, t] (zero past the last channel).
        let mut wv = [[[0f32; DX_BLOCK]; 9]; CO];
        for (o, wo) in wv.iter_mut().enumerate() {
            for (t, wt) in wo.iter_mut().enumerate() {
                for (j, v) in wt.iter_mut().enumerate().take(nc) {
                    *v = w[o * rows + (c0 + j) * 9 + t];
                }
            }
        }
        for r in (lo..hi).step_by(DX_STEP) {
            let mut acc = [[_mm512_setzero_ps(); V]; DX_BLOCK];
            for (o, wo) in wv.iter().enumerate() {
                for (t, &off) in offs.iter().enumerate() {
                    let i = o * ld + lead + r - off;
                    // SAFETY: i + DX_STEP <= (CO - 1) * ld + lead + hi + DX_STEP <= ext.len() (r < hi).
                    let x: [__m512; V] = std::array::from_fn(|v| unsafe { _mm512_loadu_ps(e0.add(i + v * LANES)) });
                    for (j, a) in acc.iter_mut().enumerate() {
                        let wj = _mm512_set1_ps(wo[t][j]);
                        for v in 0..V {
                            a[v] = _mm512_fmadd_ps(wj, x[v], a[v]);
                        }
                    }
                }
            }
            for (j, a) in acc.iter().enumerate().take(nc) {
                for (v, av) in a.iter().enumerate() {
                    // SAFETY: (c0 + j) * dld + r + (v + 1) * LANES <= (big_c - 1) * dld + hi + DX_STEP
                    // <= big_c * dld <= dp.len().
                    unsafe { _mm512_storeu_ps(d0.add((c0 + j) * dld + r + v * LANES), *av) };
                }
            }
        }
    }
}

/// A stride-1 geometry for the tests.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub(super) fn test_geom(
    big_c: usize,
    big_h: usize,
    big_w: usize,
    small_c: usize,
    small_h: usize,
    small_w: usize,
    k: usize,
    pad: usize,
    dil: usize,
) -> Geom {
    Geom {
        big_c,
        big_h,
        big_w,
        small_c,
        small_h,
        small_w,
        kh: k,
        kw: k,
        stride: 1,
        pad,
        dil,
    }
}

/// Whether `g` takes the [`Shifted`] path (for the tests).
#[cfg(test)]
pub(super) fn takes_shifted_path(g: &Geom) -> bool {
    Shifted::of(g).is_some()
}

/// Runs `f` on im2col(big) — the image itself for pointwise convolutions.
fn with_col<R>(g: &Geom, big: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    if g.is_pointwise() {
        return f(big);
    }
    with_scratch(&SCRATCH_A, g.col_len(), |col| {
        g.im2col(big, col);
        f(col)
    })
}

/// Floats of one column-matrix chunk (512 KiB): a layer whose column matrix is larger makes it a band of
/// small rows at a time, each consumed by its GEMM while it is still in L2 (2 MiB per core here). Whole,
/// the unet's column matrices reach 11 MB per image: written by im2col and read back by the GEMM's packing
/// from L3/DRAM, they made im2col 17 % and col2im 8 % of a unet step (perf, batch 32, 2 threads).
const COL_CHUNK: usize = 1 << 17;

/// Whether `g`'s column matrix is made in bands of [`chunk_rows`] small rows (see [`COL_CHUNK`]).
pub(super) fn chunked(g: &Geom) -> bool {
    !g.is_pointwise() && g.col_len() > COL_CHUNK
}

/// Small rows per column band of `g` (at least one).
pub(super) fn chunk_rows(g: &Geom) -> usize {
    (COL_CHUNK / (g.col_rows() * g.small_w).max(1)).max(1)
}

/// `[o0, o1)` cut into consecutive bands of at most `step` rows.
fn bands(o0: usize, o1: usize, step: usize) -> impl Iterator<Item = (usize, usize)> {
    (o0..o1)
        .step_by(step.max(1))
        .map(move |a| (a, (a + step.max(1)).min(o1)))
}

pub(super) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Multiply-adds of one image's GEMM below which it runs on one thread even when there are fewer images
/// than threads: waking the other threads cost more than it saves.
const SPLIT_MIN_MACS: usize = 1 << 20;

/// Into how many parallel pieces the forward pass splits each image: one when the images already keep
/// every thread busy (training batches, batched inference), else up to one per idle thread (batch 1:
/// camera software's latency case). The pieces are made by the kernels themselves (rows of the output
/// for conv2d, output channels for the transposed convolution), not by the `gemm` crate's threads:
/// letting `gemm` split each GEMM was slower than one thread (3.2 vs 2.0 ms for the seed at batch 1, 2
/// threads), since im2col/col2im stayed serial and `gemm` re-split every call.
fn split_parts(n: usize, g: &Geom, units: usize) -> usize {
    let t = threads();
    let macs = g.small_c * g.small_hw() * g.col_rows();
    if n >= t || macs < SPLIT_MIN_MACS {
        1
    } else {
        (t / n.max(1)).clamp(1, units.max(1))
    }
}

/// `[0, total)` cut into `parts` near-equal ranges; range `k`.
fn part_range(total: usize, parts: usize, k: usize) -> (usize, usize) {
    (total * k / parts, total * (k + 1) / parts)
}

/// The backward pass parallelises over images; with fewer images than threads (rare in training) the
/// `gemm` crate may split the larger GEMMs itself.
const GEMM_PAR_MIN_MACS: usize = 1 << 26;

/// Parallelism inside one GEMM of geometry `g` in the backward pass: see [`GEMM_PAR_MIN_MACS`].
fn gemm_par(parallel_items: usize, g: &Geom) -> Parallelism {
    let t = threads();
    let macs = g.small_c * g.small_hw() * g.col_rows();
    if parallel_items >= t || t == 1 || macs < GEMM_PAR_MIN_MACS {
        Parallelism::None
    } else {
        Parallelism::Rayon(t)
    }
}

/// A raw output pointer shared by the pieces of one image, which write disjoint columns of it.
#[derive(Clone, Copy)]
struct SharedOut {
    ptr: *mut f32,
    len: usize,
}
// SAFETY: used for one image's output slot at a time; `big_to_small`'s pieces write disjoint element
// sets of it (see there).
unsafe impl Send for SharedOut {}
// SAFETY: a shared `&SharedOut` only hands out copies of the pointer; every write through one follows the
// rule above (disjoint element sets per piece).
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `offset` elements in and the length from there. (A method, so that closures capture
    /// the whole `Send` struct rather than its raw-pointer field.)
    fn at(self, offset: usize) -> (*mut f32, usize) {
        assert!(offset <= self.len);
        // SAFETY: `offset <= len`, so the result stays inside (or one past) the allocation.
        (unsafe { self.ptr.add(offset) }, self.len - offset)
    }
}

/// Initialises a slot with zeros, or with a per-channel `bias` over planes of `plane` elements.
fn init<'a>(slot: &'a mut [MaybeUninit<f32>], plane: usize, bias: Option<&[f32]>) -> &'a mut [f32] {
    match bias {
        Some(bias) => {
            for (row, b) in slot.chunks_mut(plane.max(1)).zip(bias) {
                row.fill(MaybeUninit::new(*b));
            }
        }
        None => slot.fill(MaybeUninit::new(0.0)),
    }
    // SAFETY: every element was written above (bias has one value per plane; callers pass
    // `slot.len() == bias.len() * plane`).
    unsafe { &mut *(slot as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// A batch output of `n` images of `len` elements, each written completely by `f` (which must write
/// every element of its slot: [`col2im_of_wt_set`] does), in parallel, with no zeroing pass.
fn per_image_written(n: usize, len: usize, f: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * len);
    out.spare_capacity_mut()[..n * len]
        .par_chunks_mut(len.max(1))
        .enumerate()
        .for_each(|(b, slot)| f(b, slot));
    // SAFETY: each of the `n` slots was written completely by `f` (its contract).
    unsafe { out.set_len(n * len) };
    out
}

/// conv2d forward: `small[b] = W · im2col(big[b]) (+ bias per small channel)`, `n` images.
/// `act`: an activation applied to each image's output while it is still in cache.
pub(crate) fn big_to_small(
    g: &Geom,
    n: usize,
    big: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Option<Act>,
) -> Vec<f32> {
    let (shw, rows) = (g.small_hw(), g.col_rows());
    let parts = if g.is_pointwise() {
        1
    } else {
        split_parts(n, g, g.small_h)
    };
    if let Some(b) = bias {
        assert_eq!(b.len(), g.small_c, "bias length");
    }
    let bias_of = |c: usize| bias.map_or(0.0, |b| b[c]);
    let implicit = if parts == 1 { Implicit::for_forward(g, w) } else { None };
    per_image_written(n, g.small_len(), |b, slot| {
        let xb = &big[b * g.big_len()..][..g.big_len()];
        if let Some(im) = &implicit {
            return im.big_to_small(g, xb, slot, bias, act);
        }
        if parts == 1 {
            if let Some(sh) = Shifted::of(g) {
                sh.big_to_small(g, xb, w, slot, bias, act, Parallelism::None);
                return;
            }
        }
        // The GEMM writes the whole output without reading it (no zero or bias fill first); bias and
        // activation are then applied per channel row while it is in cache.
        let out = SharedOut {
            ptr: slot.as_mut_ptr().cast::<f32>(),
            len: slot.len(),
        };
        if parts == 1 && !chunked(g) {
            with_col(g, xb, |col| {
                // SAFETY: `out` is this image's slot, used by nothing else during the call; the GEMM
                // (accumulate = false) writes all small_c x shw elements without reading them.
                unsafe {
                    sgemm_raw(
                        (g.small_c, shw, rows),
                        out.ptr,
                        out.len,
                        rm(shw),
                        false,
                        w,
                        rm(rows),
                        col,
                        rm(shw),
                        Parallelism::None,
                    )
                };
            });
            // SAFETY: every element was written by the GEMM above.
            let ob = unsafe { std::slice::from_raw_parts_mut(out.ptr, out.len) };
            for (c, row) in ob.chunks_mut(shw.max(1)).enumerate() {
                bias_act(row, bias_of(c), act);
            }
            return;
        }
        // Pieces of output rows [o0, o1): each makes its own columns (band by band when they are large)
        // and writes output columns [o0 * small_w, o1 * small_w) of every channel, which no other piece
        // touches.
        let band = |o0: usize, o1: usize| {
            let (p0, pixels) = (o0 * g.small_w, (o1 - o0) * g.small_w);
            with_scratch(&SCRATCH_A, rows * pixels, |col| {
                g.im2col_rows(xb, col, o0, o1);
                let (dst, len) = out.at(p0);
                // SAFETY: `out` points to this image's slot (alive, and accessed only by the pieces until
                // they join); the GEMM writes (c, p0 + j) for c < small_c, j < pixels, inside it (checked
                // by `sgemm_raw`), disjoint from every other piece's columns, without reading them.
                unsafe {
                    sgemm_raw(
                        (g.small_c, pixels, rows),
                        dst,
                        len,
                        rm(shw),
                        false,
                        w,
                        rm(rows),
                        col,
                        rm(pixels),
                        Parallelism::None,
                    )
                };
                for c in 0..g.small_c {
                    let (seg, _) = out.at(c * shw + p0);
                    // SAFETY: this piece's columns of channel c: written just above, disjoint from the
                    // other pieces' (their columns are other ranges of each row).
                    bias_act(unsafe { std::slice::from_raw_parts_mut(seg, pixels) }, bias_of(c), act);
                }
            });
        };
        let piece = |k: usize| {
            let (r0, r1) = part_range(g.small_h, parts, k);
            let step = if chunked(g) { chunk_rows(g) } else { r1 - r0 };
            for (o0, o1) in bands(r0, r1, step) {
                band(o0, o1);
            }
        };
        if parts == 1 {
            piece(0);
        } else {
            (0..parts).into_par_iter().for_each(piece);
        }
    })
}

/// conv_transpose2d forward: `big[b] = act(col2im(Wᵀ · small[b]) + bias per big channel)`, `n` images.
pub(crate) fn small_to_big(
    g: &Geom,
    n: usize,
    small: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Option<Act>,
) -> Vec<f32> {
    let parts = split_parts(n, g, g.big_c);
    if let Some(b) = bias {
        assert_eq!(b.len(), g.big_c, "bias length");
    }
    let implicit = if parts == 1 {
        Implicit::for_small_to_big(g, w)
    } else {
        None
    };
    per_image_written(n, g.big_len(), |b, slot| {
        let sb = &small[b * g.small_len()..][..g.small_len()];
        if let Some(im) = &implicit {
            return im.small_to_big(g, sb, slot, bias, act);
        }
        if parts == 1 {
            col2im_of_wt_set(g, w, g.col_rows(), sb, slot, bias, act, Parallelism::None);
            return;
        }
        // Pieces of output channels: channel range [c0, c1) is the transposed convolution with the
        // weight's columns for those channels, into that slice of the output.
        let kk = g.kh * g.kw;
        let mut pieces = Vec::with_capacity(parts);
        let mut rest = &mut slot[..];
        for k in 0..parts {
            let (c0, c1) = part_range(g.big_c, parts, k);
            let (head, tail) = rest.split_at_mut((c1 - c0) * g.big_hw());
            pieces.push((c0, c1, head));
            rest = tail;
        }
        pieces.into_par_iter().for_each(|(c0, c1, out)| {
            let sub = Geom { big_c: c1 - c0, ..*g };
            let b = bias.map(|b| &b[c0..c1]);
            col2im_of_wt_set(&sub, &w[c0 * kk..], g.col_rows(), sb, out, b, act, Parallelism::None);
        });
    })
}

multiversion! {
    /// `v = act(v + b)` in place (one pass; branch-free so that it vectorises).
    pub(super) fn bias_act(v: &mut [f32], b: f32, act: Option<Act>) = bias_act_body
}

/// A loop over elements, run by [`with_bias_act`] with the per-element map it picked.
trait ElementLoop {
    fn run(self, f: impl Fn(f32) -> f32);
}

/// Runs `job` with `x -> act(x + b)`, the one definition [`bias_act`] and [`crop_bias_act`] share. The
/// activation is matched once per call, so each loop the compiler generates holds a single closure
/// (branch-free: it vectorises). `None` with a zero bias is the identity, not `x + 0.0`, which would turn
/// -0.0 into +0.0.
#[inline(always)]
fn with_bias_act<const FMA: bool>(b: f32, act: Option<Act>, job: impl ElementLoop) {
    match act {
        Some(Act::LeakyRelu(slope)) => job.run(move |x| {
            let y = x + b;
            y * if y > 0.0 { 1.0 } else { slope }
        }),
        Some(Act::Sigmoid) => job.run(move |x| super::activation::sigmoid::<FMA>(x + b)),
        None if b != 0.0 => job.run(move |x| x + b),
        None => job.run(|x| x),
    }
}

#[inline(always)]
fn bias_act_body<const FMA: bool>(v: &mut [f32], b: f32, act: Option<Act>) {
    struct InPlace<'a>(&'a mut [f32]);
    impl ElementLoop for InPlace<'_> {
        #[inline(always)]
        fn run(self, f: impl Fn(f32) -> f32) {
            self.0.iter_mut().for_each(|x| *x = f(*x));
        }
    }
    if act.is_some() || b != 0.0 {
        with_bias_act::<FMA>(b, act, InPlace(v));
    }
}

multiversion! {
    /// `dst[y * w + x] = act(src[y * ld + x] + b)` for the `dst.len() / w` rows of `dst`: the crop of a
    /// wide GEMM output (rows `ld` apart) fused with [`bias_act`], one pass instead of a copy and a pass in
    /// place; every element of `dst` written, with [`bias_act`]'s values to the bit.
    pub(super) fn crop_bias_act(
        src: &[f32],
        ld: usize,
        dst: &mut [MaybeUninit<f32>],
        w: usize,
        b: f32,
        act: Option<Act>,
    ) = crop_bias_act_body
}

#[inline(always)]
fn crop_bias_act_body<const FMA: bool>(
    src: &[f32],
    ld: usize,
    dst: &mut [MaybeUninit<f32>],
    w: usize,
    b: f32,
    act: Option<Act>,
) {
    struct Crop<'a> {
        src: &'a [f32],
        ld: usize,
        dst: &'a mut [MaybeUninit<f32>],
        w: usize,
    }
    impl ElementLoop for Crop<'_> {
        #[inline(always)]
        fn run(self, f: impl Fn(f32) -> f32) {
            for (y, d) in self.dst.chunks_exact_mut(self.w).enumerate() {
                let row = &self.src[y * self.ld..][..self.w];
                d.iter_mut().zip(row).for_each(|(d, x)| {
                    d.write(f(*x));
                });
            }
        }
    }
    if w > 0 {
        with_bias_act::<FMA>(b, act, Crop { src, ld, dst, w });
    }
}

/// Zeroes every element of `buf` except the `rows` runs `buf[at + y * rs..][..len]` (`rs >= len`), which
/// the caller then fills: the zero padding around an image copied into a larger layout, written once
/// instead of zeroing the whole buffer first. May also zero up to 7 elements at the start of a run.
pub(super) fn zero_around(buf: &mut [f32], at: usize, len: usize, rows: usize, rs: usize) {
    if rows == 0 || len == 0 {
        buf.fill(0.0);
        return;
    }
    assert!(
        rs >= len && at + (rows - 1) * rs + len <= buf.len(),
        "zero_around: runs outside the buffer"
    );
    buf[..at].fill(0.0);
    let gap = rs - len;
    for y in 0..rows - 1 {
        let rest = &mut buf[at + y * rs + len..];
        if gap > 64 || rest.len() < gap.next_multiple_of(8) {
            rest[..gap].fill(0.0);
        } else {
            // The short gaps (a padding column or two): blocks of 8 without `memset` calls.
            for i in (0..gap).step_by(8) {
                rest[i..i + 8].copy_from_slice(&[0.0; 8]);
            }
        }
    }
    buf[at + (rows - 1) * rs + len..].fill(0.0);
}

/// [`act_grad`] over planes of `plane` elements (one per channel), in bands of 8 channels; for each band
/// also `sums[c] += Σ pre[c]` and `dy_t[p * channels + c] = pre[c][p]` (the transpose) when asked, while the
/// band is still in cache.
fn act_grad_fused(
    act: Act,
    grad: &[f32],
    out: &[f32],
    plane: usize,
    pre: &mut [f32],
    mut sums: Option<&mut [f32]>,
    mut dy_t: Option<&mut [f32]>,
) {
    const BAND: usize = 8;
    let plane = plane.max(1);
    let channels = pre.len() / plane;
    for c0 in (0..channels).step_by(BAND) {
        let c1 = (c0 + BAND).min(channels);
        let r = c0 * plane..c1 * plane;
        let band = &mut pre[r.clone()];
        act_grad(act, &grad[r.clone()], &out[r], band);
        if let Some(sums) = sums.as_deref_mut() {
            for (acc, p) in sums[c0..c1].iter_mut().zip(band.chunks(plane)) {
                *acc += sum(p);
            }
        }
        if let Some(t) = dy_t.as_deref_mut() {
            transpose_ld(band, c1 - c0, plane, &mut t[c0..], channels);
        }
    }
}

multiversion! {
    /// The gradient before the activation, from the gradient after it and the activation's output.
    fn act_grad(act: Act, grad: &[f32], out: &[f32], pre: &mut [f32]) = act_grad_body
}

#[inline(always)]
fn act_grad_body<const FMA: bool>(act: Act, grad: &[f32], out: &[f32], pre: &mut [f32]) {
    let it = pre.iter_mut().zip(grad.iter().zip(out));
    match act {
        // `out > 0` exactly where the pre-activation is (slope >= 0).
        Act::LeakyRelu(slope) => it.for_each(|(p, (g, o))| *p = g * if *o > 0.0 { 1.0 } else { slope }),
        Act::Sigmoid => it.for_each(|(p, (g, y))| *p = g * (y * (1.0 - y))),
    }
}

/// `big = act(col2im(Wᵀ · small) + bias per big channel)` for one image, writing every element of `big`
/// (no zeroing first; see [`Geom::col2im_set`]). `w`'s rows (one per small channel) are `w_rs` apart:
/// `g.col_rows()` for the whole weight, wider for the output-channel pieces of [`small_to_big`].
#[allow(clippy::too_many_arguments)]
fn col2im_of_wt_set<'a>(
    g: &Geom,
    w: &[f32],
    w_rs: usize,
    small: &[f32],
    big: &'a mut [MaybeUninit<f32>],
    bias: Option<&[f32]>,
    act: Option<Act>,
    par: Parallelism,
) -> &'a mut [f32] {
    let (shw, rows) = (g.small_hw(), g.col_rows());
    let post = |c: usize, row: &mut [f32]| bias_act(row, bias.map_or(0.0, |b| b[c]), act);
    if chunked(g) {
        // Band by band (see [`COL_CHUNK`]): the band's columns, added into the zeroed image while they are
        // in cache; bias and activation per channel plane at the end.
        let big = init(big, g.big_hw(), None);
        for (o0, o1) in bands(0, g.small_h, chunk_rows(g)) {
            let (p0, pixels) = (o0 * g.small_w, (o1 - o0) * g.small_w);
            with_scratch(&SCRATCH_B, rows * pixels, |col| {
                sgemm(
                    (rows, pixels, g.small_c),
                    col,
                    rm(pixels),
                    false,
                    w,
                    tr(w_rs),
                    &small[p0..],
                    rm(shw),
                    par,
                );
                g.col2im_add_rows(col, big, o0, o1);
            });
        }
        for (c, plane) in big.chunks_mut(g.big_hw().max(1)).enumerate() {
            post(c, plane);
        }
        return big;
    }
    if g.is_pointwise() {
        let big = init(big, g.big_hw(), None);
        sgemm(
            (rows, shw, g.small_c),
            big,
            rm(shw),
            true,
            w,
            tr(w_rs),
            small,
            rm(shw),
            par,
        );
        for (c, plane) in big.chunks_mut(g.big_hw().max(1)).enumerate() {
            post(c, plane);
        }
        return big;
    }
    with_scratch(&SCRATCH_B, g.col_len(), |col| {
        sgemm(
            (rows, shw, g.small_c),
            col,
            rm(shw),
            false,
            w,
            tr(w_rs),
            small,
            rm(shw),
            par,
        );
        g.col2im_set(col, big, post)
    })
}

multiversion! {
    /// Sum with 16 independent accumulators, so that it vectorises (a plain fold is a serial chain).
    pub(super) fn sum(v: &[f32]) -> f32 = sum_body
}

#[inline(always)]
fn sum_body<const FMA: bool>(v: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let chunks = v.chunks_exact(16);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        acc.iter_mut().zip(c).for_each(|(a, x)| *a += x);
    }
    acc.iter().sum::<f32>() + rest
}

/// Which side of the geometry a gradient (or bias) belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Big,
    Small,
}

/// What [`backward`] returns; `None` where a gradient was not asked for.
pub(crate) struct Grads {
    pub dw: Option<Vec<f32>>,
    pub dinput: Option<Vec<f32>>,
    pub dbias: Option<Vec<f32>>,
}

/// What [`backward`] should compute.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wanted {
    pub weight: bool,
    /// The input's side: `Big` for conv2d, `Small` for conv_transpose2d.
    pub input: Option<Side>,
    /// The bias's side (the output's): `Small` for conv2d, `Big` for conv_transpose2d.
    pub bias: Option<Side>,
}

/// An activation fused after the convolution: its output and the side it lives on; the incoming
/// gradient is turned into the pre-activation gradient image by image.
#[derive(Clone, Copy)]
pub(crate) struct FusedAct<'a> {
    pub out: &'a [f32],
    pub act: Act,
    pub side: Side,
}

/// Gradients of a convolution. For conv2d pass `big = x, small = dy`; for conv_transpose2d
/// `big = dy, small = x`. `dW = Σ_b small[b] · im2col(big[b])ᵀ` (one accumulating GEMM per image, a
/// partial sum per thread); the big-side input gradient is `col2im(Wᵀ · small)`, the small-side one is
/// `W · im2col(big)` (sharing the column matrix with dW).
pub(crate) fn backward(
    g: &Geom,
    n: usize,
    big: &[f32],
    small: &[f32],
    w: &[f32],
    want: Wanted,
    act: Option<FusedAct>,
) -> Grads {
    let (shw, rows) = (g.small_hw(), g.col_rows());
    let shifted = Shifted::of(g);
    // The implicit kernels run one image per thread: with fewer images than threads the column path's
    // GEMMs may use the idle threads instead (see [`gemm_par`]).
    let implicit = if n >= threads() {
        Implicit::for_backward(g, w)
    } else {
        None
    };
    let t = threads().min(n).max(1);
    let per = n.div_ceil(t);
    let par = gemm_par(t, g);
    let in_len = match want.input {
        Some(Side::Big) => g.big_len(),
        Some(Side::Small) => g.small_len(),
        None => 0,
    };
    let bias_c = match want.bias {
        Some(Side::Big) => g.big_c,
        Some(Side::Small) => g.small_c,
        None => 0,
    };

    // One chunk of `per` images: returns its partial (dW, dbias) and writes its slice of dinput.
    let work = |ti: usize, mut dinput: Option<&mut [MaybeUninit<f32>]>| -> (Vec<f32>, Vec<f32>) {
        let mut dw = vec![0f32; if want.weight { w.len() } else { 0 }];
        let mut db = vec![0f32; bias_c];
        let out_len = |side| if side == Side::Big { g.big_len() } else { g.small_len() };
        let mut pre = vec![0f32; act.map_or(0, |a| out_len(a.side))];
        let mut dy_t = vec![
            0f32;
            if want.weight && shifted.is_none() && implicit.is_none() {
                g.small_len()
            } else {
                0
            }
        ];
        for (i, b) in (ti * per..((ti + 1) * per).min(n)).enumerate() {
            let mut bb = &big[b * g.big_len()..][..g.big_len()];
            let mut sb = &small[b * g.small_len()..][..g.small_len()];
            // With a fused activation: its gradient, the bias sums (the bias is on the activation's side)
            // and, for conv2d's weight gradient, dy's transpose, band by band while the band is in cache.
            let (mut summed, mut transposed) = (false, false);
            if let Some(a) = act {
                let len = out_len(a.side);
                let grad = if a.side == Side::Big { bb } else { sb };
                let plane = if a.side == Side::Big { g.big_hw() } else { shw };
                let sums = (want.bias == Some(a.side)).then_some(&mut db[..]);
                let t = (a.side == Side::Small && want.weight && shifted.is_none() && implicit.is_none())
                    .then_some(&mut dy_t[..]);
                (summed, transposed) = (sums.is_some(), t.is_some());
                act_grad_fused(a.act, grad, &a.out[b * len..][..len], plane, &mut pre, sums, t);
                if a.side == Side::Big {
                    bb = &pre;
                } else {
                    sb = &pre;
                }
            }
            // This image's input gradient slot, uninitialised: written whole by the small side's GEMM
            // (which does not read it) or by col2im (big side).
            let mut slot = dinput.as_deref_mut().map(|d| &mut d[i * in_len..][..in_len]);
            if let Some(im) = &implicit {
                // Without a column matrix (see [`Implicit`]).
                let small_dx = if want.input == Some(Side::Small) {
                    slot.take()
                } else {
                    None
                };
                if want.weight || small_dx.is_some() {
                    im.backward_big(g, bb, sb, want.weight.then_some(&mut dw[..]), small_dx);
                }
                if want.input == Some(Side::Big) {
                    im.small_to_big(g, sb, slot.take().expect("dinput allocated"), None, None);
                }
            } else if let Some(sh) = shifted {
                // Without a column matrix (see [`Shifted`]).
                match want.input {
                    Some(Side::Small) => {
                        let d = slot.take().expect("dinput allocated");
                        sh.big_to_small(g, bb, w, d, None, None, par);
                        sh.backward(g, bb, sb, w, want.weight.then_some(&mut dw[..]), None, par);
                    }
                    Some(Side::Big) => sh.backward(g, bb, sb, w, want.weight.then_some(&mut dw[..]), slot.take(), par),
                    None => sh.backward(g, bb, sb, w, want.weight.then_some(&mut dw[..]), None, par),
                }
            } else {
                let dx = match want.input {
                    Some(Side::Small) => slot.take().map(|d| SharedOut {
                        ptr: d.as_mut_ptr().cast::<f32>(),
                        len: d.len(),
                    }),
                    _ => None,
                };
                if want.weight || want.input == Some(Side::Small) {
                    // dW accumulates column-major, from a transposed dy: see [`transpose`].
                    if want.weight && !transposed {
                        transpose(sb, g.small_c, shw, &mut dy_t);
                    }
                    // The whole column matrix at once, or band by band when it is large (see [`COL_CHUNK`]):
                    // dW sums over pixels, so the bands' products accumulate; dx's bands are its columns.
                    let step = if chunked(g) { chunk_rows(g) } else { g.small_h };
                    for (o0, o1) in bands(0, g.small_h, step) {
                        let (p0, pixels) = (o0 * g.small_w, (o1 - o0) * g.small_w);
                        let mut products = |col: &[f32]| {
                            if want.weight {
                                sgemm(
                                    (g.small_c, rows, pixels),
                                    &mut dw,
                                    tr(g.small_c),
                                    true,
                                    &dy_t[p0 * g.small_c..],
                                    tr(g.small_c),
                                    col,
                                    tr(pixels),
                                    par,
                                );
                            }
                            if let Some(dx) = dx {
                                let (dst, len) = dx.at(p0);
                                // (Only the small side's gradient is made here.) SAFETY: `dx` is this image's
                                // slot, used by nothing else; the GEMM (accumulate = false) writes its
                                // small_c x pixels elements from column p0 on (inside it: checked by
                                // `sgemm_raw`) without reading them, and the bands cover every column once.
                                unsafe {
                                    sgemm_raw(
                                        (g.small_c, pixels, rows),
                                        dst,
                                        len,
                                        rm(shw),
                                        false,
                                        w,
                                        rm(rows),
                                        col,
                                        rm(pixels),
                                        par,
                                    )
                                };
                            }
                        };
                        if chunked(g) {
                            with_scratch(&SCRATCH_A, rows * pixels, |col| {
                                g.im2col_rows(bb, col, o0, o1);
                                products(col)
                            });
                        } else {
                            with_col(g, bb, products);
                        }
                    }
                }
                if want.input == Some(Side::Big) {
                    let slot = slot.expect("dinput allocated");
                    col2im_of_wt_set(g, w, rows, sb, slot, None, None, par);
                }
            }
            let (src, plane) = match want.bias {
                _ if summed => continue,
                Some(Side::Big) => (bb, g.big_hw()),
                Some(Side::Small) => (sb, shw),
                None => continue,
            };
            for (acc, row) in db.iter_mut().zip(src.chunks(plane.max(1))) {
                *acc += sum(row);
            }
        }
        (dw, db)
    };

    let mut dinput: Option<Vec<f32>> = want.input.map(|_| Vec::with_capacity(n * in_len));
    let partials: Vec<(Vec<f32>, Vec<f32>)> = match dinput.as_mut() {
        Some(d) => {
            let parts = d.spare_capacity_mut()[..n * in_len]
                .par_chunks_mut((per * in_len).max(1))
                .enumerate()
                .map(|(ti, c)| work(ti, Some(c)))
                .collect();
            // SAFETY: the chunks cover all `n` images and `work` initialises each image's slot.
            unsafe { d.set_len(n * in_len) };
            parts
        }
        None => (0..t).into_par_iter().map(|ti| work(ti, None)).collect(),
    };
    let mut it = partials.into_iter();
    let (mut dw, mut db) = it.next().unwrap_or_default();
    for (pw, pb) in it {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    // Back from column-major to the weight's row-major layout.
    let dw = want.weight.then(|| {
        let mut out = vec![0f32; dw.len()];
        transpose(&dw, g.col_rows(), g.small_c, &mut out);
        out
    });
    Grads {
        dw,
        dinput,
        dbias: want.bias.map(|_| db),
    }
}

#[cfg(test)]
mod simd_tests {
    use super::Act;

    /// The element-wise kernels, as dispatched for this CPU and in both of their compiled forms (plain and
    /// with fused multiply-adds), against scalar f64 formulas, for lengths with and without vector tails.
    #[test]
    fn elementwise_kernels_match_scalar_formulas() {
        for n in [0usize, 1, 7, 16, 17, 63, 64, 100, 1000] {
            let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 61) as f32 - 30.0) / 7.0).collect();
            let g: Vec<f32> = (0..n).map(|i| ((i * 11 % 13) as f32 - 6.0) / 3.0).collect();
            for act in [None, Some(Act::LeakyRelu(0.2)), Some(Act::Sigmoid)] {
                let want: Vec<f64> = x
                    .iter()
                    .map(|&v| {
                        let y = v as f64 + 0.25;
                        match act {
                            None => y,
                            Some(Act::LeakyRelu(s)) => {
                                if y > 0.0 {
                                    y
                                } else {
                                    s as f64 * y
                                }
                            }
                            Some(Act::Sigmoid) => 1.0 / (1.0 + (-y).exp()),
                        }
                    })
                    .collect();
                type BiasAct = fn(&mut [f32], f32, Option<Act>);
                let runs: [(&str, BiasAct); 3] = [
                    ("dispatched", super::bias_act),
                    ("plain", super::bias_act_body::<false>),
                    ("fma", super::bias_act_body::<true>),
                ];
                for (name, f) in runs {
                    let mut v = x.clone();
                    f(&mut v, 0.25, act);
                    for (i, (a, b)) in v.iter().zip(&want).enumerate() {
                        assert!(
                            (*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
                            "bias_act {name} {act:?} n={n} at {i}: {a} vs {b}"
                        );
                    }
                }
            }
            for act in [Act::LeakyRelu(0.2), Act::Sigmoid] {
                let out: Vec<f32> = x
                    .iter()
                    .map(|&v| {
                        if matches!(act, Act::Sigmoid) {
                            1.0 / (1.0 + (-v).exp())
                        } else {
                            v
                        }
                    })
                    .collect();
                let mut pre = vec![0f32; n];
                super::act_grad(act, &g, &out, &mut pre);
                for i in 0..n {
                    let want = match act {
                        Act::LeakyRelu(s) => g[i] * if out[i] > 0.0 { 1.0 } else { s },
                        Act::Sigmoid => g[i] * out[i] * (1.0 - out[i]),
                    };
                    assert!(
                        (pre[i] - want).abs() <= 1e-6 * (1.0 + want.abs()),
                        "act_grad {act:?} n={n} at {i}"
                    );
                }
            }
            let want: f64 = x.iter().map(|&v| v as f64).sum();
            assert!(
                (super::sum(&x) as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "sum n={n}"
            );
        }
    }

    /// [`super::crop_bias_act`] (dispatched, plain, with FMA) writes exactly [`super::bias_act`]'s values of
    /// the cropped rows, bit for bit, for every activation, with and without a bias, widths on and off
    /// whole vectors.
    #[test]
    fn crop_bias_act_is_a_crop_then_bias_act() {
        use std::mem::MaybeUninit;
        type Crop = fn(&[f32], usize, &mut [MaybeUninit<f32>], usize, f32, Option<Act>);
        type BiasAct = fn(&mut [f32], f32, Option<Act>);
        // Each compiled form against bias_act's same form (the sigmoid's last bit depends on FMA).
        let runs: [(&str, Crop, BiasAct); 3] = [
            ("dispatched", super::crop_bias_act, super::bias_act),
            (
                "plain",
                super::crop_bias_act_body::<false>,
                super::bias_act_body::<false>,
            ),
            ("fma", super::crop_bias_act_body::<true>, super::bias_act_body::<true>),
        ];
        for (w, ld, h) in [(1, 1, 1), (5, 7, 3), (16, 17, 4), (33, 40, 5), (64, 66, 2)] {
            let mut src: Vec<f32> = (0..h * ld).map(|i| ((i * 37 % 61) as f32 - 30.0) / 7.0).collect();
            // -0.0 stays -0.0 without bias or activation (the identity, not `x + 0.0`).
            src[0] = -0.0;
            for act in [None, Some(Act::LeakyRelu(0.2)), Some(Act::Sigmoid)] {
                for b in [0.0, 0.25] {
                    for (name, f, reference) in runs {
                        let mut want: Vec<f32> = (0..h * w).map(|i| src[(i / w) * ld + i % w]).collect();
                        reference(&mut want, b, act);
                        let mut dst = vec![MaybeUninit::new(f32::NAN); h * w];
                        f(&src, ld, &mut dst, w, b, act);
                        for (i, (d, e)) in dst.iter().zip(&want).enumerate() {
                            // SAFETY: initialised with NaN above (and overwritten by the kernel).
                            let d = unsafe { d.assume_init() };
                            assert_eq!(
                                d.to_bits(),
                                e.to_bits(),
                                "{name} {act:?} b={b} {h}x{w} (ld {ld}) at {i}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// [`super::zero_around`] zeroes every element outside the runs (gaps of 0-70 elements, before, between
    /// and after them) and leaves each run alone beyond its first 8 elements.
    #[test]
    fn zero_around_zeroes_exactly_the_gaps() {
        for (at, len, rows, rs, extra) in [
            (0, 4, 1, 4, 0),
            (3, 5, 4, 7, 2),
            (34, 32, 32, 33, 40),
            (1, 20, 3, 90, 0),
            (0, 10, 0, 10, 5),
            (2, 0, 3, 4, 1),
            (5, 16, 6, 16, 9),
        ] {
            let total = at + rows * rs + extra;
            let mut buf = vec![f32::NAN; total];
            super::zero_around(&mut buf, at, len, rows, rs);
            for (i, v) in buf.iter().enumerate() {
                let in_run = len > 0 && i >= at && (i - at) / rs < rows && (i - at) % rs < len;
                if !in_run {
                    assert_eq!(
                        *v, 0.0,
                        "at {at} len {len} rows {rows} rs {rs}: gap element {i} not zeroed"
                    );
                } else if (i - at) % rs >= 8 {
                    assert!(v.is_nan(), "at {at} len {len} rows {rs}: run element {i} overwritten");
                }
            }
        }
    }
}
