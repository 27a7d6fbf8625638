//! A fast f32 matrix transpose (8x8 AVX blocks where the CPU has AVX, scalar elsewhere).

/// `dst[j * rows + i] = src[i * cols + j]`: the transpose of a row-major `rows x cols` matrix.
///
/// Why: the `gemm` crate computes a column-major destination (it transposes the whole product when the
/// destination is row-major) and packs its left operand into column-major panels: with contiguous copies
/// when that operand is column-major, with a scalar gather per element otherwise. The weight gradient
/// `dW = dy · im2colᵀ` has both operands contiguous along the pixels (the reduction axis), so one of them
/// must be transposed: with a row-major `dW` it was the column matrix, gathered element by element
/// (~9 % of a seed training step); instead `dW` is accumulated column-major from a transposed `dy`, the
/// smaller operand (~1 % with this transpose): 4-7 % faster training steps, measured A/B with
/// `examples/train_bench.rs`.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    transpose_ld(src, rows, cols, dst, rows)
}

/// [`transpose`] into a wider destination: `dst[j * ld + i] = src[i * cols + j]` (`ld >= rows`), so that a
/// band of rows can be transposed into its columns of a larger matrix.
pub(crate) fn transpose_ld(src: &[f32], rows: usize, cols: usize, dst: &mut [f32], ld: usize) {
    transpose_strided(src, rows, cols, cols, dst, ld)
}

/// [`transpose_ld`] of a submatrix: `dst[j * ld + i] = src[i * src_ld + j]` (`src_ld >= cols`, `ld >= rows`),
/// e.g. one image row of every channel straight into its rows of a pixel-major layout.
pub(crate) fn transpose_strided(src: &[f32], rows: usize, cols: usize, src_ld: usize, dst: &mut [f32], ld: usize) {
    assert!(ld >= rows && src_ld >= cols, "transpose: leading dimension too small");
    let (src_len, dst_len) = if rows == 0 || cols == 0 {
        (0, 0)
    } else {
        ((rows - 1) * src_ld + cols, (cols - 1) * ld + rows)
    };
    assert!(
        src.len() >= src_len && dst.len() >= dst_len,
        "transpose: slices too short"
    );
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX is available (checked above); the slices are long enough (asserted).
        return unsafe { avx::transpose(src, rows, cols, src_ld, dst, ld) };
    }
    transpose_scalar(src, rows, cols, src_ld, dst, ld, 0, 0);
}

/// The part of the transpose from row `r0` and column `c0` on (the edges left by the blocked kernel;
/// everything when both are 0): rows `r0..` of all columns, and columns `c0..` of rows `..r0`.
#[allow(clippy::too_many_arguments)]
fn transpose_scalar(
    src: &[f32],
    rows: usize,
    cols: usize,
    src_ld: usize,
    dst: &mut [f32],
    ld: usize,
    r0: usize,
    c0: usize,
) {
    for i in 0..rows {
        let from = if i < r0 { c0 } else { 0 };
        for j in from..cols {
            dst[j * ld + i] = src[i * src_ld + j];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// 8x8 blocks: 8 row loads, the classic unpack / shuffle / permute network, 8 column stores.
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn transpose(src: &[f32], rows: usize, cols: usize, src_ld: usize, dst: &mut [f32], ld: usize) {
        let (rb, cb) = (rows / 8 * 8, cols / 8 * 8);
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for i0 in (0..rb).step_by(8) {
            for j0 in (0..cb).step_by(8) {
                // SAFETY: (all pointer arithmetic) i0 + 7 < rows and j0 + 7 < cols, so every load reads
                // inside `src[..(rows - 1) * src_ld + cols]` and every store (j * ld + i, j < cols, i < rows) inside
                // `dst[..(cols - 1) * ld + rows]` (the caller checked both lengths).
                let r = |k: usize| unsafe { _mm256_loadu_ps(s.add((i0 + k) * src_ld + j0)) };
                let (r0, r1, r2, r3, r4, r5, r6, r7) = (r(0), r(1), r(2), r(3), r(4), r(5), r(6), r(7));
                let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                let (t4, t5) = (_mm256_unpacklo_ps(r4, r5), _mm256_unpackhi_ps(r4, r5));
                let (t6, t7) = (_mm256_unpacklo_ps(r6, r7), _mm256_unpackhi_ps(r6, r7));
                let (u0, u1) = (_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2));
                let (u2, u3) = (_mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3));
                let (u4, u5) = (_mm256_shuffle_ps::<0x44>(t4, t6), _mm256_shuffle_ps::<0xEE>(t4, t6));
                let (u6, u7) = (_mm256_shuffle_ps::<0x44>(t5, t7), _mm256_shuffle_ps::<0xEE>(t5, t7));
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (k, v) in out.into_iter().enumerate() {
                    // SAFETY: j0 + k < cols and i0 + 7 < rows: inside `dst`, as said above.
                    unsafe { _mm256_storeu_ps(d.add((j0 + k) * ld + i0), v) };
                }
            }
        }
        super::transpose_scalar(src, rows, cols, src_ld, dst, ld, rb, cb);
    }
}

#[cfg(test)]
mod tests {
    /// Every shape class: full 8x8 blocks, ragged right and bottom edges, fewer than 8 rows or columns;
    /// the dispatching function (AVX here) and the scalar one.
    #[test]
    fn transpose_matches_definition() {
        for (rows, cols) in [
            (8, 8),
            (16, 24),
            (3, 5),
            (13, 29),
            (64, 1),
            (1, 17),
            (9, 8),
            (8, 9),
            (32, 4096),
        ] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.5 - 3.0).collect();
            // `dst` (`n` columns by `rows`, packed) is the transpose of `src`'s first `n` columns.
            let check = |dst: &[f32], n: usize, what: &str| {
                for i in 0..rows {
                    for j in 0..n {
                        assert_eq!(
                            dst[j * rows + i],
                            src[i * cols + j],
                            "{rows}x{n} of {cols} at ({i}, {j}), {what}"
                        );
                    }
                }
            };
            for scalar in [false, true] {
                let mut dst = vec![f32::NAN; rows * cols];
                if scalar {
                    super::transpose_scalar(&src, rows, cols, cols, &mut dst, rows, 0, 0);
                } else {
                    super::transpose(&src, rows, cols, &mut dst);
                }
                check(&dst, cols, if scalar { "scalar" } else { "dispatched" });
            }
            // A submatrix: the first `cols - 2` columns of every row (skipped when that is empty).
            if cols > 2 {
                let sub = cols - 2;
                let mut dst = vec![f32::NAN; sub * rows];
                super::transpose_strided(&src, rows, sub, cols, &mut dst, rows);
                check(&dst, sub, "strided");
            }
            // Into columns 3.. of a destination 5 wider than the source has rows: nothing else written.
            let ld = rows + 5;
            let mut wide = vec![f32::NAN; cols * ld];
            super::transpose_ld(&src, rows, cols, &mut wide[3..], ld);
            for j in 0..cols {
                for k in 0..ld {
                    let v = wide[j * ld + k];
                    if (3..3 + rows).contains(&k) {
                        assert_eq!(v, src[(k - 3) * cols + j], "{rows}x{cols} ld {ld} at ({k}, {j})");
                    } else {
                        assert!(
                            v.is_nan(),
                            "{rows}x{cols} ld {ld}: wrote outside the band at ({k}, {j})"
                        );
                    }
                }
            }
        }
    }
}
