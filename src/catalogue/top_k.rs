//! The `k` best items of a ranking: best score first, ties to the lower row, scores compared by
//! `total_cmp` (a NaN never displaces a number). Items may arrive in any order and in any
//! number of pieces (item blocks of an exact scan, candidates of the ANN index, the rows after
//! it), so one accumulator serves every search.

use std::cmp::Ordering;

/// One recommended item: its row and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Item row (`1..=N`).
    pub item: u32,
    /// Dot product of the user state and the item embedding.
    pub score: f32,
}

/// `Less` when `a` ranks before `b`: higher score, then lower row.
fn order(a: &Scored, b: &Scored) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.item.cmp(&b.item))
}

/// `k` up to which [`TopK`] keeps its entries sorted on insertion; above it, candidates are
/// buffered and reduced by selection when the buffer doubles, and after a reduction nothing
/// that does not beat the k-th best kept enters the buffer.
const SORTED_K: usize = 64;

/// The best `k` items seen so far.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    best: Vec<Scored>,
    /// The k-th best after the last reduction (selecting path only).
    floor: Option<Scored>,
}

impl TopK {
    /// An empty accumulator of the best `k`.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            best: Vec::with_capacity(if k <= SORTED_K { k + 1 } else { 2 * k }),
            floor: None,
        }
    }

    /// Offer one item.
    #[inline]
    pub fn push(&mut self, item: u32, score: f32) {
        let s = Scored { item, score };
        if self.k == 0 {
            return;
        }
        if self.k <= SORTED_K {
            // one comparison rejects an item that does not beat the current k-th
            if self.best.len() == self.k && order(&s, &self.best[self.k - 1]) != Ordering::Less {
                return;
            }
            let at = self
                .best
                .partition_point(|b| order(b, &s) == Ordering::Less);
            self.best.insert(at, s);
            self.best.truncate(self.k);
        } else {
            if self.floor.is_some_and(|f| order(&s, &f) != Ordering::Less) {
                return;
            }
            self.best.push(s);
            if self.best.len() >= 2 * self.k {
                self.reduce();
            }
        }
    }

    /// Offer the items of a score row whose first entry is row `first`, leaving out `exclude`.
    pub fn push_row(&mut self, first: u32, scores: &[f32], exclude: &[u32]) {
        if self.k == 0 {
            return;
        }
        for (i, &score) in scores.iter().enumerate() {
            let item = first + i as u32;
            if self.k <= SORTED_K
                && self.best.len() == self.k
                && order(&Scored { item, score }, &self.best[self.k - 1]) != Ordering::Less
            {
                continue;
            }
            if !exclude.contains(&item) {
                self.push(item, score);
            }
        }
    }

    fn reduce(&mut self) {
        if self.best.len() > self.k {
            self.best.select_nth_unstable_by(self.k - 1, order);
            self.best.truncate(self.k);
            self.floor = Some(self.best[self.k - 1]);
        }
    }

    /// The best `k` (fewer when fewer were offered), best first.
    pub fn into_sorted(mut self) -> Vec<Scored> {
        self.reduce();
        self.best.sort_by(order);
        self.best.shrink_to_fit();
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(row: &[f32], k: usize, exclude: &[u32]) -> Vec<u32> {
        let mut t = TopK::new(k);
        t.push_row(1, &row[1..], exclude);
        t.into_sorted().iter().map(|s| s.item).collect()
    }

    #[test]
    fn orders_by_score_then_row_and_excludes() {
        // rows 1..=5 score [0.5, 0.9, 0.5, -1, 0.7]: best 2 (0.9), 5 (0.7), then the tie
        // 0.5 between rows 1 and 3 goes to row 1; row 0 (padding) is never offered.
        let row = [100.0, 0.5, 0.9, 0.5, -1.0, 0.7];
        assert_eq!(top(&row, 3, &[]), [2, 5, 1]);
        assert_eq!(top(&row, 10, &[]), [2, 5, 1, 3, 4]);
        assert_eq!(top(&row, 3, &[2, 1]), [5, 3, 4]);
        assert!(top(&row, 0, &[]).is_empty());
    }

    #[test]
    fn small_and_large_k_agree_in_any_arrival_order() {
        // scores from a small set, so most items tie; the sorted path (k <= 64) and the
        // selecting path (k > 64) must give the same items, whether rows arrive in order,
        // reversed, or in blocks
        let row: Vec<f32> = (0..500)
            .map(|i| ((i * 37) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let mut want = (1..500u32).collect::<Vec<_>>();
        want.sort_by(|&a, &b| row[b as usize].total_cmp(&row[a as usize]).then(a.cmp(&b)));
        for k in [1, 5, 64, 65, 200] {
            let mut rev = TopK::new(k);
            for i in (1..500u32).rev() {
                rev.push(i, row[i as usize]);
            }
            let mut blocks = TopK::new(k);
            for (b, chunk) in row[1..].chunks(37).enumerate() {
                blocks.push_row(1 + 37 * b as u32, chunk, &[]);
            }
            let items = |t: TopK| t.into_sorted().iter().map(|s| s.item).collect::<Vec<_>>();
            assert_eq!(items(rev), want[..k], "k {k}");
            assert_eq!(items(blocks), want[..k], "k {k}");
        }
    }
}
