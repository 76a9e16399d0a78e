//! The one interface every method's item side implements: [`ItemTower`] ("embed these items").
//! The trainer, the evaluator and a trained model know item towers only through it.

use candle_core::{DType, Tensor};

use super::method::Method;
use crate::efficiency::Profile;
use crate::error::Result;
use crate::nn::Ctx;

/// Something that turns item ids into item embeddings of width `dim()`.
pub trait ItemTower: Send + Sync {
    /// The method this tower implements.
    fn method(&self) -> Method;

    /// Embedding width d.
    fn dim(&self) -> usize;

    /// Embeddings `[ids.len(), d]` of real items (`ids` non-empty, each in `1..=N`, no repeats
    /// needed: the trainer de-duplicates).
    fn embed(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor>;

    /// Training-mode embeddings `[ids.len(), d]` on the graph the trainer differentiates: the
    /// tower's kernels as one node where it has them and the engine runs them
    /// ([`crate::nn::KernelNodes`]), [`ItemTower::embed`] otherwise. Time spent is charged to
    /// `prof`.
    fn embed_train(&self, ids: &[u32], ctx: &Ctx, prof: &mut Profile) -> Result<Tensor> {
        prof.time("item tower forward", || self.embed(ids, ctx))
    }

    /// Embeddings `[N + 1, d]` of every item in f32 (whatever precision the tower computes
    /// in), row 0 (padding) zero, computed `chunk` items at a time in evaluation mode.
    fn embed_all(&self, num_items: usize, chunk: usize, ctx: &Ctx) -> Result<Tensor> {
        let dev = self.device();
        let mut parts = vec![Tensor::zeros((1, self.dim()), DType::F32, &dev)?];
        let ids: Vec<u32> = (1..=num_items as u32).collect();
        for c in ids.chunks(self.eval_chunk(chunk).max(1)) {
            parts.push(self.embed_eval(c, ctx)?.to_dtype(DType::F32)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Evaluation-mode embeddings of `ids`, attached to no graph; towers with a faster
    /// inference path override it.
    fn embed_eval(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor> {
        Ok(self.embed(ids, ctx)?.detach())
    }

    /// Items per evaluation chunk, given the configured `chunk` (`eval.item_chunk`); towers
    /// whose per-item activations are large bound it.
    fn eval_chunk(&self, chunk: usize) -> usize {
        chunk
    }

    /// The device the tower computes on.
    fn device(&self) -> candle_core::Device;

    /// Frozen (pretrained, not trained) parameters the tower computes with.
    fn frozen_params(&self) -> usize {
        0
    }
}
