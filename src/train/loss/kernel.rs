//! The in-batch softmax loss of `reference.rs` (docs/MODEL.md section 5) as one CPU kernel with its own
//! backward, used with the user encoder's CPU kernel. Columns are the batch's `B * (L + 1)` slots;
//! each holds an entry of the embedding table `[zero; distinct items]`, so the logits come from
//! the `R x (U + 1)` products `S = P T^T` of the real rows with the table entries:
//! `logit[r, c] = S[r, entry(c)] - log pop[item(c)]`, or `-1e4` where masked (padding columns
//! and columns holding an item of the row's own window, except the row's target column).
//! The loss is the mean over rows of `logsumexp(logit_r) - logit_r[target]`; masked logits pass
//! no gradient, exactly like `loss.rs`'s `logit * keep + bias`.

use rayon::prelude::*;

use super::reference::MASKED_LOGIT;
use crate::data::batch::PackedRows;
use crate::data::batch::TrainBatch;
use crate::nn::Kernel;
use crate::nn::cpu::{Op, matmul};

/// The loss's batch-dependent, parameter-free plan.
///
/// Padding columns are masked for every row and never a target, so each adds
/// `exp(-1e4 - max) = 0` (f32 underflow) to every row's normaliser: they are left out, and only
/// the columns holding items are scored (in Scientific about 45 % of the slots).
#[derive(Debug)]
pub struct InBatchLoss {
    /// Table entry of each item column (never 0).
    entry: Vec<u32>,
    /// `-log pop` of each item column's item.
    neg_log_pop: Vec<f32>,
    /// Per row: its user and its target's index among the item columns.
    rows: Vec<(u32, u32)>,
    /// `[B, U + 1]`: whether a table entry is masked for the user's rows.
    masked: Vec<bool>,
    /// Table entries U + 1.
    entries: usize,
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

impl InBatchLoss {
    /// The plan of `batch`, whose slot `s` holds table entry `entry[s]` (of `entries`), with the
    /// real input rows `rows` (flat `b * L + j` of the `[B, L]` inputs) and popularity `pop`.
    pub fn new(
        batch: &TrainBatch,
        entry: &[u32],
        entries: usize,
        rows: &PackedRows,
        pop: &[f64],
    ) -> InBatchLoss {
        let (bsz, w) = (batch.batch, batch.width);
        let l = w - 1;
        let mut masked = vec![false; bsz * entries];
        for b in 0..bsz {
            masked[b * entries] = true;
            for &e in &entry[b * w..(b + 1) * w] {
                masked[b * entries + e as usize] = true;
            }
        }
        // Item columns, and each slot's index among them.
        let cols: Vec<usize> = (0..entry.len()).filter(|&c| entry[c] != 0).collect();
        let mut col_of = vec![u32::MAX; entry.len()];
        for (k, &c) in cols.iter().enumerate() {
            col_of[c] = k as u32;
        }
        InBatchLoss {
            entry: cols.iter().map(|&c| entry[c]).collect(),
            neg_log_pop: cols
                .iter()
                .map(|&c| -(pop[batch.slots[c] as usize].ln()) as f32)
                .collect(),
            rows: rows
                .flat
                .iter()
                .map(|&f| {
                    let (b, j) = (f as usize / l, f as usize % l);
                    let target = col_of[b * w + j + 1];
                    // left-padded windows: a real input slot is followed by a real target
                    assert_ne!(
                        target,
                        u32::MAX,
                        "loss kernel: padding target (not left-padded)"
                    );
                    (b as u32, target)
                })
                .collect(),
            masked,
            entries,
        }
    }

