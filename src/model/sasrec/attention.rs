//! Multi-head causal self-attention over packed rows (the SASRec user encoder's attention,
//! docs/MODEL.md section 4), on both engines. On candle ops ([`graph_attention`]) the rows are
//! scattered into the padded `[B, heads, L, L]` layout, where padding keys are masked. On the CPU
//! kernels ([`CausalAttention`], with a hand-written backward) the rows of one user are a run of
//! consecutive packed rows (a [`Segment`]) in position order; a real query attends exactly the
//! real keys at or before it, so each user's attention is a small causal block over its own
//! rows. Attention dropout masks are indexed over the padded layout on both.

use candle_core::{D, DType, Tensor};
use rayon::prelude::*;

use crate::data::batch::PackedRows;
use crate::error::Result;
use crate::nn::layers::Ctx;

/// The attention on candle ops: `qkv` `[R, 3d]` holds the packed real rows `rows` (Q, K, V,
/// each head's columns contiguous), `mask` the additive mask `[B, 1, L, L]`; returns the
/// attention output `[R, d]` before the output projection, with dropout `p` on the
/// probabilities.
pub fn graph_attention(
    qkv: &Tensor,
    rows: &PackedRows,
    mask: &Tensor,
    (heads, p): (usize, f32),
    ctx: &Ctx,
) -> Result<Tensor> {
    let d = qkv.dim(1)? / 3;
    let (b, l, h) = (rows.batch, rows.len, heads);
    let dh = d / h;
    let dev = qkv.device();
    let scatter = Tensor::from_slice(&rows.scatter, rows.scatter.len(), dev)?;
    let gather = Tensor::from_slice(&rows.flat, rows.flat.len(), dev)?;
    let zero = Tensor::zeros((1, 3 * d), qkv.dtype(), dev)?;
    let qkv = Tensor::cat(&[&zero, qkv], 0)?
        .index_select(&scatter, 0)?
        .reshape((b, l, 3, h, dh))?
        .permute((2, 0, 3, 1, 4))?;
    let q = qkv.get(0)?.contiguous()?;
    let k = qkv.get(1)?.contiguous()?;
    let v = qkv.get(2)?.contiguous()?;
    let scale = 1.0 / (dh as f64).sqrt();
    // the scores are masked and normalised in f32 (and the weights cast back to the values'
    // dtype): a half-precision product's scores keep f32 softmax statistics
    let att = (q.matmul(&k.t()?)? * scale)?.to_dtype(DType::F32)?;
    let att = candle_nn::ops::softmax(&att.broadcast_add(mask)?, D::Minus1)?;
    let att = ctx.dropout(&att.to_dtype(v.dtype())?, p)?;
    Ok(att
        .matmul(&v)?
        .transpose(1, 2)?
        .reshape((b * l, d))?
        .index_select(&gather, 0)?)
}

/// The packed rows of one user: `n` consecutive rows from `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First row.
    pub start: usize,
    /// Rows.
    pub n: usize,
    /// The user's index in the batch.
    pub user: usize,
}

/// The users' runs of packed rows (flat positions `b * len + l`, in order); they cover every row.
pub fn segments(flat: &[u32], len: usize) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    for (i, &f) in flat.iter().enumerate() {
        let user = f as usize / len;
        match segs.last_mut() {
            Some(s) if s.user == user => s.n += 1,
            _ => segs.push(Segment {
                start: i,
                n: 1,
                user,
            }),
        }
    }
    segs
}

