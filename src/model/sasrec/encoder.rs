//! The SASRec user encoder (docs/MODEL.md section 4): learned positions, post-LN Transformer
//! blocks ([`super::block`]) with causal + key-padding self-attention ([`super::attention`],
//! Q/K/V/O without bias), ReLU FFN, dropout, xavier-normal initialisation. The output at every
//! position predicts the next item.
//!
//! On both engines: [`UserEncoder`] holds the parameters and composes candle ops over the packed
//! real rows; [`UserKernel`] is the same stack on the CPU kernels with its own backward, run on
//! the packed rows only (each user's attention a small causal block over its own rows). Its
//! dropout masks are drawn from the forward context in the order the candle version draws them
//! (the attention mask over the padded `[B, heads, L, L]` layout), so with the same seed both
//! compute the same function (`tests/iisan.rs::user_kernels_match_autograd_with_dropout`
//! compares the loss and every gradient). The input is `x0 = drop(LN0(e + pos))`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::attention::{CausalAttention, Segment, axpy, segments};
use super::block::{
    Block, BlockMasks, BlockSaved, PartRows, backward_kernel, forward_kernel, rows_of,
};
pub use super::config::UserEncoderConfig;
pub use super::params::{BlockParams, UserParams};
use crate::data::batch::PackedRows;
use crate::error::{Error, Result};
use crate::nn::cpu::apply_mask;
use crate::nn::layer_norm::LayerNorm;
use crate::nn::layer_norm::{LayerNormSaved, layer_norm, layer_norm_backward};
use crate::nn::layers::Ctx;
use crate::nn::params::{GROUP_DEFAULT, Init, ParamStore};
use crate::nn::{Engine, GradSink, Kernel, KernelNodes};

/// Additive attention-mask value of forbidden positions.
pub(super) const MASKED: f32 = -1e9;

/// The SASRec user encoder.
#[derive(Debug)]
pub struct UserEncoder {
    cfg: UserEncoderConfig,
    max_len: usize,
    pos: Tensor,
    ln: LayerNorm,
    blocks: Vec<Block>,
    pub(super) engine: Engine,
    pub(super) nodes: KernelNodes,
}

