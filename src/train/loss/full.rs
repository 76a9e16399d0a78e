//! The full softmax loss (`train.loss = "full"`, docs/MODEL.md section 5): for every real input
//! position, softmax cross-entropy of its user state against every item of the catalogue, the
//! next item the target. No popularity correction (no item is sampled, so none is
//! over-represented) and no masking (the catalogue is the candidate set, as in RecBole's
//! SASRec): `loss = mean_r [logsumexp_{i=1..N} <P_r, E_i> - <P_r, E_target(r)>]`.
//!
//! The table holds every item (row `i` = item `i`, row 0 the padding entry, never a
//! candidate), so the trainer embeds the whole catalogue each step ([`super::super::trainer`]).
//! On candle ops ([`Full::graph`]) the logits are `P E[1..]^T` and candle's cross-entropy; the
//! kernel ([`FullSoftmax`]) computes the loss and its gradient in one pass over the same
//! products: `d loss / d S[r, i] = (softmax_r(i) - [i = target(r)]) / R`.

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::one_pass::{LossGrads, LossInput, OnePassLoss};
use crate::data::batch::{PackedRows, TrainBatch};
use crate::error::Result;
use crate::model::sasrec::{RowsLoss, RowsLossValue};
use crate::nn::cpu::{Op, matmul};

/// The kernel: each real row's target item (its table row).
#[derive(Debug)]
pub struct FullSoftmax {
    targets: Vec<u32>,
}

impl FullSoftmax {
    /// The targets of `batch`'s real input rows `rows` (flat `b * L + j` of the `[B, L]`
    /// inputs): the item in the slot after each.
    pub fn new(batch: &TrainBatch, rows: &PackedRows) -> FullSoftmax {
        let (w, l) = (batch.width, batch.width - 1);
        let targets = rows
            .flat
            .iter()
            .map(|&f| {
                let (b, j) = (f as usize / l, f as usize % l);
                batch.slots[b * w + j + 1]
            })
            .collect();
        FullSoftmax { targets }
    }
}

impl OnePassLoss for FullSoftmax {
    /// Loss and gradients from the real rows' states `p` `[R, d]` and the table `[N + 1, d]`.
    fn loss_and_grads(&self, x: LossInput<'_>) -> LossGrads {
        let (p, table, d) = (x.p, x.table, x.d);
        let (r, n) = (self.targets.len(), table.len() / d);
        assert_eq!(p.len(), r * d, "full softmax: rows");
        let mut s = vec![0f32; r * n];
        matmul(&mut s, p, Op::N, table, Op::T, (r, n, d), false);
        let inv_r = 1.0 / r as f32;
        // each row's scores become d loss / d S in place; column 0 (padding) is no candidate
        let loss: f64 = s
            .par_chunks_mut(n)
            .zip(&self.targets)
            .map(|(row, &t)| {
                let items = &mut row[1..];
                let mx = items.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f32 = items.iter().map(|v| (v - mx).exp()).sum();
                let lse = mx + sum.ln();
                let target = row[t as usize];
                row[0] = 0.0;
                for v in &mut row[1..] {
                    *v = (*v - lse).exp() * inv_r;
                }
                row[t as usize] -= inv_r;
                (lse - target) as f64
            })
            .sum();
        LossGrads::from_scores(&s, x, loss / r as f64)
    }
}

/// The full softmax loss of one training batch, for the user encoder's objective. The table it
/// is given holds every item by id (the trainer embeds the catalogue, `inv` = the slots).
#[derive(Debug, Clone, Copy)]
pub struct Full<'a> {
    /// The batch.
    pub batch: &'a TrainBatch,
    /// Where the graph engine's tensors live.
    pub device: &'a Device,
}

