//! What the two loss kernels share: each computes the loss and its gradients in one pass (the
//! gradient falls out of the softmax the forward computes anyway), from the same input
//! ([`OnePassLoss`]), so their `Kernel` backward is the saved gradient scaled, and their value
//! for the user encoder's objective is that one pass.

use crate::model::sasrec::RowsLossValue;
use crate::nn::Kernel;
use crate::nn::cpu::{Op, matmul};

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
    /// The gradients from `d loss / d S` (`ds`, `[R, U]`, `S = P T^T` the rows' scores against
    /// the table): `d P = dS T`, `d T = dS^T P`; `loss` the loss's value.
    pub fn from_scores(ds: &[f32], x: LossInput<'_>, loss: f64) -> LossGrads {
        let (r, u, d) = (x.p.len() / x.d, x.table.len() / x.d, x.d);
        let mut d_rows = vec![0f32; r * d];
        matmul(&mut d_rows, ds, Op::N, x.table, Op::N, (r, d, u), false);
        let mut d_table = vec![0f32; u * d];
        matmul(&mut d_table, ds, Op::T, x.p, Op::N, (u, d, r), false);
        LossGrads {
            loss: loss as f32,
            d_rows,
            d_table,
        }
    }

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

/// A loss that computes its value and gradients in one pass over the rows' states and the
/// table; its [`Kernel`] forward is that pass, its backward the saved gradients scaled.
pub trait OnePassLoss {
    /// The loss and its gradients.
    fn loss_and_grads(&self, x: LossInput<'_>) -> LossGrads;

    /// The loss and its gradients as the user encoder's objective reads them.
    fn value(&self, x: LossInput<'_>) -> RowsLossValue {
        let g = self.loss_and_grads(x);
        RowsLossValue {
            loss: g.loss,
            d_rows: g.d_rows,
            d_table: g.d_table,
        }
    }
}

impl<T: OnePassLoss> Kernel for T {
    type Input<'a> = LossInput<'a>;
    type Saved = LossGrads;
    type Grads = LossGrads;

    fn forward(&self, input: LossInput<'_>) -> LossGrads {
        self.loss_and_grads(input)
    }

    fn backward(&self, _input: LossInput<'_>, saved: LossGrads, d_out: &[f32]) -> LossGrads {
        saved.scaled(d_out)
    }
}
