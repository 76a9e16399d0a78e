//! The in-batch softmax loss with log-popularity correction and same-user masking
//! (docs/MODEL.md section 5).
//!
//! Columns are the `B * (L + 1)` slots of the batch, rows the `B * L` input positions.
//! `logit[r, c] = <P_r, E_c> - log pop[item of c]`; padding columns and, for row `(b, j)`, every
//! column holding an item of user `b`'s own window except the true target column `b(L+1)+j+1`
//! are set to `-1e4`; the loss is the mean cross-entropy over rows whose input slot is real.
//! The mask is applied as `logit * keep + bias` (`keep` 0/1, `bias = -1e4` where masked), which
//! equals PyTorch's `masked_fill` and passes no gradient to masked entries.

use std::collections::HashSet;

use candle_core::{Device, Tensor};

use crate::data::batch::TrainBatch;
use crate::error::Result;

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
        let logits = p.matmul(&e.t()?)?.mul(&self.keep)?.add(&self.bias)?;
        Ok(candle_nn::loss::cross_entropy(&logits, &self.targets)?)
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
}
