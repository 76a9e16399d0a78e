//! The SASRec user encoder of `user_encoder.rs` on hand-written CPU kernels with their own
//! backward (`model.user.kernels = "fused"`, the default on the CPU). It runs on the packed
//! real rows only, attention included: each user's real positions are a run of consecutive
//! packed rows, and a real query may attend exactly the real keys at or before it, so the
//! attention of one user is a small causal block over its own rows. Dropout masks are drawn
//! from the forward context in the order the tensor version draws them (the attention mask over
//! the padded `[B, heads, L, L]` layout), so with the same seed both compute the same function;
//! `tests/user_kernels.rs` compares values and every gradient against candle autograd.
//!
//! Per block, with `y = x W^T` for every weight `W` `[out, in]`:
//! `qkv = x W_qkv^T`, `o = attention(qkv)`, `x1 = LN1(x + drop(o W_o^T))`,
//! `h = relu(x1 W_1^T + b_1)`, `x2 = LN2(x1 + drop(drop(h) W_2^T + b_2))`;
//! the input is `x0 = drop(LN0(e + pos))`.

use rayon::prelude::*;

use super::kernels::{
    LayerNormSaved, Op, add_bias, add_bias_relu, add_column_sums, apply_mask, layer_norm,
    layer_norm_backward, matmul,
};
use super::layers::Ctx;
use super::user_encoder::{PackedRows, UserEncoder};
use crate::error::{Error, Result};

/// Tensors per block in [`UserEncoder::parameters`] order.
const PER_BLOCK: usize = 10;
/// Tensors before the first block (`pos`, `ln.weight`, `ln.bias`).
const HEAD: usize = 3;

/// The packed rows of one user: `n` consecutive rows from `start`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: usize,
    n: usize,
    user: usize,
}

