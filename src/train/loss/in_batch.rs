//! The in-batch softmax loss with log-popularity correction and same-user masking
//! (docs/MODEL.md section 5), on both engines: candle ops ([`LossPlan`]) and one hand-written
//! CPU kernel that computes the loss and its gradient in one pass ([`InBatchLoss`]);
//! [`InBatch`] gives the user encoder's training objective the one the model's engine runs
//! ([`crate::model::sasrec::RowsLoss`]).
//!
//! Columns are the `B * (L + 1)` slots of the batch, rows the `B * L` input positions.
//! `logit[r, c] = <P_r, E_c> - log pop[item of c]`; padding columns and, for row `(b, j)`, every
//! column holding an item of user `b`'s own window except the true target column `b(L+1)+j+1`
//! are set to `-1e4`; the loss is the mean cross-entropy over rows whose input slot is real.
//! On candle ops the mask is applied as `logit * keep + bias` (`keep` 0/1, `bias = -1e4` where
//! masked), which equals PyTorch's `masked_fill` and passes no gradient to masked entries.
//!
//! The kernel's columns hold entries of the embedding table `[zero; distinct items]`, so its
//! logits come from the `R x (U + 1)` products `S = P T^T` of the real rows with the table
//! entries: `logit[r, c] = S[r, entry(c)] - log pop[item(c)]`, or `-1e4` where masked; masked
//! logits pass no gradient, exactly like `logit * keep + bias`.

use std::collections::HashSet;

use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::one_pass::{LossGrads, LossInput, OnePassLoss};
use crate::data::batch::{PackedRows, TrainBatch};
use crate::error::Result;
use crate::model::sasrec::{RowsLoss, RowsLossValue};
use crate::nn::cpu::{Op, matmul};

/// Value of masked logits.
pub const MASKED_LOGIT: f32 = -1e4;

/// The batch-dependent, parameter-free part of the loss, built on the host.
#[derive(Debug)]
pub struct LossPlan {
    /// `[R, C]` 1 where a logit is kept, 0 where masked (`R` = real input rows).
    pub keep: Tensor,
    /// `[R, C]` `-log pop` where kept, `-1e4` where masked.
    pub bias: Tensor,
    /// `[R]` u32: which of the `B * L` user-encoder rows are real inputs.
    pub rows: Tensor,
    /// `[R]` u32: each row's target column.
    pub targets: Tensor,
    /// Number of real rows R.
    pub num_rows: usize,
}

impl LossPlan {
    /// Build the plan of `batch` with popularity `pop` (`pop[0] = 1`).
    pub fn new(batch: &TrainBatch, pop: &[f64], device: &Device) -> Result<LossPlan> {
        let (bsz, w) = (batch.batch, batch.width);
        let l = w - 1;
        let cols = bsz * w;
        let neg_log_pop: Vec<f32> = batch
            .slots
            .iter()
            .map(|&i| -(pop[i as usize].ln()) as f32)
            .collect();
        let mut keep: Vec<f32> = Vec::new();
        let mut bias: Vec<f32> = Vec::new();
        let mut rows: Vec<u32> = Vec::new();
        let mut targets: Vec<u32> = Vec::new();
        for b in 0..bsz {
            let own: HashSet<u32> = batch.row(b).iter().copied().collect();
            // Columns masked for every row of user b: padding and items of its own window.
            let masked: Vec<bool> = batch
                .slots
                .iter()
                .map(|&i| i == 0 || own.contains(&i))
                .collect();
            for j in 0..l {
                if batch.slots[b * w + j] == 0 {
                    continue;
                }
                let target = b * w + j + 1;
                rows.push((b * l + j) as u32);
                targets.push(target as u32);
                for c in 0..cols {
                    if masked[c] && c != target {
                        keep.push(0.0);
                        bias.push(MASKED_LOGIT);
                    } else {
                        keep.push(1.0);
                        bias.push(neg_log_pop[c]);
                    }
                }
            }
        }
        let r = rows.len();
        Ok(LossPlan {
            keep: Tensor::from_vec(keep, (r, cols), device)?,
            bias: Tensor::from_vec(bias, (r, cols), device)?,
            rows: Tensor::from_vec(rows, r, device)?,
            targets: Tensor::from_vec(targets, r, device)?,
            num_rows: r,
        })
    }

    /// The loss from user states `p` `[B * L, d]` and column embeddings `e` `[B * (L + 1), d]`.
    pub fn loss(&self, p: &Tensor, e: &Tensor) -> Result<Tensor> {
        self.loss_rows(&p.index_select(&self.rows, 0)?, e)
    }

    /// The loss from the real rows' user states `p` `[R, d]` (in `rows` order) and column
    /// embeddings `e` `[B * (L + 1), d]`.
    pub fn loss_rows(&self, p: &Tensor, e: &Tensor) -> Result<Tensor> {
        // the scores leave a half-precision product in f32: the softmax and the loss are f32
        let scores = p.matmul(&e.t()?)?.to_dtype(candle_core::DType::F32)?;
        let logits = scores.mul(&self.keep)?.add(&self.bias)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &self.targets)?)
    }
}

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
}

impl OnePassLoss for InBatchLoss {
    /// Loss and gradients from the real rows' user states `p` `[R, d]` and the table `[U + 1, d]`.
    fn loss_and_grads(&self, x: LossInput<'_>) -> LossGrads {
        let (p, table, d) = (x.p, x.table, x.d);
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
        LossGrads::from_scores(&s, x, loss / r as f64)
    }
}

