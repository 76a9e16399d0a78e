//! Dense CPU kernels for the hand-differentiated side network: a safe row-major matrix product
//! over the `gemm` crate (the one candle's CPU backend calls), bias/ReLU epilogues and column
//! sums. Every buffer is a row-major `f32` slice; shapes are checked on entry.

use gemm::Parallelism;

/// Work (m * n * k multiply-adds) below which a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 18;

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
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (b_rs, b_cs) = match tb {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    let parts = rayon::current_num_threads().min(m.max(n));
    if parts <= 1 || m * n * k < PARALLEL_WORK {
        // SAFETY: the lengths asserted above bound every index the strides reach: c is m x n
        // with row stride n; a and b are read within m*k and k*n elements for either
        // orientation.
        unsafe {
            gemm_block(
                (m, n, k),
                c.as_mut_ptr(),
                n,
                (a.as_ptr(), a_rs, a_cs),
                (b.as_ptr(), b_rs, b_cs),
                accumulate,
            )
        };
        return;
    }
    matmul_split(
        c,
        (a, a_rs, a_cs),
        (b, b_rs, b_cs),
        (m, n, k),
        parts,
        accumulate,
    );
}

/// The parallel path of [`matmul`]: the output is cut into `parts` blocks of whole rows (or
/// whole columns when it is wider than tall), each computed single-threaded by [`gemm_block`].
/// The lengths must already be checked against `(m, n, k)` and the strides.
fn matmul_split(
    c: &mut [f32],
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
        SharedPtr(c.as_mut_ptr()),
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

/// `sum(a * b)`: eight f32 lanes per block of 256 elements (vectorised), blocks summed in f64.
pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "dot: lengths");
    let mut total = 0f64;
    for (ca, cb) in a.chunks(256).zip(b.chunks(256)) {
        let mut lanes = [0f32; 8];
        let (ea, eb) = (ca.chunks_exact(8), cb.chunks_exact(8));
        let tail: f32 = ea
            .remainder()
            .iter()
            .zip(eb.remainder())
            .map(|(x, y)| x * y)
            .sum();
        for (x, y) in ea.zip(eb) {
            for i in 0..8 {
                lanes[i] += x[i] * y[i];
            }
        }
        total += lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64;
    }
    total
}

/// What a [`layer_norm`] forward keeps for its backward.
#[derive(Debug, Default)]
pub struct LayerNormSaved {
    /// Normalised rows `(x - mean) * rstd`, `[n, w]`.
    pub xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row (biased variance).
    pub rstd: Vec<f32>,
}

/// Row-wise LayerNorm of `x` `[n, gamma.len()]` in place: `y = (x - mean) * rstd * gamma + beta`.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) -> LayerNormSaved {
    let w = gamma.len();
    let mut xhat = vec![0f32; x.len()];
    let mut rstd = vec![0f32; x.len() / w];
    for ((row, xh), rs) in x
        .chunks_exact_mut(w)
        .zip(xhat.chunks_exact_mut(w))
        .zip(rstd.iter_mut())
    {
        let mean = row.iter().sum::<f32>() / w as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w as f32;
        *rs = 1.0 / (var + eps).sqrt();
        for (((y, h), g), b) in row.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta) {
            *h = (*y - mean) * *rs;
            *y = *h * g + b;
        }
    }
    LayerNormSaved { xhat, rstd }
}

/// Backward of [`layer_norm`]: `dy` `[n, w]` becomes d loss / d x in place; gamma's and beta's
/// gradients are added into `g_gamma` and `g_beta`. With `dh = dy * gamma`:
/// `dx = rstd * (dh - mean(dh) - xhat * mean(dh * xhat))`.
pub fn layer_norm_backward(
    dy: &mut [f32],
    saved: &LayerNormSaved,
    gamma: &[f32],
    g_gamma: &mut [f32],
    g_beta: &mut [f32],
) {
    let w = gamma.len();
    for ((row, xh), rs) in dy
        .chunks_exact_mut(w)
        .zip(saved.xhat.chunks_exact(w))
        .zip(&saved.rstd)
    {
        let (mut m1, mut m2) = (0f32, 0f32);
        for i in 0..w {
            g_gamma[i] += row[i] * xh[i];
            g_beta[i] += row[i];
            let dh = row[i] * gamma[i];
            m1 += dh;
            m2 += dh * xh[i];
        }
        let (m1, m2) = (m1 / w as f32, m2 / w as f32);
        for i in 0..w {
            row[i] = rs * (row[i] * gamma[i] - m1 - xh[i] * m2);
        }
    }
}

/// `x *= mask` element-wise when a dropout mask is present.
pub fn apply_mask(x: &mut [f32], mask: Option<&[f32]>) {
    if let Some(m) = mask {
        x.iter_mut().zip(m).for_each(|(v, k)| *v *= k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x = [1, 2, 3, 6] (mean 3, var 3.5): xhat = [-2, -1, 0, 3] / sqrt(3.5); with gamma 2 and
    /// beta 1, y = 2 xhat + 1. The backward matches central finite differences of
    /// L = sum(c * y), c = [1, -2, 3, 0.5].
    #[test]
    fn layer_norm_forward_and_backward() {
        let gamma = [2f32, 2., 2., 2.];
        let beta = [1f32; 4];
        let c = [1f32, -2., 3., 0.5];
        let x0 = [1f32, 2., 3., 6.];
        let mut y = x0;
        let saved = layer_norm(&mut y, &gamma, &beta, 0.0);
        let s = 3.5f32.sqrt();
        for (v, d) in y.iter().zip([-2f32, -1., 0., 3.]) {
            assert!((v - (2.0 * d / s + 1.0)).abs() < 1e-6);
        }
        let mut dx = c;
        let (mut gg, mut gb) = ([0f32; 4], [0f32; 4]);
        layer_norm_backward(&mut dx, &saved, &gamma, &mut gg, &mut gb);
        assert_eq!(gb, c);
        let loss = |x: [f32; 4]| -> f64 {
            let mut y = x;
            layer_norm(&mut y, &gamma, &beta, 0.0);
            y.iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        for i in 0..4 {
            let (mut xp, mut xm) = (x0, x0);
            xp[i] += 1e-2;
            xm[i] -= 1e-2;
            let fd = (loss(xp) - loss(xm)) / 2e-2;
            assert!(
                (fd - dx[i] as f64).abs() < 2e-3,
                "x[{i}]: {fd} vs {}",
                dx[i]
            );
        }
    }

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
