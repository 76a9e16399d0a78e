//! The SASRec user encoder (docs/MODEL.md section 4): learned positions, post-LN Transformer blocks with
//! causal + key-padding self-attention (Q/K/V/O without bias), ReLU FFN, dropout, xavier-normal
//! initialisation. The output at every position predicts the next item.

use candle_core::{D, Device, Tensor};
use candle_nn::{Linear, Module};
use serde::{Deserialize, Serialize};

pub use super::params::{BlockParams, UserParams};
use crate::data::batch::PackedRows;
use crate::error::{Error, Result};
use crate::nn::layers::{Ctx, LayerNorm};
use crate::nn::params::{GROUP_DEFAULT, Init, ParamStore};
use crate::nn::{Engine, GradSink, KernelNodes};

/// Additive attention-mask value of forbidden positions.
const MASKED: f32 = -1e9;

/// Shape of the user encoder; defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserEncoderConfig {
    /// Embedding width d (also the item embedding width).
    pub dim: usize,
    /// Transformer blocks.
    pub blocks: usize,
    /// Attention heads (must divide `dim`).
    pub heads: usize,
    /// FFN hidden width.
    pub ffn: usize,
    /// Dropout probability.
    pub dropout: f32,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
}

impl Default for UserEncoderConfig {
    fn default() -> Self {
        UserEncoderConfig {
            dim: 64,
            blocks: 2,
            heads: 2,
            ffn: 256,
            dropout: 0.1,
            ln_eps: 1e-6,
        }
    }
}