/// The users' runs of packed rows, in order (they cover every row).
fn segments(rows: &PackedRows) -> Vec<Segment> {
    let mut segs: Vec<Segment> = Vec::new();
    for (i, &f) in rows.flat.iter().enumerate() {
        let user = f as usize / rows.len;
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
fn dotf(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `y += alpha * x`.
fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
    y.iter_mut().zip(x).for_each(|(v, u)| *v += alpha * u);
}

/// What one block's forward keeps for the backward.
#[derive(Debug)]
struct BlockSaved {
    /// Block input `[R, d]`.
    x: Vec<f32>,
    /// `[R, 3d]`.
    qkv: Vec<f32>,
    /// Softmax probabilities per segment and head, `n x n` each (above the diagonal 0).
    probs: Vec<f32>,
    /// Attention dropout mask over the padded `[B, heads, L, L]` layout.
    att_mask: Option<Vec<f32>>,
    /// Attention output before the output projection `[R, d]`.
    o: Vec<f32>,
    m_a: Option<Vec<f32>>,
    ln1: LayerNormSaved,
    /// `LN1` output `[R, d]`.
    x1: Vec<f32>,
    /// `relu(x1 W_1^T + b_1)` `[R, ffn]`.
    h: Vec<f32>,
    m_h: Option<Vec<f32>>,
    m_f: Option<Vec<f32>>,
    ln2: LayerNormSaved,
}

/// A forward pass: the output rows and what the backward needs.
#[derive(Debug)]
pub struct UserRun {
    out: Vec<f32>,
    segs: Vec<Segment>,
    positions: Vec<u32>,
    len: usize,
    ln0: LayerNormSaved,
    m0: Option<Vec<f32>>,
    blocks: Vec<BlockSaved>,
}

impl UserRun {
    /// The encoder's output `[R, d]`, one row per packed row.
    pub fn output(&self) -> &[f32] {
        &self.out
    }
}

/// The encoder's parameters read out of its tensors, and its shape.
#[derive(Debug)]
pub struct UserKernel {
    d: usize,
    heads: usize,
    ffn: usize,
    eps: f32,
    dropout: f32,
    /// In [`UserEncoder::parameters`] order.
    params: Vec<Vec<f32>>,
}

impl UserKernel {
    /// Read the current parameter values of `enc`.
    pub fn read(enc: &UserEncoder) -> Result<UserKernel> {
        let cfg = enc.config();
        let params = enc
            .parameters()
            .into_iter()
            .map(|t| Ok(t.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<Vec<_>>>()?;
        if params.len() != HEAD + PER_BLOCK * cfg.blocks {
            return Err(Error::Internal("user encoder parameter list".into()));
        }
        Ok(UserKernel {
            d: cfg.dim,
            heads: cfg.heads,
            ffn: cfg.ffn,
            eps: cfg.ln_eps as f32,
            dropout: cfg.dropout,
            params,
        })
    }

    fn blocks(&self) -> usize {
        (self.params.len() - HEAD) / PER_BLOCK
    }

    /// Parameter `k` of block `b`.
    fn w(&self, b: usize, k: usize) -> &[f32] {
        &self.params[HEAD + PER_BLOCK * b + k]
    }

    /// Encode the packed rows' item embeddings `e` `[R, d]`; training mode (dropout) follows `ctx`.
    pub fn forward(&self, e: &[f32], rows: &PackedRows, ctx: &Ctx) -> UserRun {
        let (d, r, p) = (self.d, rows.count(), self.dropout);
        assert_eq!(e.len(), r * d, "user kernel: input rows");
        let mut x = e.to_vec();
        for (row, &pos) in x.chunks_exact_mut(d).zip(&rows.positions) {
            let pos = pos as usize;
            axpy(row, 1.0, &self.params[0][pos * d..(pos + 1) * d]);
        }
        let ln0 = layer_norm(&mut x, &self.params[1], &self.params[2], self.eps);
        let m0 = ctx.dropout_mask(r * d, p);
        apply_mask(&mut x, m0.as_deref());
        let segs = segments(rows);
        let mut blocks = Vec::with_capacity(self.blocks());
        for b in 0..self.blocks() {
            let mut qkv = vec![0f32; r * 3 * d];
            matmul(
                &mut qkv,
                &x,
                Op::N,
                self.w(b, 0),
                Op::T,
                (r, 3 * d, d),
                false,
            );
            let att_mask = ctx.dropout_mask(rows.batch * self.heads * rows.len * rows.len, p);
            let (o, probs) = self.attention(&qkv, &segs, rows, att_mask.as_deref());
            let mut x1 = vec![0f32; r * d];
            matmul(&mut x1, &o, Op::N, self.w(b, 1), Op::T, (r, d, d), false);
            let m_a = ctx.dropout_mask(r * d, p);
            apply_mask(&mut x1, m_a.as_deref());
            axpy(&mut x1, 1.0, &x);
            let ln1 = layer_norm(&mut x1, self.w(b, 2), self.w(b, 3), self.eps);
            let mut h = vec![0f32; r * self.ffn];
            matmul(
                &mut h,
                &x1,
                Op::N,
                self.w(b, 4),
                Op::T,
                (r, self.ffn, d),
                false,
            );
            add_bias_relu(&mut h, self.w(b, 5));
            let m_h = ctx.dropout_mask(r * self.ffn, p);
            let mut hd = h.clone();
            apply_mask(&mut hd, m_h.as_deref());
            let mut x2 = vec![0f32; r * d];
            matmul(
                &mut x2,
                &hd,
                Op::N,
                self.w(b, 6),
                Op::T,
                (r, d, self.ffn),
                false,
            );
            add_bias(&mut x2, self.w(b, 7));
            let m_f = ctx.dropout_mask(r * d, p);
            apply_mask(&mut x2, m_f.as_deref());
            axpy(&mut x2, 1.0, &x1);
            let ln2 = layer_norm(&mut x2, self.w(b, 8), self.w(b, 9), self.eps);
            blocks.push(BlockSaved {
                x: std::mem::replace(&mut x, x2),
                qkv,
                probs,
                att_mask,
                o,
                m_a,
                ln1,
                x1,
                h,
                m_h,
                m_f,
                ln2,
            });
        }
        UserRun {
            out: x,
            segs,
            positions: rows.positions.clone(),
            len: rows.len,
            ln0,
            m0,
            blocks,
        }
    }

    /// Index of (user, head, query position, key position) in the padded attention mask.
    fn mask_at(&self, len: usize, user: usize, head: usize, qi: u32, kj: u32) -> usize {
        ((user * self.heads + head) * len + qi as usize) * len + kj as usize
    }

    /// Causal attention of every segment: the concatenated head outputs `[R, d]` and the
    /// softmax probabilities (segment by segment, head by head, `n x n`).
    fn attention(
        &self,
        qkv: &[f32],
        segs: &[Segment],
        rows: &PackedRows,
        mask: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<f32>) {
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let w3 = 3 * d;
        let parts: Vec<(Vec<f32>, Vec<f32>)> = segs
            .par_iter()
            .map(|s| {
                let n = s.n;
                let row = |i: usize, part: usize, hh: usize| {
                    let at = (s.start + i) * w3 + part * d + hh * dh;
                    &qkv[at..at + dh]
                };
                let pos = &rows.positions[s.start..s.start + n];
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
                            let m = mask.map_or(1.0, |m| {
                                m[self.mask_at(rows.len, s.user, hh, pos[i], pos[j])]
                            });
                            if m != 0.0 {
                                axpy(oi, *pj * m, row(j, 2, hh));
                            }
                        }
                    }
                }
                (o, probs)
            })
            .collect();
        let mut o = Vec::with_capacity(rows.count() * d);
        let mut probs = Vec::new();
        for (so, sp) in parts {
            o.extend(so);
            probs.extend(sp);
        }
        (o, probs)
    }

    /// Backward of [`UserKernel::attention`]: d loss / d qkv `[R, 3d]` from d loss / d o.
    fn attention_backward(&self, run: &UserRun, saved: &BlockSaved, d_o: &[f32]) -> Vec<f32> {
        let (d, heads) = (self.d, self.heads);
        let dh = d / heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let w3 = 3 * d;
        let qkv = &saved.qkv;
        let mask = saved.att_mask.as_deref();
        let mut offsets = Vec::with_capacity(run.segs.len());
        let mut off = 0;
        for s in &run.segs {
            offsets.push(off);
            off += heads * s.n * s.n;
        }
        let parts: Vec<Vec<f32>> = run
            .segs
            .par_iter()
            .zip(offsets)
            .map(|(s, off)| {
                let n = s.n;
                let row = |i: usize, part: usize, hh: usize| {
                    let at = (s.start + i) * w3 + part * d + hh * dh;
                    &qkv[at..at + dh]
                };
                let pos = &run.positions[s.start..s.start + n];
                let mut g = vec![0f32; n * w3];
                let mut da = vec![0f32; n];
                for hh in 0..heads {
                    for i in 0..n {
                        let p = &saved.probs[off + (hh * n + i) * n..off + (hh * n + i + 1) * n];
                        let doi =
                            &d_o[(s.start + i) * d + hh * dh..(s.start + i) * d + (hh + 1) * dh];
                        let mut sum = 0f32;
                        for j in 0..=i {
                            let m = mask.map_or(1.0, |m| {
                                m[self.mask_at(run.len, s.user, hh, pos[i], pos[j])]
                            });
                            da[j] = dotf(doi, row(j, 2, hh)) * m;
                            if m != 0.0 {
                                let at = j * w3 + 2 * d + hh * dh;
                                axpy(&mut g[at..at + dh], p[j] * m, doi);
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

    /// Gradients from d loss / d output `[R, d]`: d loss / d input rows `[R, d]` and every
    /// parameter's gradient, in [`UserEncoder::parameters`] order.
    pub fn backward(&self, run: &UserRun, d_out: &[f32]) -> (Vec<f32>, Vec<Vec<f32>>) {
        let (d, ffn) = (self.d, self.ffn);
        let r = run.positions.len();
        assert_eq!(d_out.len(), r * d, "user kernel: output gradient rows");
        let mut grads: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0f32; p.len()]).collect();
        let mut dx = d_out.to_vec();
        for b in (0..self.blocks()).rev() {
            let s = &run.blocks[b];
            let g = &mut grads[HEAD + PER_BLOCK * b..HEAD + PER_BLOCK * (b + 1)];
            let (g_ln2w, g_ln2b) = pair(g, 8);
            layer_norm_backward(&mut dx, &s.ln2, self.w(b, 8), g_ln2w, g_ln2b);
            // FFN branch: dx is d loss / d (x1 + drop(f)).
            let mut df = dx.clone();
            apply_mask(&mut df, s.m_f.as_deref());
            let mut hd = s.h.clone();
            apply_mask(&mut hd, s.m_h.as_deref());
            matmul(&mut g[6], &df, Op::T, &hd, Op::N, (d, ffn, r), false);
            add_column_sums(&mut g[7], &df);
            let mut dh = vec![0f32; r * ffn];
            matmul(&mut dh, &df, Op::N, self.w(b, 6), Op::N, (r, ffn, d), false);
            apply_mask(&mut dh, s.m_h.as_deref());
            dh.iter_mut()
                .zip(&s.h)
                .for_each(|(v, h)| *v = if *h > 0.0 { *v } else { 0.0 });
            matmul(&mut g[4], &dh, Op::T, &s.x1, Op::N, (ffn, d, r), false);
            add_column_sums(&mut g[5], &dh);
            matmul(&mut dx, &dh, Op::N, self.w(b, 4), Op::N, (r, d, ffn), true);
            let (g_ln1w, g_ln1b) = pair(g, 2);
            layer_norm_backward(&mut dx, &s.ln1, self.w(b, 2), g_ln1w, g_ln1b);
            // Attention branch: dx is d loss / d (x + drop(o W_o^T)).
            let mut da = dx.clone();
            apply_mask(&mut da, s.m_a.as_deref());
            matmul(&mut g[1], &da, Op::T, &s.o, Op::N, (d, d, r), false);
            let mut d_o = vec![0f32; r * d];
            matmul(&mut d_o, &da, Op::N, self.w(b, 1), Op::N, (r, d, d), false);
            let dqkv = self.attention_backward(run, s, &d_o);
            matmul(&mut g[0], &dqkv, Op::T, &s.x, Op::N, (3 * d, d, r), false);
            matmul(
                &mut dx,
                &dqkv,
                Op::N,
                self.w(b, 0),
                Op::N,
                (r, d, 3 * d),
                true,
            );
        }
        apply_mask(&mut dx, run.m0.as_deref());
        let (g_lnw, g_lnb) = pair(&mut grads, 1);
        layer_norm_backward(&mut dx, &run.ln0, &self.params[1], g_lnw, g_lnb);
        for (row, &pos) in dx.chunks_exact(d).zip(&run.positions) {
            let pos = pos as usize;
            axpy(&mut grads[0][pos * d..(pos + 1) * d], 1.0, row);
        }
        (dx, grads)
    }
}

/// Mutable borrows of `v[i]` and `v[i + 1]`.
fn pair(v: &mut [Vec<f32>], i: usize) -> (&mut [f32], &mut [f32]) {
    let (a, b) = v.split_at_mut(i + 1);
    (&mut a[i], &mut b[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ParamStore;
    use crate::model::user_encoder::UserEncoderConfig;
    use candle_core::{Device, Tensor};

    /// Rows of users 0 and 2 (user 1 all padding): ids [[0, 3, 4], [0, 0, 0], [5, 6, 7]] give
    /// flat rows 1, 2, 6, 7, 8, i.e. segments (start 0, n 2, user 0) and (start 2, n 3, user 2).
    #[test]
    fn segments_follow_users() {
        let rows = PackedRows::of(&[0, 3, 4, 0, 0, 0, 5, 6, 7], 3, 3);
        let s: Vec<(usize, usize, usize)> = segments(&rows)
            .iter()
            .map(|s| (s.start, s.n, s.user))
            .collect();
        assert_eq!(s, [(0, 2, 0), (2, 3, 2)]);
    }

    /// The evaluation-mode forward equals the tensor encoder's `forward_rows`, and the
    /// gradient of `sum(c * out)` with respect to the inputs matches central finite differences
    /// of the kernel's own forward (f64 accumulation of the probe loss).
    #[test]
    fn forward_matches_tensor_encoder_and_input_gradient_matches_differences() {
        let cfg = UserEncoderConfig {
            dim: 8,
            heads: 2,
            ffn: 12,
            dropout: 0.0,
            ..Default::default()
        };
        let mut store = ParamStore::new(11, Device::Cpu);
        let enc = UserEncoder::new(&mut store, &cfg, 4).unwrap();
        let ids = [0u32, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9];
        let rows = PackedRows::of(&ids, 3, 4);
        let r = rows.count();
        let e: Vec<f32> = (0..r * 8)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let k = UserKernel::read(&enc).unwrap();
        let run = k.forward(&e, &rows, &Ctx::eval());
        let mask = UserEncoder::attention_mask(&ids, 3, 4, &Device::Cpu).unwrap();
        let et = Tensor::from_vec(e.clone(), (r, 8), &Device::Cpu).unwrap();
        let want: Vec<f32> = enc
            .forward_rows(&et, &rows, &mask, &Ctx::eval())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        for (a, b) in run.output().iter().zip(&want) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let c: Vec<f32> = (0..r * 8)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 3.0)
            .collect();
        let (de, _) = k.backward(&run, &c);
        let probe = |e: &[f32]| -> f64 {
            let o = k.forward(e, &rows, &Ctx::eval());
            o.output()
                .iter()
                .zip(&c)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum()
        };
        for i in (0..r * 8).step_by(5) {
            let (mut ep, mut em) = (e.clone(), e.clone());
            ep[i] += 1e-2;
            em[i] -= 1e-2;
            let fd = (probe(&ep) - probe(&em)) / 2e-2;
            assert!(
                (fd - de[i] as f64).abs() < 2e-2 * (1.0 + fd.abs()),
                "input {i}: {fd} vs {}",
                de[i]
            );
        }
    }
}
