//! Left-padded slot windows for training and evaluation (docs/MODEL.md sections 4-5).
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

/// Which positions of a left-padded `[B, L]` batch are real, in row-major order.
#[derive(Debug, Clone)]
pub struct PackedRows {
    /// B.
    pub batch: usize,
    /// L.
    pub len: usize,
    /// Flat index `b * L + l` of each real position.
    pub flat: Vec<u32>,
    /// Position `l` of each real position.
    pub positions: Vec<u32>,
    /// Per flat position: 1 + its index in `flat`, or 0 for padding.
    pub scatter: Vec<u32>,
}

impl PackedRows {
    /// The real positions of `ids` `[B, L]` (item id 0 = padding).
    pub fn of(ids: &[u32], batch: usize, len: usize) -> PackedRows {
        Self::select(batch, len, |f| ids[f] != 0)
    }

    /// Every position.
    pub fn all(batch: usize, len: usize) -> PackedRows {
        Self::select(batch, len, |_| true)
    }

    fn select(batch: usize, len: usize, real: impl Fn(usize) -> bool) -> PackedRows {
        let (mut flat, mut positions) = (Vec::new(), Vec::new());
        let mut scatter = vec![0u32; batch * len];
        for (f, slot) in scatter.iter_mut().enumerate() {
            if real(f) {
                flat.push(f as u32);
                positions.push((f % len) as u32);
                *slot = flat.len() as u32;
            }
        }
        PackedRows {
            batch,
            len,
            flat,
            positions,
            scatter,
        }
    }

    /// Number of real rows R.
    pub fn count(&self) -> usize {
        self.flat.len()
    }
}

/// The input ids of a training batch (its first `L` slots per user, `[B, L]`), their real
/// positions, and each real position's entry in `[zero; distinct items]` (`inv` as from
/// [`dedup_slots`]).
pub fn input_rows(tb: &TrainBatch, inv: &[u32]) -> (Vec<u32>, PackedRows, Vec<u32>) {
    let (b, w) = (tb.batch, tb.width);
    let l = w - 1;
    let in_ids: Vec<u32> = (0..b).flat_map(|r| tb.row(r)[..l].to_vec()).collect();
    let rows = PackedRows::of(&in_ids, b, l);
    let in_rows = rows
        .flat
        .iter()
        .map(|&f| inv[f as usize / l * w + f as usize % l])
        .collect();
    (in_ids, rows, in_rows)
}

/// Distinct non-padding items of `slots` (sorted) and, per slot, its row in
/// `[zero; embeddings of the distinct items]` (0 for padding).
pub fn dedup_slots(slots: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut uniq: Vec<u32> = slots.iter().copied().filter(|&i| i != 0).collect();
    uniq.sort_unstable();
    uniq.dedup();
    let inv = slots
        .iter()
        .map(|&i| {
            if i == 0 {
                0
            } else {
                uniq.binary_search(&i).expect("present") as u32 + 1
            }
        })
        .collect();
    (uniq, inv)
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

    #[test]
    fn dedup_maps_slots_to_distinct_rows() {
        // slots [0, 7, 3, 7, 0, 3]: distinct [3, 7]; rows: pad -> 0, 3 -> 1, 7 -> 2.
        let (u, inv) = dedup_slots(&[0, 7, 3, 7, 0, 3]);
        assert_eq!(u, [3, 7]);
        assert_eq!(inv, [0, 2, 1, 2, 0, 1]);
    }
}