    /// Loss and gradients from the real rows' user states `p` `[R, d]` and the table `[U + 1, d]`.
    fn loss_and_grads(&self, p: &[f32], table: &[f32], d: usize) -> LossGrads {
        let (r, u) = (self.rows.len(), self.entries);
        assert_eq!(p.len(), r * d, "loss kernel: rows");
        assert_eq!(table.len(), u * d, "loss kernel: table");
        let mut s = vec![0f32; r * u];
        matmul(&mut s, p, Op::N, table, Op::T, (r, u, d), false);
        let inv_r = 1.0 / r as f32;
        // Each row's scores become its gradient d loss / d S in place.
        let loss: f64 = s
            .par_chunks_mut(u)
            .zip(&self.rows)
            .map(|(srow, &(b, target))| {
                let masked = &self.masked[b as usize * u..(b as usize + 1) * u];
                let logits: Vec<f32> = self
                    .entry
                    .iter()
                    .zip(&self.neg_log_pop)
                    .enumerate()
                    .map(|(c, (&e, &nlp))| {
                        if masked[e as usize] && c != target as usize {
                            MASKED_LOGIT
                        } else {
                            srow[e as usize] + nlp
                        }
                    })
                    .collect();
                let mx = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let sum: f32 = logits.iter().map(|v| (v - mx).exp()).sum();
                let lse = mx + sum.ln();
                srow.fill(0.0);
                for (c, (&e, &z)) in self.entry.iter().zip(&logits).enumerate() {
                    let kept = !masked[e as usize] || c == target as usize;
                    if kept {
                        let onehot = if c == target as usize { 1.0 } else { 0.0 };
                        srow[e as usize] += ((z - lse).exp() - onehot) * inv_r;
                    }
                }
                (lse - logits[target as usize]) as f64
            })
            .sum();
        let mut d_rows = vec![0f32; r * d];
        matmul(&mut d_rows, &s, Op::N, table, Op::N, (r, d, u), false);
        let mut d_table = vec![0f32; u * d];
        matmul(&mut d_table, &s, Op::T, p, Op::N, (u, d, r), false);
        LossGrads {
            loss: (loss / r as f64) as f32,
            d_rows,
            d_table,
        }
    }
}

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

impl Kernel for InBatchLoss {
    type Input<'a> = LossInput<'a>;
    /// The loss and its gradient, computed in one pass (the gradient falls out of the softmax
    /// the forward computes anyway).
    type Saved = LossGrads;
    type Grads = LossGrads;

    fn forward(&self, input: LossInput<'_>) -> LossGrads {
        self.loss_and_grads(input.p, input.table, input.d)
    }

    /// The forward's gradients times `d_out[0]` (d total / d loss; 1 for the training loss).
    fn backward(&self, _input: LossInput<'_>, saved: LossGrads, d_out: &[f32]) -> LossGrads {
        let scale = d_out[0];
        if scale == 1.0 {
            return saved;
        }
        let times = |v: Vec<f32>| v.into_iter().map(|x| x * scale).collect();
        LossGrads {
            loss: saved.loss,
            d_rows: times(saved.d_rows),
            d_table: times(saved.d_table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::dedup_slots;
    use crate::train::loss::reference::hand_built_batch;

    /// The hand-built example of `loss.rs`: two users, width 3, slots [0,1,2 | 3,1,4], pop
    /// [1, .5, .25, .125, .125]. With zero states every kept logit is its bias and the loss is
    /// (ln 5 + ln 3 + ln 1.5) / 3 = 1.0378; zero states also give zero table gradients.
    /// Row (1,0) keeps columns 2 (item 2) and 4 (item 1, its target) with softmax weights
    /// 4/6 and 2/6, so d loss / d S at item 2's entry is (2/3) / 3 and at item 1's entry
    /// (1/3 - 1) / 3: with table entries t_2 = [1, 0] and t_1 = [0, 1] (others 0), that row's
    /// state gradient is [2/9, -2/9].
    #[test]
    fn hand_built_loss_and_gradient() {
        let (batch, pop) = hand_built_batch();
        let (uniq, inv) = dedup_slots(&batch.slots);
        assert_eq!(uniq, [1, 2, 3, 4]);
        let in_ids = [0u32, 1, 3, 1];
        let rows = PackedRows::of(&in_ids, 2, 2);
        let plan = InBatchLoss::new(&batch, &inv, 5, &rows, &pop);
        let zero_p = [0f32; 6];
        let mut table = vec![0f32; 10];
        let g = plan.forward(LossInput {
            p: &zero_p,
            table: &table,
            d: 2,
        });
        let want = ((5f64).ln() + (3f64).ln() + (1.5f64).ln()) / 3.0;
        assert!((g.loss as f64 - want).abs() < 1e-5, "{} vs {want}", g.loss);
        assert!(g.d_table.iter().all(|&v| v == 0.0));
        // entry of item 1 is 1, of item 2 is 2
        table[2..4].copy_from_slice(&[0.0, 1.0]);
        table[4..6].copy_from_slice(&[1.0, 0.0]);
        let g = plan.forward(LossInput {
            p: &zero_p,
            table: &table,
            d: 2,
        });
        let row = &g.d_rows[2..4];
        assert!((row[0] - 2.0 / 9.0).abs() < 1e-6 && (row[1] + 2.0 / 9.0).abs() < 1e-6);
    }
}