impl UserEncoder {
    /// Create the encoder's parameters (names `user.*`) for sequences of `max_len` positions,
    /// trained by `engine`.
    pub fn new(
        store: &mut ParamStore,
        cfg: &UserEncoderConfig,
        max_len: usize,
        engine: Engine,
    ) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.dim;
        let g = GROUP_DEFAULT;
        let pos = store.add("user.pos", &[max_len, d], Init::XavierNormal, g)?;
        let ln = LayerNorm::new(store, "user.ln", d, cfg.ln_eps, g)?;
        let mut blocks = Vec::with_capacity(cfg.blocks);
        for b in 0..cfg.blocks {
            let p = format!("user.block{b}");
            blocks.push(Block::new(store, &p, (d, cfg.ffn, cfg.ln_eps), g)?);
        }
        Ok(UserEncoder {
            cfg: cfg.clone(),
            max_len,
            pos,
            ln,
            blocks,
            engine,
            nodes: store.nodes().clone(),
        })
    }

    /// The embedding width d.
    pub fn dim(&self) -> usize {
        self.cfg.dim
    }

    /// Number of input positions.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The encoder's shape.
    pub fn config(&self) -> &UserEncoderConfig {
        &self.cfg
    }

    /// Every parameter tensor, by name.
    pub fn params(&self) -> UserParams<&Tensor> {
        UserParams {
            pos: &self.pos,
            ln_w: self.ln.weight(),
            ln_b: self.ln.bias(),
            blocks: self
                .blocks
                .iter()
                .map(|b| BlockParams {
                    qkv: b.qkv.weight(),
                    out: b.out.weight(),
                    ln1_w: b.ln1.weight(),
                    ln1_b: b.ln1.bias(),
                    ff1_w: b.ff1.weight(),
                    ff1_b: b.ff1.bias().expect("ff1 has a bias"),
                    ff2_w: b.ff2.weight(),
                    ff2_b: b.ff2.bias().expect("ff2 has a bias"),
                    ln2_w: b.ln2.weight(),
                    ln2_b: b.ln2.bias(),
                })
                .collect(),
        }
    }

    /// Evaluation-mode states `[n, d]` at the last position of `n` left-padded histories
    /// (`histories` row-major `[n, L]`, item 0 = padding, each row with at least one item),
    /// reading item embeddings from `items` `[N + 1, d]`: what evaluation and recommendation
    /// score items against.
    pub fn last_states(&self, items: &Tensor, histories: &[u32], n: usize) -> Result<Tensor> {
        let l = self.max_len;
        if histories.len() != n * l {
            return Err(Error::Internal(format!(
                "last_states: {} history slots for {n} users of {l} positions",
                histories.len()
            )));
        }
        let dev = items.device();
        let rows = PackedRows::of(histories, n, l);
        let real: Vec<u32> = rows.flat.iter().map(|&f| histories[f as usize]).collect();
        let e = items.index_select(&Tensor::from_vec(real, rows.count(), dev)?, 0)?;
        let mask = UserEncoder::attention_mask(histories, n, l, dev)?;
        // each user's last position is real (its history is non-empty)
        let last: Vec<u32> = (0..n)
            .map(|u| rows.scatter[u * l + l - 1].saturating_sub(1))
            .collect();
        Ok(self
            .forward_rows(&e, &rows, &mask, &Ctx::eval())?
            .index_select(&Tensor::from_vec(last, n, dev)?, 0)?
            .detach())
    }

    /// Put gradients `g` (named as [`UserEncoder::params`]) into `sink`.
    pub fn put_grads(&self, g: UserParams<Vec<f32>>, sink: &mut GradSink) {
        for (t, v) in self.params().into_vec().into_iter().zip(g.into_vec()) {
            sink.put(t, v);
        }
    }

    /// The additive attention mask `[B, 1, L, L]` for left-padded `ids` (`[B, L]` row-major):
    /// query `i` may attend key `j` iff `j <= i` and `ids[j] != 0`.
    pub fn attention_mask(
        ids: &[u32],
        batch: usize,
        len: usize,
        device: &Device,
    ) -> Result<Tensor> {
        let mut m = vec![0f32; batch * len * len];
        for b in 0..batch {
            for i in 0..len {
                for j in 0..len {
                    if j > i || ids[b * len + j] == 0 {
                        m[(b * len + i) * len + j] = MASKED;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(m, (batch, 1, len, len), device)?)
    }

    /// Encode item embeddings `e` `[B, L, d]` with mask from [`UserEncoder::attention_mask`];
    /// returns `[B, L, d]` (every position, padding included).
    pub fn forward(&self, e: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, l, d) = e.dims3()?;
        let rows = PackedRows::all(b, l);
        let out = self.forward_rows(&e.reshape((b * l, d))?, &rows, mask, ctx)?;
        Ok(out.reshape((b, l, d))?)
    }

    /// Encode only the real positions: `e` `[R, d]` holds the item embeddings of `rows`'
    /// positions (in their order); returns `[R, d]`. Position-wise layers (projections,
    /// LayerNorm, FFN) run on the R real rows only; attention runs on the padded `[B, L]`
    /// layout, where padding keys are masked. Real positions never attend to padding and
    /// position-wise layers do not mix rows, so the real rows' outputs equal the dense
    /// [`UserEncoder::forward`]'s (with left-padded short histories that skips most rows).
    pub fn forward_rows(
        &self,
        e: &Tensor,
        rows: &PackedRows,
        mask: &Tensor,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let p = self.cfg.dropout;
        let dev = e.device();
        let pos_idx = Tensor::from_slice(&rows.positions, rows.positions.len(), dev)?;
        let pos = crate::nn::mixed::index_select(&self.pos, &pos_idx)?;
        let mut x = ctx.dropout(&self.ln.forward_t(&(e + pos)?, ctx)?, p)?;
        for blk in &self.blocks {
            x = blk.forward(x, (rows, mask), (self.cfg.heads, p), ctx)?;
        }
        Ok(x)
    }
}

/// Rows below which a batch is encoded in one piece.
const MIN_SPLIT: usize = 64;

/// Every dropout mask of a forward pass, drawn up front in the order the tensor version
/// applies them (input, then per block attention, attention output, FFN output),
/// so both see the same masks and the two halves of a batch can run at once.
#[derive(Debug)]
struct Masks {
    input: Option<Vec<f32>>,
    blocks: Vec<BlockMasks>,
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
    pub(super) w: UserParams<Vec<f32>>,
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
    pub(super) fn forward_rows(&self, e: &[f32], rows: &PackedRows, ctx: &Ctx) -> UserRun {
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
        let (d, ffn) = (self.d, self.ffn);
        let positions = &positions[lo..hi];
        let mut x = e[lo * d..hi * d].to_vec();
        for (row, &pos) in x.chunks_exact_mut(d).zip(positions) {
            let pos = pos as usize;
            axpy(row, 1.0, &self.w.pos[pos * d..(pos + 1) * d]);
        }
        let ln0 = layer_norm(&mut x, &self.w.ln_w, &self.w.ln_b, self.eps);
        apply_mask(&mut x, rows_of(&masks.input, lo, hi, d));
        let rows = PartRows {
            lo,
            hi,
            segs: &segs,
            positions,
        };
        let att = self.attention(len);
        let mut blocks = Vec::with_capacity(self.blocks());
        for (w, m) in self.w.blocks.iter().zip(&masks.blocks) {
            let (out, saved) = forward_kernel(w, x, (&att, m, rows), (d, ffn, self.eps));
            x = out;
            blocks.push(saved);
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
        let positions = &run.positions[lo..hi];
        let mut grads = self.w.map(|p| vec![0f32; p.len()]);
        let mut dx = d_out[lo * d..hi * d].to_vec();
        let rows = PartRows {
            lo,
            hi,
            segs: &part.segs,
            positions,
        };
        let att = self.attention(run.len);
        for b in (0..self.blocks()).rev() {
            let (s, m) = (&part.blocks[b], &run.masks.blocks[b]);
            let (w, g) = (&self.w.blocks[b], &mut grads.blocks[b]);
            backward_kernel(w, s, (&att, m, rows), (&mut dx, g), (d, ffn));
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