/// `sum(a * b)` in f32 (short vectors; the compiler vectorises the zip).
pub fn dotf(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha * x`.
pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(v, u)| *v += alpha * u);
}

/// Shape of the attention: model width, heads, and the padded sequence length L.
#[derive(Debug, Clone, Copy)]
pub struct CausalAttention {
    /// Model width d (`qkv` rows are `3d` wide: Q, K, V, each head's `d / heads` columns
    /// contiguous).
    pub dim: usize,
    /// Heads.
    pub heads: usize,
    /// Padded length L (for the dropout mask's layout).
    pub len: usize,
}

impl CausalAttention {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// Index of (user, head, query position, key position) in the padded dropout mask.
    fn mask_at(&self, user: usize, head: usize, qi: u32, kj: u32) -> usize {
        ((user * self.heads + head) * self.len + qi as usize) * self.len + kj as usize
    }

    /// Softmax probabilities' offsets: segment by segment, head by head, `n x n` each.
    fn offsets(&self, segs: &[Segment]) -> Vec<usize> {
        let mut off = 0;
        segs.iter()
            .map(|s| {
                let o = off;
                off += self.heads * s.n * s.n;
                o
            })
            .collect()
    }

    /// Attention of every segment over `qkv` `[R, 3d]` (rows at `positions`): the concatenated
    /// head outputs `[R, d]` and the softmax probabilities (zero above the diagonal).
    /// `mask`: the attention dropout mask (inverted-dropout scale included), or `None`.
    pub fn forward(
        &self,
        qkv: &[f32],
        segs: &[Segment],
        positions: &[u32],
        mask: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (d, heads, dh) = (self.dim, self.heads, self.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        let parts: Vec<(Vec<f32>, Vec<f32>)> = segs
            .par_iter()
            .map(|s| {
                let n = s.n;
                let row = |i: usize, part: usize, hh: usize| {
                    let at = (s.start + i) * 3 * d + part * d + hh * dh;
                    &qkv[at..at + dh]
                };
                let pos = &positions[s.start..s.start + n];
                let mut o = vec![0f32; n * d];
                let mut probs = vec![0f32; heads * n * n];
                for hh in 0..heads {
                    for i in 0..n {
                        let p = &mut probs[(hh * n + i) * n..(hh * n + i + 1) * n];
                        let q = row(i, 0, hh);
                        let mut mx = f32::NEG_INFINITY;
                        for (j, pj) in p.iter_mut().enumerate().take(i + 1) {
                            *pj = dotf(q, row(j, 1, hh)) * scale;
                            mx = mx.max(*pj);
                        }
                        let mut sum = 0f32;
                        for pj in p.iter_mut().take(i + 1) {
                            *pj = (*pj - mx).exp();
                            sum += *pj;
                        }
                        let oi = &mut o[i * d + hh * dh..i * d + (hh + 1) * dh];
                        for (j, pj) in p.iter_mut().enumerate().take(i + 1) {
                            *pj /= sum;
                            let m =
                                mask.map_or(1.0, |m| m[self.mask_at(s.user, hh, pos[i], pos[j])]);
                            if m != 0.0 {
                                axpy(oi, *pj * m, row(j, 2, hh));
                            }
                        }
                    }
                }
                (o, probs)
            })
            .collect();
        let mut o = Vec::with_capacity(positions.len() * d);
        let mut probs = Vec::new();
        for (so, sp) in parts {
            o.extend(so);
            probs.extend(sp);
        }
        (o, probs)
    }

    /// d loss / d qkv `[R, 3d]` from d loss / d o `[R, d]`, with the forward's `probs`.
    /// Per query i of a head, with dropped probabilities `m_ij p_ij`:
    /// `dV_j += m_ij p_ij dO_i`, `da_j = m_ij <dO_i, V_j>`, `dS_ij = p_ij (da_j - sum_j p_ij da_j)`,
    /// `dQ_i += scale sum_j dS_ij K_j`, `dK_j += scale dS_ij Q_i`.
    pub fn backward(
        &self,
        qkv: &[f32],
        probs: &[f32],
        segs: &[Segment],
        positions: &[u32],
        mask: Option<&[f32]>,
        d_o: &[f32],
    ) -> Vec<f32> {
        let (d, heads, dh) = (self.dim, self.heads, self.head_dim());
        let scale = 1.0 / (dh as f32).sqrt();
        let w3 = 3 * d;
        let parts: Vec<Vec<f32>> = segs
            .par_iter()
            .zip(self.offsets(segs))
            .map(|(s, off)| {
                let n = s.n;
                let row = |i: usize, part: usize, hh: usize| {
                    let at = (s.start + i) * w3 + part * d + hh * dh;
                    &qkv[at..at + dh]
                };
                let pos = &positions[s.start..s.start + n];
                let mut g = vec![0f32; n * w3];
                let mut da = vec![0f32; n];
                for hh in 0..heads {
                    for i in 0..n {
                        let p = &probs[off + (hh * n + i) * n..off + (hh * n + i + 1) * n];
                        let at = (s.start + i) * d + hh * dh;
                        let doi = &d_o[at..at + dh];
                        let mut sum = 0f32;
                        for j in 0..=i {
                            let m =
                                mask.map_or(1.0, |m| m[self.mask_at(s.user, hh, pos[i], pos[j])]);
                            da[j] = dotf(doi, row(j, 2, hh)) * m;
                            if m != 0.0 {
                                let va = j * w3 + 2 * d + hh * dh;
                                axpy(&mut g[va..va + dh], p[j] * m, doi);
                            }
                            sum += p[j] * da[j];
                        }
                        for j in 0..=i {
                            let ds = p[j] * (da[j] - sum) * scale;
                            if ds != 0.0 {
                                let qa = i * w3 + hh * dh;
                                axpy(&mut g[qa..qa + dh], ds, row(j, 1, hh));
                                let ka = j * w3 + d + hh * dh;
                                axpy(&mut g[ka..ka + dh], ds, row(i, 0, hh));
                            }
                        }
                    }
                }
                g
            })
            .collect();
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows of users 0 and 2 (user 1 all padding): flat rows 1, 2, 6, 7, 8 with L = 3 give
    /// segments (start 0, n 2, user 0) and (start 2, n 3, user 2).
    #[test]
    fn segments_follow_users() {
        let s: Vec<(usize, usize, usize)> = segments(&[1, 2, 6, 7, 8], 3)
            .iter()
            .map(|s| (s.start, s.n, s.user))
            .collect();
        assert_eq!(s, [(0, 2, 0), (2, 3, 2)]);
    }

    /// One user, one head, d = 1, two rows with q = k = [1, 1], v = [2, 4] (so qkv rows are
    /// [q, k, v] = [1, 1, 2] and [1, 1, 4]): row 0 attends itself (o = 2); row 1 has equal
    /// scores, p = [0.5, 0.5], o = 3. With d loss / d o = [0, 1]: dV = [0.5, 0.5]; the scores'
    /// gradient is p (dv - p.dv) = 0.5 (2 - 3), 0.5 (4 - 3) = [-0.5, 0.5], so dQ_1 =
    /// -0.5 k_0 + 0.5 k_1 = 0, dK_0 = -0.5 q_1 = -0.5, dK_1 = 0.5.
    #[test]
    fn two_rows_by_hand() {
        let att = CausalAttention {
            dim: 1,
            heads: 1,
            len: 2,
        };
        let qkv = [1f32, 1., 2., 1., 1., 4.];
        let segs = segments(&[0, 1], 2);
        let (o, probs) = att.forward(&qkv, &segs, &[0, 1], None);
        assert_eq!(o, [2.0, 3.0]);
        assert_eq!(probs, [1.0, 0.0, 0.5, 0.5]);
        let g = att.backward(&qkv, &probs, &segs, &[0, 1], None, &[0.0, 1.0]);
        // [dq0, dk0, dv0, dq1, dk1, dv1]
        assert_eq!(g, [0.0, -0.5, 0.5, 0.0, 0.5, 0.5]);
    }
}
