//! Dense CPU kernels for the hand-differentiated side network: bias/ReLU epilogues, sums,
//! column sums, LayerNorm and masks, with the row-major product re-exported from
//! [`super::product`]. Every buffer is a row-major `f32` slice; shapes are checked on entry.

pub use super::product::{Op, matmul, matmul_append, matmul_new};

/// Rows per parallel chunk of the element-wise kernels.
const ROWS_PER_TASK: usize = 64;

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

/// `a + b` element by element, in parallel when large.
pub fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(a.len(), b.len(), "sum: lengths");
    a.par_iter()
        .zip(b)
        .with_min_len(ROWS_PER_TASK * 256)
        .map(|(x, y)| x + y)
        .collect()
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

/// `x *= mask` element-wise when a dropout mask is present.
pub fn apply_mask(x: &mut [f32], mask: Option<&[f32]>) {
    if let Some(m) = mask {
        x.iter_mut().zip(m).for_each(|(v, k)| *v *= k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // 100,000 elements (the parallel path): i + (1 - i) = 1 everywhere
        let a: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
        let b: Vec<f32> = a.iter().map(|x| 1.0 - x).collect();
        assert!(sum(&a, &b).iter().all(|&v| v == 1.0));
        assert_eq!(sum(&a, &b).len(), 100_000);
    }
}
