//! The row-major `f32` matrix product every CPU kernel of the project calls, over the `gemm`
//! crate (the one candle's CPU backend calls): one fork per product, each block of rows (or
//! columns) computed single-threaded (docs/STACK.md section 5), into a given buffer or a new
//! one; and the strided single-threaded product the fused attention (`nn::attention`) runs per
//! head. Shapes are checked on entry.

use gemm::Parallelism;

/// Work (m * n * k multiply-adds) below which a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 18;

/// How an operand of [`matmul`] is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// As stored.
    N,
    /// Transposed.
    T,
}

/// `c = op(a) · op(b)` (or `c += ...` when `accumulate`), with `op(a)` `[m, k]`, `op(b)` `[k, n]`
/// and `c` `[m, n]`, all row-major. `a` is stored `[m, k]` (`Op::N`) or `[k, m]` (`Op::T`), `b`
/// `[k, n]` or `[n, k]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(c.len(), m * n, "matmul: output length");
    // SAFETY: c holds m * n elements (asserted) and, borrowed mutably, aliases neither operand.
    unsafe { matmul_into(c.as_mut_ptr(), (a, ta), (b, tb), (m, n, k), accumulate) }
}

/// [`matmul`] into a new `[m, n]` buffer. The buffer is not zeroed first: the product writes
/// every element (the `gemm` crate reads no destination unless told to accumulate), which
/// saves a serial pass over the output before the product forks.
pub fn matmul_new(a: &[f32], ta: Op, b: &[f32], tb: Op, dims: (usize, usize, usize)) -> Vec<f32> {
    let mut c = Vec::new();
    matmul_append(&mut c, a, ta, b, tb, dims);
    c
}

/// [`matmul`] onto the end of `c`: appends the `[m, n]` product, written straight into the
/// vector's spare capacity, neither zeroed first nor copied after (as [`matmul_new`]). For
/// buffers that hold one product per tap or layer.
pub fn matmul_append(
    c: &mut Vec<f32>,
    a: &[f32],
    ta: Op,
    b: &[f32],
    tb: Op,
    (m, n, k): (usize, usize, usize),
) {
    let len = c.len();
    c.reserve(m * n);
    // SAFETY: after `reserve` the spare capacity holds m * n elements past `len`; with
    // `accumulate` off every one of them is written (zeros when k = 0), and none read, before
    // `set_len` makes them part of the vector. `c` is borrowed mutably, so it aliases neither
    // operand.
    unsafe {
        matmul_into(c.as_mut_ptr().add(len), (a, ta), (b, tb), (m, n, k), false);
        c.set_len(len + m * n);
    }
}