impl UserEncoderConfig {
    /// Check widths and probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(Error::Config(format!(
                "model.user.dim = {} must be a positive multiple of model.user.heads = {}",
                self.dim, self.heads
            )));
        }
        if self.blocks == 0 || self.ffn == 0 {
            return Err(Error::Config(
                "model.user.blocks and model.user.ffn must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "model.user.dropout = {} must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Block {
    qkv: Linear,
    out: Linear,
    ln1: LayerNorm,
    ff1: Linear,
    ff2: Linear,
    ln2: LayerNorm,
}

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
            // Q, K and V are three bias-free d x d maps stored as one [3d, d] weight; each third
            // is drawn with the xavier std of a d x d matrix, sqrt(2 / 2d).
            let qkv_w = store.add(
                &format!("{p}.qkv.weight"),
                &[3 * d, d],
                Init::Normal((1.0 / d as f64).sqrt()),
                g,
            )?;
            blocks.push(Block {
                qkv: Linear::new(qkv_w, None),
                out: store.linear(&format!("{p}.out"), d, d, false, Init::XavierNormal, g)?,
                ln1: LayerNorm::new(store, &format!("{p}.ln1"), d, cfg.ln_eps, g)?,
                ff1: store.linear(&format!("{p}.ff1"), d, cfg.ffn, true, Init::XavierNormal, g)?,
                ff2: store.linear(&format!("{p}.ff2"), cfg.ffn, d, true, Init::XavierNormal, g)?,
                ln2: LayerNorm::new(store, &format!("{p}.ln2"), d, cfg.ln_eps, g)?,
            });
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
        let d = e.dim(1)?;
        let (b, l) = (rows.batch, rows.len);
        let p = self.cfg.dropout;
        let h = self.cfg.heads;
        let dh = d / h;
        let dev = e.device();
        let pos_idx = Tensor::from_slice(&rows.positions, rows.positions.len(), dev)?;
        let scatter = Tensor::from_slice(&rows.scatter, rows.scatter.len(), dev)?;
        let gather = Tensor::from_slice(&rows.flat, rows.flat.len(), dev)?;
        let pos = self.pos.index_select(&pos_idx, 0)?;
        let mut x = ctx.dropout(&self.ln.forward_t(&(e + pos)?, ctx)?, p)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for blk in &self.blocks {
            let qkv = blk.qkv.forward(&x)?; // [R, 3d]
            let zero = Tensor::zeros((1, 3 * d), qkv.dtype(), dev)?;
            let qkv = Tensor::cat(&[&zero, &qkv], 0)?
                .index_select(&scatter, 0)?
                .reshape((b, l, 3, h, dh))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
            let att = ctx.dropout(&candle_nn::ops::softmax(&att, D::Minus1)?, p)?;
            let a = att
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b * l, d))?
                .index_select(&gather, 0)?;
            let a = blk.out.forward(&a)?;
            x = blk.ln1.forward_t(&(x + ctx.dropout(&a, p)?)?, ctx)?;
            let f = blk.ff2.forward(&blk.ff1.forward(&x)?.relu()?)?;
            x = blk.ln2.forward_t(&(x + ctx.dropout(&f, p)?)?, ctx)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed rows equal the dense encoder's outputs at the real positions (evaluation mode).
    #[test]
    fn packed_rows_match_dense_positions() {
        // ids [[0, 0, 3], [0, 4, 5]]: real flat positions 2, 4, 5; scatter 0,0,1,0,2,3.
        let rows = PackedRows::of(&[0, 0, 3, 0, 4, 5], 2, 3);
        assert_eq!(rows.flat, [2, 4, 5]);
        assert_eq!(rows.positions, [2, 1, 2]);
        assert_eq!(rows.scatter, [0, 0, 1, 0, 2, 3]);
        let mut s = ParamStore::new(5, Device::Cpu);
        let enc =
            UserEncoder::new(&mut s, &UserEncoderConfig::default(), 3, Engine::Graph).unwrap();
        let ids = [0u32, 0, 3, 0, 4, 5];
        let mask = UserEncoder::attention_mask(&ids, 2, 3, &Device::Cpu).unwrap();
        let e = Tensor::randn(0f32, 1.0, (2, 3, 64), &Device::Cpu).unwrap();
        let dense = enc.forward(&e, &mask, &Ctx::eval()).unwrap();
        let dense = dense.reshape((6, 64)).unwrap();
        let idx = Tensor::new(&[2u32, 4, 5], &Device::Cpu).unwrap();
        let er = e.reshape((6, 64)).unwrap().index_select(&idx, 0).unwrap();
        let packed = enc.forward_rows(&er, &rows, &mask, &Ctx::eval()).unwrap();
        let want = dense.index_select(&idx, 0).unwrap();
        let diff = (packed - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-5);
    }

    /// The authors' dropout placement, checked by what a training forward draws from the
    /// context's stream: B = 2 users of L = 3 slots (R = 6 rows), d = 64, 2 heads, 2 blocks:
    /// the input (R d = 384), then per block the attention probabilities (B h L L = 36), the
    /// attention output (384) and the FFN output (384): 1,992 mask elements. A dropout on the
    /// FFN hidden layer (R x 256 = 1,536 per block) would draw 3,072 more. Each 64-bit draw
    /// decides two elements and every count is even, so the stream after the forward equals
    /// a fresh stream after one 1,992-element mask.
    #[test]
    fn a_training_forward_draws_exactly_the_authors_dropout_masks() {
        let mut s = ParamStore::new(5, Device::Cpu);
        let enc =
            UserEncoder::new(&mut s, &UserEncoderConfig::default(), 3, Engine::Graph).unwrap();
        let mask = UserEncoder::attention_mask(&[0u32, 1, 2, 3, 4, 5], 2, 3, &Device::Cpu).unwrap();
        let e = Tensor::randn(0f32, 1.0, (2, 3, 64), &Device::Cpu).unwrap();
        let ctx = Ctx::train(9);
        enc.forward(&e, &mask, &ctx).unwrap();
        let fresh = Ctx::train(9);
        fresh.dropout_mask(384 + 2 * (36 + 384 + 384), 0.1);
        assert_eq!(ctx.dropout_mask(64, 0.5), fresh.dropout_mask(64, 0.5));
    }

    #[test]
    fn mask_is_causal_and_hides_padding() {
        // ids [0, 5, 7]: key 0 is padding; query 1 sees key 1; query 2 sees keys 1, 2.
        let m = UserEncoder::attention_mask(&[0, 5, 7], 1, 3, &Device::Cpu).unwrap();
        let v: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let k = MASKED;
        assert_eq!(v, [k, k, k, k, 0.0, k, k, 0.0, 0.0]);
    }

    #[test]
    fn causal_outputs_ignore_the_future_and_parameters_count() {
        let mut s = ParamStore::new(3, Device::Cpu);
        let cfg = UserEncoderConfig {
            dropout: 0.0,
            ..Default::default()
        };
        let enc = UserEncoder::new(&mut s, &cfg, 10, Engine::Graph).unwrap();
        // pos 640 + ln 128 + per block (qkv 12288 + out 4096 + ln 128 + ff1 16640 + ff2 16448
        // + ln 128 = 49728) x 2 = 100,224.
        assert_eq!(s.num_trainable(), 100_224);
        let ids = [0u32, 0, 3, 4, 5, 6, 7, 8, 9, 1];
        let mask = UserEncoder::attention_mask(&ids, 1, 10, &Device::Cpu).unwrap();
        let e1 = Tensor::randn(0f32, 1.0, (1, 10, 64), &Device::Cpu).unwrap();
        // change only the last position's input: earlier outputs must not move.
        let last = Tensor::randn(0f32, 1.0, (1, 1, 64), &Device::Cpu).unwrap();
        let e2 = Tensor::cat(&[e1.narrow(1, 0, 9).unwrap(), last], 1).unwrap();
        let o1 = enc.forward(&e1, &mask, &Ctx::eval()).unwrap();
        let o2 = enc.forward(&e2, &mask, &Ctx::eval()).unwrap();
        let diff = (o1.narrow(1, 2, 7).unwrap() - o2.narrow(1, 2, 7).unwrap()).unwrap();
        assert!(
            diff.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                < 1e-5
        );
        let diff_last = (o1.narrow(1, 9, 1).unwrap() - o2.narrow(1, 9, 1).unwrap()).unwrap();
        assert!(
            diff_last
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 1e-3
        );
    }
}
