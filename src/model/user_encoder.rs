//! The SASRec user encoder (spec section 4): learned positions, post-LN Transformer blocks with
//! causal + key-padding self-attention (Q/K/V/O without bias), ReLU FFN, dropout, xavier-normal
//! initialisation. The output at every position predicts the next item.

use candle_core::{D, Device, Tensor};
use candle_nn::{Linear, Module};
use serde::{Deserialize, Serialize};

use super::layers::{Ctx, LayerNorm};
use super::params::{GROUP_DEFAULT, Init, ParamStore};
use crate::error::{Error, Result};

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
        if self.dim == 0 || self.heads == 0 || self.dim % self.heads != 0 {
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
}

impl UserEncoder {
    /// Create the encoder's parameters (names `user.*`) for sequences of `max_len` positions.
    pub fn new(store: &mut ParamStore, cfg: &UserEncoderConfig, max_len: usize) -> Result<Self> {
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
        })
    }

    /// Number of input positions.
    pub fn max_len(&self) -> usize {
        self.max_len
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
    /// returns `[B, L, d]`.
    pub fn forward(&self, e: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, l, d) = e.dims3()?;
        let p = self.cfg.dropout;
        let h = self.cfg.heads;
        let dh = d / h;
        let pos = self.pos.narrow(0, 0, l)?;
        let mut x = ctx.dropout(&self.ln.forward(&e.broadcast_add(&pos)?)?, p)?;
        let scale = 1.0 / (dh as f64).sqrt();
        for blk in &self.blocks {
            let qkv = blk
                .qkv
                .forward(&x)?
                .reshape((b, l, 3, h, dh))?
                .permute((2, 0, 3, 1, 4))?;
            let q = qkv.get(0)?.contiguous()?;
            let k = qkv.get(1)?.contiguous()?;
            let v = qkv.get(2)?.contiguous()?;
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(mask)?;
            let att = ctx.dropout(&candle_nn::ops::softmax(&att, D::Minus1)?, p)?;
            let a = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
            let a = blk.out.forward(&a)?;
            x = blk.ln1.forward(&(x + ctx.dropout(&a, p)?)?)?;
            let f = blk
                .ff2
                .forward(&ctx.dropout(&blk.ff1.forward(&x)?.relu()?, p)?)?;
            x = blk.ln2.forward(&(x + ctx.dropout(&f, p)?)?)?;
        }
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let enc = UserEncoder::new(&mut s, &cfg, 10).unwrap();
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
