//! Left-padded slot windows for training and evaluation (spec sections 4-5).
//!
//! Training: each user contributes one window of `max_seq_len + 1` slots holding the last items
//! of its training part, left-padded with 0; the item in slot `j + 1` is the target of input
//! position `j`. Evaluation: the last `max_seq_len` items before the target, left-padded.

use super::{Dataset, Split};

/// The last `len` items of `seq`, left-padded with 0 to exactly `len`.
pub fn left_pad(seq: &[u32], len: usize) -> Vec<u32> {
    let tail = &seq[seq.len().saturating_sub(len)..];
    let mut out = vec![0; len - tail.len()];
    out.extend_from_slice(tail);
    out
}

/// A batch of training windows, row-major `[batch, width]` with `width = max_seq_len + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainBatch {
    /// Item ids, `slots[b * width + j]`.
    pub slots: Vec<u32>,
    /// Number of users in the batch.
    pub batch: usize,
    /// Slots per user (`max_seq_len + 1`).
    pub width: usize,
}

impl TrainBatch {
    /// Build the batch for `users` of `data`.
    pub fn new(data: &Dataset, users: &[usize]) -> TrainBatch {
        let width = data.max_seq_len + 1;
        let mut slots = Vec::with_capacity(users.len() * width);
        for &u in users {
            slots.extend(left_pad(data.train_part(u), width));
        }
        TrainBatch {
            slots,
            batch: users.len(),
            width,
        }
    }

    /// The slots of user row `b`.
    pub fn row(&self, b: usize) -> &[u32] {
        &self.slots[b * self.width..(b + 1) * self.width]
    }
}

/// Evaluation inputs of `users` for `split`: row-major `[users.len(), max_seq_len]`.
pub fn eval_inputs(data: &Dataset, users: &[usize], split: Split) -> Vec<u32> {
    let mut out = Vec::with_capacity(users.len() * data.max_seq_len);
    for &u in users {
        out.extend(left_pad(data.history(u, split), data.max_seq_len));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn left_pad_keeps_the_tail() {
        assert_eq!(left_pad(&[1, 2, 3], 5), [0, 0, 1, 2, 3]);
        assert_eq!(left_pad(&[1, 2, 3, 4, 5, 6], 4), [3, 4, 5, 6]);
        assert_eq!(left_pad(&[], 2), [0, 0]);
    }

    #[test]
    fn windows_and_eval_inputs() {
        let d = Dataset {
            name: "t".into(),
            item_keys: (0..8).map(|i| i.to_string()).collect(),
            titles: vec![String::new(); 8],
            user_keys: vec!["a".into()],
            sequences: vec![vec![1, 2, 3, 4, 5, 6, 7]],
            max_seq_len: 3,
            pop: vec![1.0; 8],
            fingerprint: String::new(),
            root: None,
        };
        // train part [1..5] -> last 4 slots [2,3,4,5].
        let b = TrainBatch::new(&d, &[0, 0]);
        assert_eq!(b.row(1), [2, 3, 4, 5]);
        assert_eq!(eval_inputs(&d, &[0], Split::Valid), [3, 4, 5]);
        assert_eq!(eval_inputs(&d, &[0], Split::Test), [4, 5, 6]);
    }
}