/// The body of [`matmul`], writing through `c`: checks the operands' lengths, writes zeros for
/// an empty inner dimension (unless accumulating) and forks the product.
///
/// # Safety
/// `c` must be valid for writes (and, when `accumulate`, reads) of `m * n` elements and alias
/// neither operand.
unsafe fn matmul_into(
    c: *mut f32,
    (a, ta): (&[f32], Op),
    (b, tb): (&[f32], Op),
    (m, n, k): (usize, usize, usize),
    accumulate: bool,
) {
    assert_eq!(a.len(), m * k, "matmul: lhs length");
    assert_eq!(b.len(), k * n, "matmul: rhs length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: c is valid for m * n writes (the caller's promise); all-zero bits are 0.0.
            unsafe { std::ptr::write_bytes(c, 0, m * n) };
        }
        return;
    }
    let (a_rs, a_cs) = match ta {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (b_rs, b_cs) = match tb {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    let parts = rayon::current_num_threads().min(m.max(n));
    if parts <= 1 || m * n * k < PARALLEL_WORK {
        // SAFETY: c is valid for m x n elements with row stride n (the caller's promise); a
        // and b are read within m*k and k*n elements for either orientation (asserted).
        unsafe {
            gemm_block(
                (m, n, k),
                c,
                n,
                (a.as_ptr(), a_rs, a_cs),
                (b.as_ptr(), b_rs, b_cs),
                accumulate,
            )
        };
        return;
    }
    // SAFETY: as above, forwarded.
    unsafe {
        matmul_split(
            c,
            (a, a_rs, a_cs),
            (b, b_rs, b_cs),
            (m, n, k),
            parts,
            accumulate,
        )
    };
}

/// The parallel path of [`matmul`]: the output is cut into `parts` blocks of whole rows (or
/// whole columns when it is wider than tall), each computed single-threaded by [`gemm_block`].
/// The lengths must already be checked against `(m, n, k)` and the strides.
///
/// # Safety
/// As [`matmul_into`]: `c` valid for `m * n` elements, aliasing neither operand.
unsafe fn matmul_split(
    c: *mut f32,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    (m, n, k): (usize, usize, usize),
    parts: usize,
    accumulate: bool,
) {
    // One fork per product: the output is cut into `parts` blocks of whole rows (or whole
    // columns when it is wider than tall), each computed single-threaded. The gemm crate's own
    // rayon split synchronises inside the product, which costs more than it gains at these
    // sizes on two cores (measured: 2 threads were no faster than 1).
    let by_rows = m >= n;
    let len = if by_rows { m } else { n };
    let chunk = len.div_ceil(parts);
    let (cp, ap, bp) = (
        SharedPtr(c),
        SharedPtr(a.as_ptr().cast_mut()),
        SharedPtr(b.as_ptr().cast_mut()),
    );
    rayon::scope(|s| {
        for p in 0..parts {
            let lo = p * chunk;
            if lo >= len {
                break;
            }
            let hi = (lo + chunk).min(len);
            let (cp, ap, bp) = (&cp, &ap, &bp);
            s.spawn(move |_| {
                let (a, b) = (ap.0.cast_const(), bp.0.cast_const());
                // SAFETY: block p writes only rows (or columns) lo..hi of c, disjoint from
                // every other block's; its reads of a (rows lo..hi of op(a)) or b (columns
                // lo..hi of op(b)) stay within the bounds asserted in `matmul`.
                unsafe {
                    if by_rows {
                        gemm_block(
                            (hi - lo, n, k),
                            cp.0.add(lo * n),
                            n,
                            (a.add(lo * a_rs), a_rs, a_cs),
                            (b, b_rs, b_cs),
                            accumulate,
                        )
                    } else {
                        gemm_block(
                            (m, hi - lo, k),
                            cp.0.add(lo),
                            n,
                            (a, a_rs, a_cs),
                            (b.add(lo * b_cs), b_rs, b_cs),
                            accumulate,
                        )
                    }
                }
            });
        }
    });
}

/// A raw pointer shared by the blocks of one product: each block writes its own part of the
/// output and only reads the operands.
struct SharedPtr(*mut f32);
// SAFETY: the blocks of `matmul` write disjoint parts of the output through it and never write
// through the operands' pointers.
unsafe impl Sync for SharedPtr {}

/// Single-threaded `c = a b` over raw pointers with (row, column) strides on `a` and `b` and row
/// stride `c_rs` on `c`: one product of a larger computation that forks on its own (the fused
/// attention's heads, `nn::attention`).
///
/// # Safety
/// As [`gemm_block`]: every index `i * rs + j * cs` for `i < rows`, `j < cols` of each operand
/// must be in bounds, and `c` must not alias `a` or `b`.
pub(crate) unsafe fn gemm_strided(
    mnk: (usize, usize, usize),
    c: *mut f32,
    c_rs: usize,
    a: (*const f32, usize, usize),
    b: (*const f32, usize, usize),
) {
    // SAFETY: forwarded from the caller.
    unsafe { gemm_block(mnk, c, c_rs, a, b, false) }
}

/// Single-threaded `c (+)= op(a) op(b)` over raw pointers with (row, column) strides.
///
/// # Safety
/// Every index `i * rs + j * cs` for `i < rows`, `j < cols` of each operand must be in bounds,
/// and `c` must not alias `a` or `b`.
unsafe fn gemm_block(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    c_rs: usize,
    (a, a_rs, a_cs): (*const f32, usize, usize),
    (b, b_rs, b_cs): (*const f32, usize, usize),
    accumulate: bool,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            c_rs as isize,
            accumulate,
            a,
            a_cs as isize,
            a_rs as isize,
            b,
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A = [[1,2,3],[4,5,6]] (2x3), B = [[1,0],[0,1],[1,1]] (3x2):
    /// A B = [[1+3, 2+3], [4+6, 5+6]] = [[4,5],[10,11]].
    #[test]
    fn matmul_every_orientation() {
        let a = [1f32, 2., 3., 4., 5., 6.];
        let at = [1f32, 4., 2., 5., 3., 6.]; // A stored transposed (3x2)
        let b = [1f32, 0., 0., 1., 1., 1.];
        let bt = [1f32, 0., 1., 0., 1., 1.]; // B stored transposed (2x3)
        let want = [4f32, 5., 10., 11.];
        for (aa, ta) in [(&a, Op::N), (&at, Op::T)] {
            for (bb, tb) in [(&b, Op::N), (&bt, Op::T)] {
                let mut c = [0f32; 4];
                matmul(&mut c, aa, ta, bb, tb, (2, 2, 3), false);
                assert_eq!(c, want, "{ta:?} {tb:?}");
                matmul(&mut c, aa, ta, bb, tb, (2, 2, 3), true);
                assert_eq!(c, [8., 10., 20., 22.]);
            }
        }
    }

    /// Every orientation, both split directions (taller than wide and wider than tall) and
    /// accumulation, on an explicit two-thread pool (so the block split runs whatever the
    /// machine), against naive loops.
    #[test]
    fn split_products_match_naive_loops_on_two_threads() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.install(|| {
            for (m, n, k) in [(130, 40, 70), (40, 130, 70)] {
                let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
                let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
                // a stored [m, k] or transposed [k, m]; b [k, n] or [n, k]
                let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
                let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
                let want: Vec<f32> = (0..m * n)
                    .map(|ij| {
                        (0..k)
                            .map(|l| a[(ij / n) * k + l] * b[l * n + ij % n])
                            .sum()
                    })
                    .collect();
                for (aa, ta) in [(&a, Op::N), (&at, Op::T)] {
                    for (bb, tb) in [(&b, Op::N), (&bt, Op::T)] {
                        let mut c = vec![1f32; m * n];
                        matmul(&mut c, aa, ta, bb, tb, (m, n, k), true);
                        for (x, w) in c.iter().zip(&want) {
                            assert_eq!(*x, w + 1.0, "{m}x{n}x{k} {ta:?} {tb:?}");
                        }
                    }
                }
            }
        });
    }

    /// A new buffer's product equals the product into a zeroed one, whatever the allocator left
    /// in the memory: [[1, 2, 3], [4, 5, 6]] x [[1, 0], [0, 1], [1, 1]] = [[4, 5], [10, 11]],
    /// and a 300 x 200 x 100 product (split across threads) against `matmul`, new or appended
    /// to a vector (its earlier elements kept).
    #[test]
    fn new_buffers_are_written_whole() {
        let c = matmul_new(
            &[1., 2., 3., 4., 5., 6.],
            Op::N,
            &[1., 0., 0., 1., 1., 1.],
            Op::N,
            (2, 2, 3),
        );
        assert_eq!(c, [4., 5., 10., 11.]);
        let (m, n, k) = (300, 200, 100);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 - 3.0).collect();
        let mut want = vec![0f32; m * n];
        matmul(&mut want, &a, Op::N, &b, Op::T, (m, n, k), false);
        for _ in 0..3 {
            // earlier buffers freed and reused: stale values must not leak into the result
            drop(vec![f32::NAN; m * n]);
            assert_eq!(matmul_new(&a, Op::N, &b, Op::T, (m, n, k)), want);
        }
        assert_eq!(matmul_new(&[], Op::N, &[], Op::N, (2, 3, 0)), vec![0.0; 6]);
        // appended after what a vector holds, into spare capacity that held NaNs
        let mut c = vec![f32::NAN; 2 * m * n];
        c.truncate(1);
        c[0] = 7.0;
        matmul_append(&mut c, &a, Op::N, &b, Op::T, (m, n, k));
        assert_eq!(c[0], 7.0);
        assert_eq!(c[1..], want);
        matmul_append(&mut c, &[], Op::N, &[], Op::N, (2, 3, 0));
        assert_eq!(c.len(), 1 + m * n + 6);
        assert_eq!(c[1 + m * n..], [0.0; 6]);
        // an empty inner dimension: zeros, or the destination unchanged when accumulating
        let mut c = [5f32; 6];
        matmul(&mut c, &[], Op::N, &[], Op::N, (2, 3, 0), true);
        assert_eq!(c, [5.0; 6]);
        matmul(&mut c, &[], Op::N, &[], Op::N, (2, 3, 0), false);
        assert_eq!(c, [0.0; 6]);
    }

    #[test]
    fn large_products_match_a_naive_loop() {
        let (m, n, k) = (70, 90, 50);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7) % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5) % 11) as f32 - 5.0).collect();
        let mut c = vec![0f32; m * n];
        matmul(&mut c, &a, Op::N, &b, Op::N, (m, n, k), false);
        for i in 0..m {
            for j in 0..n {
                let s: f32 = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
                assert_eq!(c[i * n + j], s);
            }
        }
    }
}
