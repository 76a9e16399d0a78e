//! One post-LN Transformer block of the user encoder (docs/MODEL.md section 4), on both engines:
//! [`Block`] holds its parameters and composes candle ops; [`forward_kernel`] and
//! [`backward_kernel`] are the same block on the CPU kernels, over packed rows. With
//! `y = x W^T` for every weight `W` `[out, in]`:
//!
//! `qkv = x W_qkv^T`, `o = attention(qkv)`, `x1 = LN1(x + drop(o W_o^T))`,
//! `h = relu(x1 W_1^T + b_1)`, `x2 = LN2(x1 + drop(drop(h) W_2^T + b_2))`
//!
//! (the FFN's one dropout is on its output: the authors' placement).

use candle_core::Tensor;
use candle_nn::Linear;

use super::attention::{CausalAttention, Segment, axpy, graph_attention};
use super::params::BlockParams;
use crate::data::batch::PackedRows;
use crate::error::Result;
use crate::nn::cpu::{Op, add_bias, add_bias_relu, add_column_sums, apply_mask, matmul};
use crate::nn::layer_norm::LayerNorm;
use crate::nn::layer_norm::{LayerNormSaved, layer_norm, layer_norm_backward};
use crate::nn::layers::Ctx;
use crate::nn::mixed::linear;
use crate::nn::params::{Init, ParamStore};

/// One block's parameters.
#[derive(Debug)]
pub(super) struct Block {
    pub(super) qkv: Linear,
    pub(super) out: Linear,
    pub(super) ln1: LayerNorm,
    pub(super) ff1: Linear,
    pub(super) ff2: Linear,
    pub(super) ln2: LayerNorm,
}

impl Block {
    /// Create block `p`'s parameters (`{p}.qkv.weight`, `{p}.out`, ...) of width `d`, FFN
    /// width `ffn`, in group `g`.
    pub(super) fn new(
        store: &mut ParamStore,
        p: &str,
        (d, ffn, ln_eps): (usize, usize, f64),
        g: &'static str,
    ) -> Result<Block> {
        // Q, K and V are three bias-free d x d maps stored as one [3d, d] weight; each third
        // is drawn with the xavier std of a d x d matrix, sqrt(2 / 2d).
        let qkv_w = store.add(
            &format!("{p}.qkv.weight"),
            &[3 * d, d],
            Init::Normal((1.0 / d as f64).sqrt()),
            g,
        )?;
        Ok(Block {
            qkv: Linear::new(qkv_w, None),
            out: store.linear(&format!("{p}.out"), d, d, false, Init::XavierNormal, g)?,
            ln1: LayerNorm::new(store, &format!("{p}.ln1"), d, ln_eps, g)?,
            ff1: store.linear(&format!("{p}.ff1"), d, ffn, true, Init::XavierNormal, g)?,
            ff2: store.linear(&format!("{p}.ff2"), ffn, d, true, Init::XavierNormal, g)?,
            ln2: LayerNorm::new(store, &format!("{p}.ln2"), d, ln_eps, g)?,
        })
    }

    /// The block on candle ops: `x` `[R, d]` holds the packed real rows `rows`, `mask` the
    /// additive attention mask `[B, 1, L, L]`, `p` the dropout probability.
    pub(super) fn forward(
        &self,
        x: Tensor,
        (rows, mask): (&PackedRows, &Tensor),
        (heads, p): (usize, f32),
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let qkv = linear(&self.qkv, &x)?; // [R, 3d]
        let a = graph_attention(&qkv, rows, mask, (heads, p), ctx)?;
        let a = linear(&self.out, &a)?;
        let x = self.ln1.forward_t(&(x + ctx.dropout(&a, p)?)?, ctx)?;
        let f = linear(&self.ff2, &linear(&self.ff1, &x)?.relu()?)?;
        self.ln2.forward_t(&(x + ctx.dropout(&f, p)?)?, ctx)
    }
}

/// One block's dropout masks (`None`: no dropout).
#[derive(Debug)]
pub(super) struct BlockMasks {
    /// Attention probabilities, padded `[B, heads, L, L]`.
    pub(super) att: Option<Vec<f32>>,
    /// Attention output `[R, d]`.
    pub(super) a: Option<Vec<f32>>,
    /// FFN output `[R, d]` (the FFN's only dropout: docs/MODEL.md section 4).
    pub(super) f: Option<Vec<f32>>,
}

/// Rows `lo..hi` of a row-major mask of width `w`.
pub(super) fn rows_of(m: &Option<Vec<f32>>, lo: usize, hi: usize, w: usize) -> Option<&[f32]> {
    m.as_deref().map(|m| &m[lo * w..hi * w])
}