/// The in-batch loss of one training batch, for the user encoder's objective: the batch, each
/// slot's table entry, the items' popularity, the device of the graph engine's tensors.
#[derive(Debug, Clone, Copy)]
pub struct InBatch<'a> {
    /// The batch.
    pub batch: &'a TrainBatch,
    /// Slot `s` holds entry `inv[s]` of `[zero; distinct items]`.
    pub inv: &'a [u32],
    /// Popularity of every item (`pop[0] = 1`).
    pub pop: &'a [f64],
    /// Where the graph engine's tensors live.
    pub device: &'a Device,
}

impl RowsLoss for InBatch<'_> {
    fn graph(&self, p: &Tensor, table: &Tensor) -> Result<Tensor> {
        let slots = Tensor::from_vec(self.inv.to_vec(), self.inv.len(), self.device)?;
        let e = table.index_select(&slots, 0)?; // [B * W, d]
        LossPlan::new(self.batch, self.pop, self.device)?.loss_rows(p, &e)
    }

    fn kernel(&self, rows: &PackedRows, p: &[f32], table: &[f32], d: usize) -> RowsLossValue {
        let entries = table.len() / d;
        let plan = InBatchLoss::new(self.batch, self.inv, entries, rows, self.pop);
        plan.value(LossInput { p, table, d })
    }
}

/// The two-user batch of the loss tests (width 3, user0 [0, 1, 2], user1 [3, 1, 4]) and the
/// popularity of items 0..4.
#[cfg(test)]
pub(crate) fn hand_built_batch() -> (TrainBatch, [f64; 5]) {
    let batch = TrainBatch {
        slots: vec![0, 1, 2, 3, 1, 4],
        batch: 2,
        width: 3,
    };
    (batch, [1.0, 0.5, 0.25, 0.125, 0.125])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Kernel;

    #[test]
    fn hand_built_masks_and_loss() {
        // Two users, width 3: user0 [0, 1, 2], user1 [3, 1, 4]; columns hold items
        // [0, 1, 2, 3, 1, 4]. Real rows: (0,1) -> target col 2; (1,0) -> col 4; (1,1) -> col 5.
        // Row (0,1), user0's items {0,1,2}: masked cols 0 (pad), 1 and 4 (item 1); kept 2, 3, 5.
        // Row (1,0), user1's items {3,1,4}: masked 0, 1, 3, 5; kept 2 and 4 (its target).
        // Row (1,1): masked 0, 1, 3, 4; kept 2 and 5 (its target).
        let (batch, pop) = hand_built_batch();
        let plan = LossPlan::new(&batch, &pop, &Device::Cpu).unwrap();
        let keep: Vec<Vec<f32>> = plan.keep.to_vec2().unwrap();
        assert_eq!(
            keep,
            vec![
                vec![0., 0., 1., 1., 0., 1.],
                vec![0., 0., 1., 0., 1., 0.],
                vec![0., 0., 1., 0., 0., 1.],
            ]
        );
        assert_eq!(plan.rows.to_vec1::<u32>().unwrap(), [1, 2, 3]);
        assert_eq!(plan.targets.to_vec1::<u32>().unwrap(), [2, 4, 5]);
        // With all-zero embeddings the logits are the bias. Row (1,0): kept cols 2 (item 2,
        // -ln .25 = 1.3863) and 4 (item 1, target, -ln .5 = 0.6931); CE = logsumexp - target
        // = ln(4 + 2) - ln 2 = ln 3 = 1.0986. Row (0,1): kept items 2 (target), 3, 4 with
        // -ln pop = ln 4, ln 8, ln 8: CE = ln(4 + 8 + 8) - ln 4 = ln 5 = 1.6094. Row (1,1):
        // kept items 2 and 4 (target): ln(4 + 8) - ln 8 = ln 1.5 = 0.4055.
        // mean = (1.6094 + 1.0986 + 0.4055) / 3 = 1.0378.
        let p = Tensor::zeros((4, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let e = Tensor::zeros((6, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
        let l = plan.loss(&p, &e).unwrap().to_scalar::<f32>().unwrap();
        let want = ((5f64).ln() + (3f64).ln() + (1.5f64).ln()) / 3.0;
        assert!((l as f64 - want).abs() < 1e-5, "{l} vs {want}");
    }

    use crate::data::batch::dedup_slots;

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

    /// The loss kernel's gradient against finite differences (the check every kernel runs), on
    /// the hand-built batch with d = 2: θ = the three real rows' states, then the table's five
    /// entries (entry 0, the padding one, gets no gradient).
    #[test]
    fn the_gradient_matches_finite_differences() {
        let (batch, pop) = hand_built_batch();
        let (_, inv) = dedup_slots(&batch.slots);
        let rows = PackedRows::of(&[0u32, 1, 3, 1], 2, 2);
        let plan = InBatchLoss::new(&batch, &inv, 5, &rows, &pop);
        let theta: Vec<f32> = (0..(3 + 5) * 2)
            .map(|i| ((i * 13 % 7) as f32 - 3.0) / 2.0)
            .collect();
        let run = |t: &[f32]| {
            let p = crate::nn::kernel::split(t, &[6, 10]);
            plan.forward(LossInput {
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
    }
}
