//! The SASRec user encoder of `encoder.rs` on hand-written CPU kernels with their own
//! backward (`train.kernels = "cpu"`, the default). It runs on the packed
//! real rows only, attention included (`attention.rs`: each user's attention is a small
//! causal block over its own rows). Dropout masks are drawn from the forward context in the
//! order the tensor version draws them (the attention mask over the padded `[B, heads, L, L]`
//! layout), so with the same seed both compute the same function;
//! `tests/iisan.rs::user_kernels_match_autograd_with_dropout` compares the loss and every
//! gradient against candle autograd.
//!
//! Per block, with `y = x W^T` for every weight `W` `[out, in]`:
//! `qkv = x W_qkv^T`, `o = attention(qkv)`, `x1 = LN1(x + drop(o W_o^T))`,
//! `h = relu(x1 W_1^T + b_1)`, `x2 = LN2(x1 + drop(drop(h) W_2^T + b_2))`;
//! the input is `x0 = drop(LN0(e + pos))`.

use rayon::prelude::*;

use super::attention::{CausalAttention, Segment, axpy, segments};
use super::encoder::{UserEncoder, UserParams};
use crate::data::batch::PackedRows;
use crate::error::Result;
use crate::nn::Kernel;
use crate::nn::cpu::{
    LayerNormSaved, Op, add_bias, add_bias_relu, add_column_sums, apply_mask, layer_norm,
    layer_norm_backward, matmul,
};
use crate::nn::layers::Ctx;

/// Rows below which a batch is encoded in one piece.
const MIN_SPLIT: usize = 64;

/// One block's dropout masks (`None`: no dropout).
#[derive(Debug)]
struct BlockMasks {
    /// Attention probabilities, padded `[B, heads, L, L]`.
    att: Option<Vec<f32>>,
    /// Attention output `[R, d]`.
    a: Option<Vec<f32>>,
    /// FFN output `[R, d]` (the FFN's only dropout: docs/MODEL.md section 4).
    f: Option<Vec<f32>>,
}

/// Every dropout mask of a forward pass, drawn up front in the order the tensor version
/// applies them (input, then per block attention, attention output, FFN output),
/// so both see the same masks and the two halves of a batch can run at once.
#[derive(Debug)]
struct Masks {
    input: Option<Vec<f32>>,
    blocks: Vec<BlockMasks>,
}

/// Rows `lo..hi` of a row-major mask of width `w`.
fn rows_of(m: &Option<Vec<f32>>, lo: usize, hi: usize, w: usize) -> Option<&[f32]> {
    m.as_deref().map(|m| &m[lo * w..hi * w])
}

/// What one block's forward keeps for the backward (rows of one part).
#[derive(Debug)]
struct BlockSaved {
    /// Block input `[R, d]`.
    x: Vec<f32>,
    /// `[R, 3d]`.
    qkv: Vec<f32>,
    /// Softmax probabilities per segment and head, `n x n` each (above the diagonal 0).
    probs: Vec<f32>,
    /// Attention output before the output projection `[R, d]`.
    o: Vec<f32>,
    ln1: LayerNormSaved,
    /// `LN1` output `[R, d]`.
    x1: Vec<f32>,
    /// `relu(x1 W_1^T + b_1)` `[R, ffn]`.
    h: Vec<f32>,
    ln2: LayerNormSaved,
}

/// The forward of packed rows `lo..hi` (whole users).
#[derive(Debug)]
struct Part {
    lo: usize,
    hi: usize,
    /// Segments with starts relative to `lo`.
    segs: Vec<Segment>,
    out: Vec<f32>,
    ln0: LayerNormSaved,
    blocks: Vec<BlockSaved>,
}

/// A forward pass: the output rows and what the backward needs.
#[derive(Debug)]
pub struct UserRun {
    out: Vec<f32>,
    positions: Vec<u32>,
    len: usize,
    masks: Masks,
    parts: Vec<Part>,
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
    /// The weights, by name.
    w: UserParams<Vec<f32>>,
}

