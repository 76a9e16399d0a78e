//! The user encoder's training objective: its outputs at a batch's real input positions scored
//! by a loss against the batch's item embeddings (docs/MODEL.md sections 4-5), as one value of
//! the graph the trainer differentiates, on either engine.
//!
//! On the kernel engine one node runs the encoder's kernel and the loss's, forward now and
//! backward when the graph's backward reaches it: the embedding table's gradient gathers the
//! loss's part and the encoder's input rows' part in one place, in one order (each input row's
//! gradient added, in row order, to the loss's). On the graph engine the encoder's candle
//! forward feeds the loss's candle forward.

use candle_core::Tensor;

use super::encoder::UserEncoder;
use super::encoder::{UserInput, UserKernel};
use crate::data::batch::{PackedRows, TrainBatch, input_rows};
use crate::efficiency::Profile;
use crate::error::{Error, Result};
use crate::nn::{Ctx, Engine, Kernel, NodeBackward, Pending};

/// A loss of the encoder's outputs against item embeddings (the in-batch or the full softmax),
/// on both engines. `p` holds the outputs at the batch's real input positions (`rows` order).
pub trait RowsLoss {
    /// Graph engine: the loss of `p` `[R, d]` against the table `[U + 1, d]` (row 0 the padding
    /// entry; slot `s` of the batch holds entry `inv[s]`).
    fn graph(&self, p: &Tensor, table: &Tensor) -> Result<Tensor>;

    /// Kernel engine: the loss of `p` `[R, d]` against the table `[U + 1, d]` (row 0 the padding
    /// entry) and its gradients with respect to `p` and to the table.
    fn kernel(&self, rows: &PackedRows, p: &[f32], table: &[f32], d: usize) -> RowsLossValue;
}

/// The loss's value and gradients on the kernel engine.
#[derive(Debug)]
pub struct RowsLossValue {
    /// The loss.
    pub loss: f32,
    /// d loss / d p `[R, d]`.
    pub d_rows: Vec<f32>,
    /// d loss / d table `[U + 1, d]`.
    pub d_table: Vec<f32>,
}

/// What one training loss reads (see [`UserEncoder::train_loss`]).
#[derive(Clone, Copy)]
struct LossInputs<'a> {
    emb: &'a Tensor,
    batch: &'a TrainBatch,
    inv: &'a [u32],
    loss: &'a dyn RowsLoss,
}

impl UserEncoder {
    /// The training loss of `batch` (training mode: dropout from `ctx`): the batch's distinct
    /// items have embeddings `emb` `[U, d]` (graph tensors), slot `s` holds entry `inv[s]` of
    /// `[zero; emb]`; the encoder reads each user's inputs and `loss` scores its outputs.
    pub fn train_loss(
        &self,
        emb: &Tensor,
        batch: &TrainBatch,
        inv: &[u32],
        loss: &dyn RowsLoss,
        (ctx, prof): (&Ctx, &mut Profile),
    ) -> Result<Tensor> {
        let x = LossInputs {
            emb,
            batch,
            inv,
            loss,
        };
        match self.engine {
            Engine::Kernels => self.kernel_loss(&x, (ctx, prof)),
            Engine::Graph => self.graph_loss(&x, (ctx, prof)),
        }
    }

    fn graph_loss(&self, x: &LossInputs, (ctx, prof): (&Ctx, &mut Profile)) -> Result<Tensor> {
        let (emb, batch, inv) = (x.emb, x.batch, x.inv);
        let dev = emb.device();
        let (b, l) = (batch.batch, batch.width - 1);
        let (p, table) = prof.time("user encoder forward", || -> Result<_> {
            let zero = Tensor::zeros((1, self.dim()), emb.dtype(), dev)?;
            let table = Tensor::cat(&[&zero, emb], 0)?;
            let (in_ids, rows, in_rows) = input_rows(batch, inv);
            let inputs = table.index_select(&Tensor::from_vec(in_rows, rows.count(), dev)?, 0)?;
            let mask = UserEncoder::attention_mask(&in_ids, b, l, dev)?;
            let p = self.forward_rows(&inputs, &rows, &mask, ctx)?;
            Ok((p, table))
        })?;
        prof.time("loss forward", || x.loss.graph(&p, &table))
    }

    fn kernel_loss(&self, x: &LossInputs, (ctx, prof): (&Ctx, &mut Profile)) -> Result<Tensor> {
        let (emb, batch, inv) = (x.emb, x.batch, x.inv);
        let d = self.dim();
        let (_, rows, in_rows) = input_rows(batch, inv);
        let mut table = vec![0f32; d];
        table.extend(emb.flatten_all()?.to_vec1::<f32>()?);
        let kernel = UserKernel::read(self)?;
        let e: Vec<f32> = in_rows
            .iter()
            .flat_map(|&i| table[i as usize * d..(i as usize + 1) * d].iter().copied())
            .collect();
        let input = UserInput {
            e: &e,
            rows: &rows,
            ctx,
        };
        let run = prof.time("user encoder forward", || kernel.forward(input));
        let lv = prof.time("loss", || x.loss.kernel(&rows, run.output(), &table, d));
        let value = Tensor::new(lv.loss, emb.device())?;
        let weights: Vec<Tensor> = self.params().into_vec().into_iter().cloned().collect();
        let (n, dev) = (emb.dim(0)?, emb.device().clone());
        let backward: NodeBackward = Box::new(move |g: &Tensor, pending: &mut Pending| {
            let scale = g.to_scalar::<f32>()?;
            let times = |v: Vec<f32>| -> Vec<f32> {
                if scale == 1.0 {
                    v
                } else {
                    v.into_iter().map(|x| x * scale).collect()
                }
            };
            let (d_rows, mut d_table) = (times(lv.d_rows), times(lv.d_table));
            // the backward reads only what the forward saved: no dropout is drawn
            let eval = Ctx::eval();
            let input = UserInput {
                e: &e,
                rows: &rows,
                ctx: &eval,
            };
            let ug = pending.time("user encoder backward", || {
                kernel.backward(input, run, &d_rows)
            });
            for (&i, g) in in_rows.iter().zip(ug.d_input.chunks_exact(d)) {
                let row = &mut d_table[i as usize * d..(i as usize + 1) * d];
                row.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            }
            for (t, v) in weights.iter().zip(ug.params.into_vec()) {
                pending.grads.put(t, v);
            }
            let d_emb = Tensor::from_vec(d_table[d..].to_vec(), (n, d), &dev)?;
            Ok(Some(d_emb))
        });
        if emb.dim(1)? != d {
            return Err(Error::Internal(format!(
                "item embeddings of width {} for an encoder of width {d}",
                emb.dim(1)?
            )));
        }
        self.nodes.node(Some(emb), value, backward)
    }
}
