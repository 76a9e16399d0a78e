//! Scaled dot-product attention for the frozen towers' inference on the CPU in f32, in one pass
//! per sequence: `softmax(q k^T * scale + mask) v` for every head, read from and written to the
//! `[B, T, D]` layout the projections produce (heads side by side in the last dimension).
//!
//! The graph path (`SelfAttention::forward` in `backbone`) splits the heads with three
//! transposed copies, runs `B x H` small products one after another on one core, scales, adds
//! the mask and takes the softmax as separate passes, and copies the context back: on two cores
//! about a fifth of text encoding's wall time had one core idle (docs/STACK.md section 15). Here
//! each sequence is one parallel task: its heads' products read `q`, `k` and `v` through
//! strides (no copy), and scale, mask and softmax are one pass over a score row that is still
//! in cache. Values agree with the graph path within float rounding (same products, same
//! softmax formula); a test checks it. Training and other devices keep the graph path, which
//! candle differentiates. No crate offers this kernel over `gemm` (candle's own fused attention
//! is for CUDA/Metal only), hence it is written here.

use super::frozen::with_f32;
use super::product::gemm_strided;
use candle_core::{Result, Tensor};
use rayon::prelude::*;

/// The sizes of one attention call: `batch` sequences, `queries` query rows and `keys` key rows
/// per sequence, `heads` heads of width `head_dim` (model width `heads * head_dim`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionShape {
    /// Sequences.
    pub batch: usize,
    /// Query rows per sequence.
    pub queries: usize,
    /// Key (and value) rows per sequence.
    pub keys: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl AttentionShape {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// `out = softmax(q k^T * scale + mask) v` per sequence and head. `q` and `out` are
/// `[batch, queries, D]`, `k` and `v` `[batch, keys, D]`, all row-major with head `h` in columns
/// `h * head_dim ..`; `mask` (additive, one value per key) is `[batch, keys]`. Softmax as
/// candle's: `exp(s - max) / sum`. Sequences run in parallel; lengths are checked on entry.
pub fn attention(
    out: &mut [f32],
    (q, k, v): (&[f32], &[f32], &[f32]),
    mask: Option<&[f32]>,
    s: AttentionShape,
    scale: f32,
) {
    let d = s.width();
    assert_eq!(q.len(), s.batch * s.queries * d, "attention: query length");
    assert_eq!(out.len(), q.len(), "attention: output length");
    assert_eq!(k.len(), s.batch * s.keys * d, "attention: key length");
    assert_eq!(v.len(), k.len(), "attention: value length");
    if let Some(m) = mask {
        assert_eq!(m.len(), s.batch * s.keys, "attention: mask length");
    }
    if out.is_empty() || s.keys == 0 {
        out.fill(0.0);
        return;
    }
    let (qs, ks) = (s.queries * d, s.keys * d);
    out.par_chunks_mut(qs).enumerate().for_each(|(b, o)| {
        let mask = mask.map(|m| &m[b * s.keys..(b + 1) * s.keys]);
        let kv = (&k[b * ks..(b + 1) * ks], &v[b * ks..(b + 1) * ks]);
        sequence(o, &q[b * qs..(b + 1) * qs], kv, mask, s, scale);
    });
}

/// [`attention`] on tensors where it applies: `q` `[B, Tq, D]`, `k` and `v` `[B, T, D]` and the
/// additive `mask` (`B x T` values, e.g. `[B, 1, 1, T]`) contiguous f32 on the CPU, none tracking
/// a variable. `None` otherwise, and the caller takes the graph path.
pub fn fused(
    (q, k, v): (&Tensor, &Tensor, &Tensor),
    mask: Option<&Tensor>,
    heads: usize,
    scale: f32,
) -> Result<Option<Tensor>> {
    if [q, k, v].iter().any(|t| t.track_op()) || mask.is_some_and(|m| m.track_op()) {
        return Ok(None);
    }
    let (b, tq, d) = q.dims3()?;
    let t = k.dim(1)?;
    if k.dims() != [b, t, d] || v.dims() != [b, t, d] || heads == 0 || d % heads != 0 {
        return Ok(None);
    }
    if mask.is_some_and(|m| m.elem_count() != b * t) {
        return Ok(None);
    }
    let shape = AttentionShape {
        batch: b,
        queries: tq,
        keys: t,
        heads,
        head_dim: d / heads,
    };
    let run = |m: Option<&[f32]>| {
        with_f32(q, |q| {
            with_f32(k, |k| {
                with_f32(v, |v| {
                    let mut out = vec![0f32; q.len()];
                    attention(&mut out, (q, k, v), m, shape, scale);
                    out
                })
            })
        })
    };
    let out = match mask {
        Some(m) => with_f32(m, |m| run(Some(m))).flatten(),
        None => run(None),
    };
    match out.flatten().flatten() {
        Some(o) => Ok(Some(Tensor::from_vec(o, (b, tq, d), q.device())?)),
        None => Ok(None),
    }
}

/// Every head of one sequence: `o` and `q` `[queries, D]`, `k` and `v` `[keys, D]`.
fn sequence(
    o: &mut [f32],
    q: &[f32],
    (k, v): (&[f32], &[f32]),
    mask: Option<&[f32]>,
    s: AttentionShape,
    scale: f32,
) {
    let (d, dh, tq, t) = (s.width(), s.head_dim, s.queries, s.keys);
    let mut p = vec![0f32; tq * t];
    for h in 0..s.heads {
        let c0 = h * dh;
        // SAFETY: scores `p` is tq x t (row stride t); q's head block is tq x dh read with row
        // stride d from column c0, and k^T's is dh x t read as k[j * d + c0 + kk]: every index
        // is below tq * d or t * d, the lengths of q and k. p does not alias q or k.
        unsafe {
            gemm_strided(
                (tq, t, dh),
                p.as_mut_ptr(),
                t,
                (q.as_ptr().add(c0), d, 1),
                (k.as_ptr().add(c0), 1, d),
            )
        };
        for row in p.chunks_mut(t) {
            softmax_row(row, mask, scale);
        }
        // SAFETY: o's head block is tq x dh with row stride d from column c0 (inside o's tq * d);
        // p is tq x t; v's head block t x dh with row stride d inside v's t * d. o is written
        // only in this head's columns and aliases neither p nor v.
        unsafe {
            gemm_strided(
                (tq, dh, t),
                o.as_mut_ptr().add(c0),
                d,
                (p.as_ptr(), t, 1),
                (v.as_ptr().add(c0), d, 1),
            )
        };
    }
}

/// `row <- softmax(row * scale + mask)` in place, the exponentials as candle's
/// `softmax_last_dim`: `exp(x - max)`, then each divided by their sum.
fn softmax_row(row: &mut [f32], mask: Option<&[f32]>, scale: f32) {
    match mask {
        Some(m) => row
            .iter_mut()
            .zip(m)
            .for_each(|(x, &a)| *x = *x * scale + a),
        None => row.iter_mut().for_each(|x| *x *= scale),
    }
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    row.iter_mut().for_each(|x| *x /= sum);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention written out loop by loop, in f64, as the definition reads.
    fn naive(
        (q, k, v): (&[f32], &[f32], &[f32]),
        mask: Option<&[f32]>,
        s: AttentionShape,
        scale: f32,
    ) -> Vec<f32> {
        let (d, dh) = (s.width(), s.head_dim);
        let mut out = vec![0f32; s.batch * s.queries * d];
        for b in 0..s.batch {
            for h in 0..s.heads {
                for i in 0..s.queries {
                    let qi = &q[(b * s.queries + i) * d + h * dh..][..dh];
                    let scores: Vec<f64> = (0..s.keys)
                        .map(|j| {
                            let kj = &k[(b * s.keys + j) * d + h * dh..][..dh];
                            let dot: f64 =
                                qi.iter().zip(kj).map(|(&x, &y)| x as f64 * y as f64).sum();
                            dot * scale as f64 + mask.map_or(0.0, |m| m[b * s.keys + j] as f64)
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for c in 0..dh {
                        let acc: f64 = (0..s.keys)
                            .map(|j| e[j] / z * v[(b * s.keys + j) * d + h * dh + c] as f64)
                            .sum();
                        out[(b * s.queries + i) * d + h * dh + c] = acc as f32;
                    }
                }
            }
        }
        out
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        // a fixed, sign-changing sequence in [-1, 1): no RNG needed
        (0..n)
            .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    }

    #[test]
    fn two_keys_one_head_by_hand() {
        // q = [1, 0], k = [[1, 0], [0, 1]], v = [[2, 4], [6, 8]], scale 1, no mask: scores
        // [1, 0], softmax [e/(e+1), 1/(e+1)] = [0.731059, 0.268941], context
        // 0.731059 * [2, 4] + 0.268941 * [6, 8] = [3.075764, 5.075764].
        let s = AttentionShape {
            batch: 1,
            queries: 1,
            keys: 2,
            heads: 1,
            head_dim: 2,
        };
        let mut out = vec![0f32; 2];
        attention(
            &mut out,
            (&[1., 0.], &[1., 0., 0., 1.], &[2., 4., 6., 8.]),
            None,
            s,
            1.0,
        );
        assert!(
            (out[0] - 3.075_764).abs() < 1e-5 && (out[1] - 5.075_764).abs() < 1e-5,
            "{out:?}"
        );
        // a -1e9 mask on the first key leaves the second alone: context = v[1]
        let mask = [-1e9f32, 0.0];
        attention(
            &mut out,
            (&[1., 0.], &[1., 0., 0., 1.], &[2., 4., 6., 8.]),
            Some(&mask),
            s,
            1.0,
        );
        assert_eq!(out, vec![6.0, 8.0]);
    }

    #[test]
    fn heads_batches_and_masks_match_the_definition() {
        for (queries, keys) in [(5, 5), (1, 7)] {
            let s = AttentionShape {
                batch: 3,
                queries,
                keys,
                heads: 4,
                head_dim: 8,
            };
            let d = s.width();
            let q = values(s.batch * queries * d, 1);
            let k = values(s.batch * keys * d, 2);
            let v = values(s.batch * keys * d, 3);
            // sequence 1 has its last two keys padded
            let mut mask = vec![0f32; s.batch * keys];
            mask[2 * keys - 2..2 * keys].fill(-1e9);
            let mut out = vec![f32::NAN; q.len()];
            attention(&mut out, (&q, &k, &v), Some(&mask), s, 0.35);
            let want = naive((&q, &k, &v), Some(&mask), s, 0.35);
            let worst = out
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "queries {queries}: worst {worst}");
        }
    }
}
