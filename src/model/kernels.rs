//! Dense CPU kernels for the hand-differentiated side network: a safe row-major matrix product
//! over the `gemm` crate (the one candle's CPU backend calls), bias/ReLU epilogues and column
//! sums. Every buffer is a row-major `f32` slice; shapes are checked on entry.

use gemm::Parallelism;

/// Work (m * n * k multiply-adds) below which a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 16;

/// Rows per parallel chunk of the element-wise kernels.
const ROWS_PER_TASK: usize = 64;

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
    assert_eq!(a.len(), m * k, "matmul: lhs length");
    assert_eq!(b.len(), k * n, "matmul: rhs length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = match ta {
        Op::N => (k as isize, 1),
        Op::T => (1, m as isize),
    };
    let (b_rs, b_cs) = match tb {
        Op::N => (n as isize, 1),
        Op::T => (1, k as isize),
    };
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= PARALLEL_WORK {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the lengths asserted above bound every index the strides reach: c is m x n with
    // row stride n; a and b are read within m*k and k*n elements for either orientation.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Run `f(row_chunk, first_row)` over chunks of whole rows of width `w`, in parallel when large.
pub fn for_rows(x: &mut [f32], w: usize, f: impl Fn(&mut [f32], usize) + Sync) {
    use rayon::prelude::*;
    if w == 0 {
        return;
    }
    if x.len() < ROWS_PER_TASK * w * 2 {
        f(x, 0);
    } else {
        x.par_chunks_mut(ROWS_PER_TASK * w)
            .enumerate()
            .for_each(|(i, c)| f(c, i * ROWS_PER_TASK));
    }
}

/// `x[i, :] += bias` for every row of `x` `[n, bias.len()]`.
pub fn add_bias(x: &mut [f32], bias: &[f32]) {
    for_rows(x, bias.len(), |c, _| {
        for row in c.chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
        }
    });
}

/// `x = relu(x + bias)` row-wise.
pub fn add_bias_relu(x: &mut [f32], bias: &[f32]) {
    for_rows(x, bias.len(), |c, _| {
        for row in c.chunks_exact_mut(bias.len()) {
            row.iter_mut()
                .zip(bias)
                .for_each(|(v, b)| *v = (*v + b).max(0.0));
        }
    });
}

/// Column sums of `x` `[n, w]`, added into `out` `[w]` (f64 accumulation per column block).
pub fn add_column_sums(out: &mut [f32], x: &[f32]) {
    let w = out.len();
    if w == 0 {
        return;
    }
    let mut acc = vec![0f64; w];
    for row in x.chunks_exact(w) {
        acc.iter_mut().zip(row).for_each(|(a, v)| *a += *v as f64);
    }
    out.iter_mut().zip(&acc).for_each(|(o, a)| *o += *a as f32);
}

/// `sum(a * b)` in f64.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: lengths");
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
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

    #[test]
    fn epilogues_and_sums() {
        // rows [1,-2], [-3,4] + bias [1,1] -> [2,-1], [-2,5]; relu -> [2,0], [0,5]
        let mut x = [1f32, -2., -3., 4.];
        add_bias_relu(&mut x, &[1., 1.]);
        assert_eq!(x, [2., 0., 0., 5.]);
        add_bias(&mut x, &[0.5, -1.]);
        assert_eq!(x, [2.5, -1., 0.5, 4.]);
        let mut s = [1f32, 0.];
        add_column_sums(&mut s, &x);
        assert_eq!(s, [4., 3.]);
        assert_eq!(dot(&[1., 2.], &[3., 4.]), 11.0);
    }
}