/// What one block's kernel forward keeps for the backward (rows of one part).
#[derive(Debug)]
pub(super) struct BlockSaved {
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

/// Where a part's rows are: its packed rows `lo..hi` (whole users), their segments (relative to
/// `lo`) and positions.
#[derive(Debug, Clone, Copy)]
pub(super) struct PartRows<'a> {
    pub(super) lo: usize,
    pub(super) hi: usize,
    pub(super) segs: &'a [Segment],
    pub(super) positions: &'a [u32],
}

/// The block on the CPU kernels over a part's rows `x` (`[R, d]`, consumed): its output and
/// what the backward needs. `dims` = (d, ffn, LayerNorm epsilon).
pub(super) fn forward_kernel(
    w: &BlockParams<Vec<f32>>,
    x: Vec<f32>,
    (att, m, rows): (&CausalAttention, &BlockMasks, PartRows<'_>),
    (d, ffn, eps): (usize, usize, f32),
) -> (Vec<f32>, BlockSaved) {
    let (lo, hi) = (rows.lo, rows.hi);
    let r = hi - lo;
    let mut qkv = vec![0f32; r * 3 * d];
    matmul(&mut qkv, &x, Op::N, &w.qkv, Op::T, (r, 3 * d, d), false);
    let (o, probs) = att.forward(&qkv, rows.segs, rows.positions, m.att.as_deref());
    let mut x1 = vec![0f32; r * d];
    matmul(&mut x1, &o, Op::N, &w.out, Op::T, (r, d, d), false);
    apply_mask(&mut x1, rows_of(&m.a, lo, hi, d));
    axpy(&mut x1, 1.0, &x);
    let ln1 = layer_norm(&mut x1, &w.ln1_w, &w.ln1_b, eps);
    let mut h = vec![0f32; r * ffn];
    matmul(&mut h, &x1, Op::N, &w.ff1_w, Op::T, (r, ffn, d), false);
    add_bias_relu(&mut h, &w.ff1_b);
    let mut x2 = vec![0f32; r * d];
    matmul(&mut x2, &h, Op::N, &w.ff2_w, Op::T, (r, d, ffn), false);
    add_bias(&mut x2, &w.ff2_b);
    apply_mask(&mut x2, rows_of(&m.f, lo, hi, d));
    axpy(&mut x2, 1.0, &x1);
    let ln2 = layer_norm(&mut x2, &w.ln2_w, &w.ln2_b, eps);
    let saved = BlockSaved {
        x,
        qkv,
        probs,
        o,
        ln1,
        x1,
        h,
        ln2,
    };
    (x2, saved)
}

/// The block's backward on the CPU kernels: `dx` holds d loss / d output on entry and d loss /
/// d input on return; the weights' gradients are added into `g`.
pub(super) fn backward_kernel(
    w: &BlockParams<Vec<f32>>,
    s: &BlockSaved,
    (att, m, rows): (&CausalAttention, &BlockMasks, PartRows<'_>),
    (dx, g): (&mut Vec<f32>, &mut BlockParams<Vec<f32>>),
    (d, ffn): (usize, usize),
) {
    let (lo, hi) = (rows.lo, rows.hi);
    let r = hi - lo;
    layer_norm_backward(dx, &s.ln2, &w.ln2_w, &mut g.ln2_w, &mut g.ln2_b);
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
    matmul(dx, &dh, Op::N, &w.ff1_w, Op::N, (r, d, ffn), true);
    layer_norm_backward(dx, &s.ln1, &w.ln1_w, &mut g.ln1_w, &mut g.ln1_b);
    // Attention branch: dx is d loss / d (x + drop(o W_o^T)).
    let mut da = dx.clone();
    apply_mask(&mut da, rows_of(&m.a, lo, hi, d));
    matmul(&mut g.out, &da, Op::T, &s.o, Op::N, (d, d, r), false);
    let mut d_o = vec![0f32; r * d];
    matmul(&mut d_o, &da, Op::N, &w.out, Op::N, (r, d, d), false);
    let dqkv = att.backward(
        &s.qkv,
        &s.probs,
        rows.segs,
        rows.positions,
        m.att.as_deref(),
        &d_o,
    );
    matmul(&mut g.qkv, &dqkv, Op::T, &s.x, Op::N, (3 * d, d, r), false);
    matmul(dx, &dqkv, Op::N, &w.qkv, Op::N, (r, d, 3 * d), true);
}