impl RowsLoss for Full<'_> {
    /// The targets in the encoder's row order (users, then positions, real inputs only).
    fn graph(&self, p: &Tensor, table: &Tensor) -> Result<Tensor> {
        let (w, slots) = (self.batch.width, &self.batch.slots);
        let mut targets = Vec::new();
        for b in 0..self.batch.batch {
            for j in 0..w - 1 {
                if slots[b * w + j] != 0 {
                    // class k of the logits is item k + 1
                    targets.push(slots[b * w + j + 1] - 1);
                }
            }
        }
        let n = table.dim(0)? - 1;
        // f32 scores out of a half-precision product: the softmax and the loss are f32
        let logits = p
            .matmul(&table.narrow(0, 1, n)?.t()?)?
            .to_dtype(candle_core::DType::F32)?;
        let targets = Tensor::from_vec(targets, p.dim(0)?, self.device)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &targets)?)
    }

    fn kernel(&self, rows: &PackedRows, p: &[f32], table: &[f32], d: usize) -> RowsLossValue {
        FullSoftmax::new(self.batch, rows).value(LossInput { p, table, d })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Kernel;
    use crate::train::loss::in_batch::hand_built_batch;

    /// One row, d = 1, items 1 and 2 with embeddings 1 and 2, state 1, target item 1: logits
    /// [1, 2], loss = ln(e + e^2) - 1 = ln(1 + e) = 1.31326; d loss / d p = E[softmax] - E_1 =
    /// (e + 2e^2) / (e + e^2) - 1 = e / (1 + e) = 0.73106; d loss / d E_1 = (softmax_1 - 1) p =
    /// -e / (1 + e), d / d E_2 = softmax_2 p = e / (1 + e); the padding row gets none.
    #[test]
    fn hand_computed_loss_and_gradient() {
        let k = FullSoftmax { targets: vec![1] };
        let g = k.forward(LossInput {
            p: &[1.0],
            table: &[9.0, 1.0, 2.0],
            d: 1,
        });
        let e = std::f32::consts::E;
        assert!((g.loss - (1.0 + e).ln()).abs() < 1e-6, "{}", g.loss);
        let s2 = e / (1.0 + e);
        assert!((g.d_rows[0] - s2).abs() < 1e-6);
        assert_eq!(g.d_table[0], 0.0);
        assert!((g.d_table[1] + s2).abs() < 1e-6 && (g.d_table[2] - s2).abs() < 1e-6);
    }

    /// The kernel against central differences, and against candle's cross-entropy, on the
    /// hand-built batch (two users, width 3, items 1..4; real rows (0,1), (1,0), (1,1) with
    /// targets 2, 1, 4) with d = 2.
    #[test]
    fn the_kernel_matches_differences_and_the_graph() {
        let (batch, _) = hand_built_batch();
        let rows = PackedRows::of(&[0u32, 1, 3, 1], 2, 2);
        let k = FullSoftmax::new(&batch, &rows);
        assert_eq!(k.targets, [2, 1, 4]);
        let theta: Vec<f32> = (0..(3 + 5) * 2)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let run = |t: &[f32]| {
            let p = crate::nn::kernel::split(t, &[6, 10]);
            k.forward(LossInput {
                p: p[0],
                table: p[1],
                d: 2,
            })
        };
        crate::nn::kernel::check_against_differences(
            &theta,
            |t| vec![run(t).loss],
            |t, c| {
                let g = run(t);
                g.d_rows
                    .iter()
                    .chain(&g.d_table)
                    .map(|v| v * c[0])
                    .collect()
            },
            (1e-2, 1e-2, 1),
        );
        let dev = Device::Cpu;
        let p = Tensor::from_vec(theta[..6].to_vec(), (3, 2), &dev).unwrap();
        let table = Tensor::from_vec(theta[6..].to_vec(), (5, 2), &dev).unwrap();
        let full = Full {
            batch: &batch,
            device: &dev,
        };
        let graph = full.graph(&p, &table).unwrap().to_scalar::<f32>().unwrap();
        assert!((graph - run(&theta).loss).abs() < 1e-5, "{graph}");
    }
}