impl UserKernel {
    /// Read the current parameter values of `enc`.
    pub fn read(enc: &UserEncoder) -> Result<UserKernel> {
        let cfg = enc.config();
        let w = enc
            .params()
            .try_map(|t| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) })?;
        Ok(UserKernel {
            d: cfg.dim,
            heads: cfg.heads,
            ffn: cfg.ffn,
            eps: cfg.ln_eps as f32,
            dropout: cfg.dropout,
            w,
        })
    }

    fn blocks(&self) -> usize {
        self.w.blocks.len()
    }

    fn attention(&self, len: usize) -> CausalAttention {
        CausalAttention {
            dim: self.d,
            heads: self.heads,
            len,
        }
    }

    /// Encode the packed rows' item embeddings `e` `[R, d]`; training mode (dropout) follows
    /// `ctx`. With more than one compute thread the users are encoded in two halves at once
    /// (every operation is row-wise or within one user).
    fn forward_rows(&self, e: &[f32], rows: &PackedRows, ctx: &Ctx) -> UserRun {
        let (d, r, p) = (self.d, rows.count(), self.dropout);
        assert_eq!(e.len(), r * d, "user kernel: input rows");
        let masks = Masks {
            input: ctx.dropout_mask(r * d, p),
            blocks: (0..self.blocks())
                .map(|_| BlockMasks {
                    att: ctx.dropout_mask(rows.batch * self.heads * rows.len * rows.len, p),
                    a: ctx.dropout_mask(r * d, p),
                    f: ctx.dropout_mask(r * d, p),
                })
                .collect(),
        };
        let segs = segments(&rows.flat, rows.len);
        // Split at the first user boundary past half the rows.
        let cut = if rayon::current_num_threads() > 1 && r >= MIN_SPLIT {
            segs.iter()
                .map(|s| s.start)
                .find(|&st| st >= r / 2)
                .unwrap_or(r)
        } else {
            r
        };
        let part = |lo: usize, hi: usize| {
            let segs: Vec<Segment> = segs
                .iter()
                .filter(|s| s.start >= lo && s.start < hi)
                .map(|s| Segment {
                    start: s.start - lo,
                    ..*s
                })
                .collect();
            self.forward_part(e, &rows.positions, rows.len, &masks, (lo, hi), segs)
        };
        let ranges = if cut < r {
            vec![(0, cut), (cut, r)]
        } else {
            vec![(0, r)]
        };
        let parts: Vec<Part> = ranges.par_iter().map(|&(lo, hi)| part(lo, hi)).collect();
        let out = parts.iter().flat_map(|p| p.out.iter().copied()).collect();
        UserRun {
            out,
            positions: rows.positions.clone(),
            len: rows.len,
            masks,
            parts,
        }
    }

    /// The forward of rows `lo..hi` (whole users, `segs` relative to `lo`).
    fn forward_part(
        &self,
        e: &[f32],
        positions: &[u32],
        len: usize,
        masks: &Masks,
        (lo, hi): (usize, usize),
        segs: Vec<Segment>,
    ) -> Part {
        let (d, ffn, r) = (self.d, self.ffn, hi - lo);
        let positions = &positions[lo..hi];
        let mut x = e[lo * d..hi * d].to_vec();
        for (row, &pos) in x.chunks_exact_mut(d).zip(positions) {
            let pos = pos as usize;
            axpy(row, 1.0, &self.w.pos[pos * d..(pos + 1) * d]);
        }
        let ln0 = layer_norm(&mut x, &self.w.ln_w, &self.w.ln_b, self.eps);
        apply_mask(&mut x, rows_of(&masks.input, lo, hi, d));
        let mut blocks = Vec::with_capacity(self.blocks());
        for (w, m) in self.w.blocks.iter().zip(&masks.blocks) {
            let mut qkv = vec![0f32; r * 3 * d];
            matmul(&mut qkv, &x, Op::N, &w.qkv, Op::T, (r, 3 * d, d), false);
            let (o, probs) = self
                .attention(len)
                .forward(&qkv, &segs, positions, m.att.as_deref());
            let mut x1 = vec![0f32; r * d];
            matmul(&mut x1, &o, Op::N, &w.out, Op::T, (r, d, d), false);
            apply_mask(&mut x1, rows_of(&m.a, lo, hi, d));
            axpy(&mut x1, 1.0, &x);
            let ln1 = layer_norm(&mut x1, &w.ln1_w, &w.ln1_b, self.eps);
            let mut h = vec![0f32; r * ffn];
            matmul(&mut h, &x1, Op::N, &w.ff1_w, Op::T, (r, ffn, d), false);
            add_bias_relu(&mut h, &w.ff1_b);
            let mut x2 = vec![0f32; r * d];
            matmul(&mut x2, &h, Op::N, &w.ff2_w, Op::T, (r, d, ffn), false);
            add_bias(&mut x2, &w.ff2_b);
            apply_mask(&mut x2, rows_of(&m.f, lo, hi, d));
            axpy(&mut x2, 1.0, &x1);
            let ln2 = layer_norm(&mut x2, &w.ln2_w, &w.ln2_b, self.eps);
            blocks.push(BlockSaved {
                x: std::mem::replace(&mut x, x2),
                qkv,
                probs,
                o,
                ln1,
                x1,
                h,
                ln2,
            });
        }
        Part {
            lo,
            hi,
            segs,
            out: x,
            ln0,
            blocks,
        }
    }

    /// Gradients from d loss / d output `[R, d]`: d loss / d input rows `[R, d]` and every
    /// parameter's gradient, by name.
    fn backward_rows(&self, run: &UserRun, d_out: &[f32]) -> (Vec<f32>, UserParams<Vec<f32>>) {
        assert_eq!(
            d_out.len(),
            run.positions.len() * self.d,
            "user kernel: output gradient rows"
        );
        let mut results: Vec<_> = run
            .parts
            .par_iter()
            .map(|p| self.backward_part(run, p, d_out))
            .collect();
        let (mut dx, mut grads) = results.remove(0);
        for (dx_b, grads_b) in results {
            dx.extend(dx_b);
            grads.add(grads_b);
        }
        (dx, grads)
    }

    /// The backward of one part: its rows' input gradients and its parameter gradients.
    fn backward_part(
        &self,
        run: &UserRun,
        part: &Part,
        d_out: &[f32],
    ) -> (Vec<f32>, UserParams<Vec<f32>>) {
        let (d, ffn) = (self.d, self.ffn);
        let (lo, hi) = (part.lo, part.hi);
        let r = hi - lo;
        let positions = &run.positions[lo..hi];
        let mut grads = self.w.map(|p| vec![0f32; p.len()]);
        let mut dx = d_out[lo * d..hi * d].to_vec();
        for b in (0..self.blocks()).rev() {
            let s = &part.blocks[b];
            let m = &run.masks.blocks[b];
            let (w, g) = (&self.w.blocks[b], &mut grads.blocks[b]);
            layer_norm_backward(&mut dx, &s.ln2, &w.ln2_w, &mut g.ln2_w, &mut g.ln2_b);
            // FFN branch: dx is d loss / d (x1 + drop(f)).
            let mut df = dx.clone();
            apply_mask(&mut df, rows_of(&m.f, lo, hi, d));
            matmul(&mut g.ff2_w, &df, Op::T, &s.h, Op::N, (d, ffn, r), false);
            add_column_sums(&mut g.ff2_b, &df);
            let mut dh = vec![0f32; r * ffn];
            matmul(&mut dh, &df, Op::N, &w.ff2_w, Op::N, (r, ffn, d), false);
            dh.iter_mut()
                .zip(&s.h)
                .for_each(|(v, h)| *v = if *h > 0.0 { *v } else { 0.0 });
            matmul(&mut g.ff1_w, &dh, Op::T, &s.x1, Op::N, (ffn, d, r), false);
            add_column_sums(&mut g.ff1_b, &dh);
            matmul(&mut dx, &dh, Op::N, &w.ff1_w, Op::N, (r, d, ffn), true);
            layer_norm_backward(&mut dx, &s.ln1, &w.ln1_w, &mut g.ln1_w, &mut g.ln1_b);
            // Attention branch: dx is d loss / d (x + drop(o W_o^T)).
            let mut da = dx.clone();
            apply_mask(&mut da, rows_of(&m.a, lo, hi, d));
            matmul(&mut g.out, &da, Op::T, &s.o, Op::N, (d, d, r), false);
            let mut d_o = vec![0f32; r * d];
            matmul(&mut d_o, &da, Op::N, &w.out, Op::N, (r, d, d), false);
            let dqkv = self.attention(run.len).backward(
                &s.qkv,
                &s.probs,
                &part.segs,
                positions,
                m.att.as_deref(),
                &d_o,
            );
            matmul(&mut g.qkv, &dqkv, Op::T, &s.x, Op::N, (3 * d, d, r), false);
            matmul(&mut dx, &dqkv, Op::N, &w.qkv, Op::N, (r, d, 3 * d), true);
        }
        apply_mask(&mut dx, rows_of(&run.masks.input, lo, hi, d));
        layer_norm_backward(
            &mut dx,
            &part.ln0,
            &self.w.ln_w,
            &mut grads.ln_w,
            &mut grads.ln_b,
        );
        for (row, &pos) in dx.chunks_exact(d).zip(positions) {
            let pos = pos as usize;
            axpy(&mut grads.pos[pos * d..(pos + 1) * d], 1.0, row);
        }
        (dx, grads)
    }
}

