//! What the two loss kernels share: each computes the loss and its gradients in one pass (the
//! gradient falls out of the softmax the forward computes anyway), from the same input, so
//! their `Kernel` backward is the saved gradient scaled, and their value for the user
//! encoder's objective is forward then backward at scale 1.

use crate::model::sasrec::RowsLossValue;
use crate::nn::Kernel;

/// What the loss reads: the user states `p` `[R, d]` of the real rows and the embedding table
/// `[U + 1, d]` of the batch's distinct items (row 0 the padding entry).
#[derive(Debug, Clone, Copy)]
pub struct LossInput<'a> {
    /// `[R, d]`.
    pub p: &'a [f32],
    /// `[U + 1, d]`.
    pub table: &'a [f32],
    /// Embedding width.
    pub d: usize,
}

/// The loss value and its gradients.
#[derive(Debug)]
pub struct LossGrads {
    /// Mean cross-entropy.
    pub loss: f32,
    /// d loss / d P `[R, d]`.
    pub d_rows: Vec<f32>,
    /// d loss / d table `[U + 1, d]` (row 0, the padding entry, included).
    pub d_table: Vec<f32>,
}

impl LossGrads {
    /// The gradients times `d_out[0]` (d total / d loss; 1 for the training loss).
    pub fn scaled(self, d_out: &[f32]) -> LossGrads {
        let scale = d_out[0];
        if scale == 1.0 {
            return self;
        }
        let times = |v: Vec<f32>| v.into_iter().map(|x| x * scale).collect();
        LossGrads {
            loss: self.loss,
            d_rows: times(self.d_rows),
            d_table: times(self.d_table),
        }
    }
}

/// The loss and its gradients of a one-pass loss kernel, as the objective reads them.
pub fn value_of<K>(kernel: &K, input: LossInput<'_>) -> RowsLossValue
where
    K: for<'a> Kernel<Input<'a> = LossInput<'a>, Saved = LossGrads, Grads = LossGrads>,
{
    let g = kernel.backward(input, kernel.forward(input), &[1.0]);
    RowsLossValue {
        loss: g.loss,
        d_rows: g.d_rows,
        d_table: g.d_table,
    }
}
