//! Batched convolution kernels on plain slices: im2col + GEMM (the `gemm` crate) per image, images spread
//! over rayon's threads. Forward and gradients of conv2d and conv_transpose2d all reduce to three kernels
//! on a [`Geom`]: big -> small (`W · im2col`), small -> big (`col2im(Wᵀ ·)`) and [`backward`].
use super::geom::Geom;
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
}

type Scratch = std::thread::LocalKey<RefCell<Vec<f32>>>;

fn with_scratch<R>(key: &'static Scratch, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
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
    per_image_written(n, g.small_len(), |b, slot| {
        let xb = &big[b * g.big_len()..][..g.big_len()];
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
    per_image_written(n, g.big_len(), |b, slot| {
        let sb = &small[b * g.small_len()..][..g.small_len()];
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
    fn bias_act(v: &mut [f32], b: f32, act: Option<Act>) = bias_act_body
}

#[inline(always)]
fn bias_act_body<const FMA: bool>(v: &mut [f32], b: f32, act: Option<Act>) {
    match act {
        Some(Act::LeakyRelu(slope)) => v.iter_mut().for_each(|x| {
            let y = *x + b;
            *x = y * if y > 0.0 { 1.0 } else { slope };
        }),
        Some(Act::Sigmoid) => v
            .iter_mut()
            .for_each(|x| *x = super::activation::sigmoid::<FMA>(*x + b)),
        None if b != 0.0 => v.iter_mut().for_each(|x| *x += b),
        None => {}
    }
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
        let mut dy_t = vec![0f32; if want.weight { g.small_len() } else { 0 }];
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
                let t = (a.side == Side::Small && want.weight).then_some(&mut dy_t[..]);
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
}
