//! Full ranking over ALL items (never sampled negatives), in groups of users so memory stays
//! bounded, under both masking conventions at once (docs/MODEL.md section 6).
//!
//! Ties count against the model: `rank = 1 + #{items i != target : score_i >= score_target}`
//! (padding item 0 excluded). `mask = none` (RecBole's convention) ranks against every other
//! item. `mask = history` (the reference's) removes every item the user saw before the target;
//! when the target itself repeats, it is removed too and can never hit: its rank is `N + 1`,
//! as in the reference implementation.
//!
//! Scores come from one matmul per group of users against every item, the group sized to the
//! memory bound. The target's own score is read from the same row that scores the other items,
//! so items whose embeddings are bitwise equal to the target's tie exactly, whatever the matmul
//! kernel's summation order. (Earlier versions read the target scores in a first pass over item
//! chunks and counted in a second: two matmuls of every score.)

use candle_core::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::cpu::{Op, matmul};

/// Which items are removed from the ranking.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Mask {
    /// Every history item is removed, the target included when it repeats (the reference's).
    History,
    /// Nothing but the padding item is removed (RecBole's).
    None,
}

impl Mask {
    /// Both conventions, in report order.
    pub const ALL: [Mask; 2] = [Mask::History, Mask::None];

    /// The convention's name as used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Mask::History => "history",
            Mask::None => "none",
        }
    }
}

/// One value per masking convention: ranks, metrics, anything reported under both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerMask<T> {
    /// Under `mask = history` (the reference's convention).
    pub history: T,
    /// Under `mask = none` (RecBole's convention).
    pub none: T,
}

impl<T> PerMask<T> {
    /// The value under `mask`.
    pub fn get(&self, mask: Mask) -> &T {
        match mask {
            Mask::History => &self.history,
            Mask::None => &self.none,
        }
    }

    /// The pair `f(History), f(None)`.
    pub fn from_fn(mut f: impl FnMut(Mask) -> T) -> PerMask<T> {
        PerMask {
            history: f(Mask::History),
            none: f(Mask::None),
        }
    }
}

/// One user's rank under each convention.
pub type RankPair = PerMask<u64>;

/// Is `s` counted against a target scoring `t`? (`>=`, and NaN counts against the model.)
#[inline]
fn beats(s: f32, t: f32) -> bool {
    s.partial_cmp(&t) != Some(std::cmp::Ordering::Less)
}

/// Rank one user from a full score row (`scores[0]` is the padding item): the definition, which
/// [`rank_chunked`] applies to every row.
pub fn rank_row(scores: &[f32], target: u32, history: &[u32]) -> RankPair {
    let n = scores.len() as u64 - 1;
    let t = scores[target as usize];
    // every real item that beats the target, less the target itself (beats(t, t) always holds)
    let beaten = scores[1..].iter().filter(|&&x| beats(x, t)).count() as u64 - 1;
    let none = 1 + beaten;
    let history = if history.contains(&target) {
        n + 1
    } else {
        let mut seen: Vec<u32> = history.iter().copied().filter(|&h| h != 0).collect();
        seen.sort_unstable();
        seen.dedup();
        let removed = seen
            .iter()
            .filter(|&&h| beats(scores[h as usize], t))
            .count() as u64;
        none - removed
    };
    RankPair { history, none }
}