/// What the encoder's forward reads: the item embeddings `e` `[R, d]` of the packed real
/// rows `rows`, and the context that says whether (and which) dropout applies.
#[derive(Clone, Copy)]
pub struct UserInput<'a> {
    /// `[R, d]`.
    pub e: &'a [f32],
    /// The real positions of the batch.
    pub rows: &'a PackedRows,
    /// Training (dropout) or evaluation mode.
    pub ctx: &'a Ctx,
}

/// The encoder's named gradients.
#[derive(Debug)]
pub struct UserGrads {
    /// d loss / d e `[R, d]`.
    pub d_input: Vec<f32>,
    /// Every weight's gradient.
    pub params: UserParams<Vec<f32>>,
}

impl Kernel for UserKernel {
    type Input<'a> = UserInput<'a>;
    type Saved = UserRun;
    type Grads = UserGrads;

    /// Encode the packed rows; with more than one compute thread the users are encoded in two
    /// halves at once (every operation is row-wise or within one user).
    fn forward(&self, input: UserInput<'_>) -> UserRun {
        self.forward_rows(input.e, input.rows, input.ctx)
    }

    fn backward(&self, _input: UserInput<'_>, saved: UserRun, d_out: &[f32]) -> UserGrads {
        let (d_input, params) = self.backward_rows(&saved, d_out);
        UserGrads { d_input, params }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sasrec::encoder::UserEncoderConfig;
    use crate::nn::ParamStore;
    use candle_core::{Device, Tensor};

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
        let enc = UserEncoder::new(&mut store, &cfg, 4, crate::nn::Engine::Kernels).unwrap();
        let ids = [0u32, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 9];
        let rows = PackedRows::of(&ids, 3, 4);
        let r = rows.count();
        let e: Vec<f32> = (0..r * 8)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) / 8.0)
            .collect();
        let k = UserKernel::read(&enc).unwrap();
        let ctx = Ctx::eval();
        let run = k.forward_rows(&e, &rows, &ctx);
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
        let input = UserInput {
            e: &e,
            rows: &rows,
            ctx: &ctx,
        };
        let de = k.backward(input, run, &c).d_input;
        let probe = |e: &[f32]| -> f64 {
            let o = k.forward(UserInput {
                e,
                rows: &rows,
                ctx: &ctx,
            });
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