/// Rank a chunk of users against all items.
///
/// * `users`: `[u, d]` user states; `items`: `[N + 1, d]` item embeddings (row 0 = padding);
/// * `targets[r]` and `histories[r]`: user `r`'s target and the items before it;
/// * `item_chunk`: the memory bound, `u * item_chunk` scores held at once.
///
/// One matmul scores a group of users against every item (as many users as the bound holds
/// full rows of, at least one); each row is then ranked by [`rank_row`] itself, the users in
/// parallel. The target's score comes from the same row it is compared with, so exact ties
/// stay ties. On the CPU the products are [`crate::nn::cpu::matmul`] into one buffer reused
/// for every group; on another device, candle's matmul there.
pub fn rank_chunked(
    users: &Tensor,
    items: &Tensor,
    targets: &[u32],
    histories: &[&[u32]],
    item_chunk: usize,
) -> Result<Vec<RankPair>> {
    let (u, d) = users.dims2()?;
    let total = items.dim(0)?;
    check_rank_inputs(u, total, targets, histories)?;
    let group = (u.max(1) * item_chunk.max(1) / total).clamp(1, u.max(1));
    let mut out = Vec::with_capacity(u);
    let mut rank_group = |start: usize, scores: &[f32]| {
        let len = scores.len() / total;
        out.par_extend((0..len).into_par_iter().map(|r| {
            let row = &scores[r * total..(r + 1) * total];
            rank_row(row, targets[start + r], histories[start + r])
        }));
    };
    if users.device().is_cpu() {
        let (uv, ev) = (
            users.flatten_all()?.to_vec1::<f32>()?,
            items.flatten_all()?.to_vec1::<f32>()?,
        );
        let mut scores = vec![0f32; group * total];
        for start in (0..u).step_by(group) {
            let len = group.min(u - start);
            let s = &mut scores[..len * total];
            let us = &uv[start * d..(start + len) * d];
            matmul(s, us, Op::N, &ev, Op::T, (len, total, d), false);
            rank_group(start, s);
        }
    } else {
        let items_t = items.t()?;
        for start in (0..u).step_by(group) {
            let len = group.min(u - start);
            let s = users.narrow(0, start, len)?.matmul(&items_t)?;
            rank_group(start, &s.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(out)
}

/// Check that there is one target and one history per user (`u` users) and that every target
/// is a real item of the `total` rows (padding row 0 included).
fn check_rank_inputs(u: usize, total: usize, targets: &[u32], histories: &[&[u32]]) -> Result<()> {
    let n = total as u64 - 1;
    if targets.len() != u || histories.len() != u {
        return Err(Error::Internal(format!(
            "rank_chunked: {u} users but {} targets / {} histories",
            targets.len(),
            histories.len()
        )));
    }
    if let Some(&bad) = targets.iter().find(|&&t| t == 0 || t as usize >= total) {
        return Err(Error::Internal(format!(
            "target item {bad} outside 1..={n}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn hand_computed_ranks_with_ties_and_masking() {
        // Items 1..=5 with scores [pad, 0.9, 0.5, 0.7, 0.5, 0.1]; target 2 (score 0.5).
        // none: items scoring >= 0.5 other than the target: 1 (0.9), 3 (0.7), 4 (0.5, a tie
        // counted against the model) -> rank 1 + 3 = 4.
        // history = [3]: item 3 removed -> rank 3. history = [3, 3, 1, 5]: 3 and 1 removed,
        // 5 scores below -> rank 2.
        let s = [100.0, 0.9, 0.5, 0.7, 0.5, 0.1];
        assert_eq!(
            rank_row(&s, 2, &[3]),
            RankPair {
                history: 3,
                none: 4
            }
        );
        assert_eq!(
            rank_row(&s, 2, &[3, 3, 1, 5]),
            RankPair {
                history: 2,
                none: 4
            }
        );
        // Target repeats (2 in its history): never hits under `history` -> N + 1 = 6;
        // under `none` still rank 4.
        assert_eq!(
            rank_row(&s, 2, &[2, 1]),
            RankPair {
                history: 6,
                none: 4
            }
        );
        // The best item: rank 1 under both.
        assert_eq!(
            rank_row(&s, 1, &[5]),
            RankPair {
                history: 1,
                none: 1
            }
        );
    }

    #[test]
    fn chunked_equals_full_row_for_every_chunk_size() {
        // 2-d embeddings; user states chosen so that scores tie exactly.
        let items: Vec<f32> = vec![
            0.0, 0.0, // pad
            1.0, 0.0, 0.0, 1.0, 1.0, 0.0, // items 1, 2, 3 (3 equals 1: a tie)
            0.5, 0.5, -1.0, 0.0, 2.0, -1.0, // items 4, 5, 6
        ];
        let dev = Device::Cpu;
        let e = Tensor::from_vec(items.clone(), (7, 2), &dev).unwrap();
        let users = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0, 0.3, 0.7], (3, 2), &dev).unwrap();
        let targets = [1u32, 2, 4];
        let hists: [&[u32]; 3] = [&[3, 6], &[2, 5], &[0, 0, 1]];
        let full = users
            .matmul(&e.t().unwrap())
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let expect: Vec<RankPair> = (0..3)
            .map(|r| rank_row(&full[r], targets[r], hists[r]))
            .collect();
        // user 0 scores [0, 1, 0, 1, .5, -1, 2]: target 1 (1.0) beaten by 3 (tie) and 6 -> none 3;
        // history removes 3 and 6 -> 1.
        assert_eq!(
            expect[0],
            RankPair {
                history: 1,
                none: 3
            }
        );
        for chunk in [1, 2, 3, 5, 7, 100] {
            let got = rank_chunked(&users, &e, &targets, &hists, chunk).unwrap();
            assert_eq!(got, expect, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_target_is_an_error() {
        let dev = Device::Cpu;
        let e = Tensor::zeros((3, 2), candle_core::DType::F32, &dev).unwrap();
        let u = Tensor::zeros((1, 2), candle_core::DType::F32, &dev).unwrap();
        assert!(rank_chunked(&u, &e, &[0], &[&[]], 2).is_err());
        assert!(rank_chunked(&u, &e, &[3], &[&[]], 2).is_err());
    }
}
