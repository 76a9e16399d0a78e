//! Test users split into buckets, to see where a method wins (docs/MODEL.md section 6,
//! "Breakdowns"): by the training popularity of their test target, by the length of their
//! history, or by whether their target was ever trained on. The rules:
//!
//! - **Training popularity** of an item: how often it occurs in the training positions of the
//!   kept sequences (every position before the last two, which validation and test hold out).
//! - **popularity**: the catalogue's items ordered by training popularity, most popular first
//!   (ties: lower row first); `head` = the first 20 % of the items (rounded up), `torso` = the
//!   next 30 % (up to 50 %), `tail` = the rest. A user falls in the bucket of their test target.
//! - **history**: the number of kept interactions before the test target (at most
//!   `max_seq_len + 2`, as sequences keep their last `max_seq_len + 3`): `<=7`, `8-10`, `11+`.
//! - **cold**: `warm` if the test target occurs in a training position, `cold` if not.
//!
//! Metrics are means over users, so the overall metric is the user-weighted mean of the buckets'.

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::eval::{Metrics, PerMask};

/// How to split the test users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    /// By the training popularity of the test target: head, torso, tail.
    Popularity,
    /// By the number of interactions before the test target: <=7, 8-10, 11+.
    History,
    /// By whether the test target was trained on: warm, cold.
    Cold,
}

/// One bucket: its name, its users (indices into the dataset's users) and, for the popularity
/// split, how many catalogue items it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// `head`, `<=7`, `warm`, ...
    pub name: &'static str,
    /// The users whose test target (or history) falls in it.
    pub users: Vec<usize>,
    /// Catalogue items in the bucket (popularity and cold splits).
    pub items: Option<usize>,
}

/// One group of users and its test metrics under both masks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalGroup {
    /// `all`, `warm`, `cold`, or a bucket's name (`head`, `<=7`, ...).
    pub name: String,
    /// Users in the group.
    pub users: usize,
    /// Catalogue items in the group, where the group is a set of items (a popularity tier,
    /// warm or cold items of a breakdown).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<usize>,
    /// HR@K, NDCG@K and MRR under each mask.
    pub metrics: PerMask<Metrics>,
}

/// How often each item (by row; row 0 the padding) occurs in a training position.
pub fn training_popularity(data: &Dataset) -> Vec<u64> {
    let mut count = vec![0u64; data.item_keys.len()];
    for seq in &data.sequences {
        for &i in &seq[..seq.len().saturating_sub(2)] {
            count[i as usize] += 1;
        }
    }
    count
}

/// The buckets of `by` over every user of `data`, in their display order.
pub fn buckets(by: Breakdown, data: &Dataset) -> Vec<Bucket> {
    let target = |u: usize| *data.sequences[u].last().expect("sequences are not empty") as usize;
    let users = 0..data.sequences.len();
    let split = |names: &'static [&'static str], of: &dyn Fn(usize) -> usize| {
        names
            .iter()
            .enumerate()
            .map(|(b, &name)| Bucket {
                name,
                users: users.clone().filter(|&u| of(u) == b).collect(),
                items: None,
            })
            .collect::<Vec<_>>()
    };
    match by {
        Breakdown::Popularity => {
            let tier = popularity_tiers(&training_popularity(data));
            let mut out = split(&["head", "torso", "tail"], &|u| tier[target(u)]);
            for (b, bucket) in out.iter_mut().enumerate() {
                bucket.items = Some(tier[1..].iter().filter(|&&t| t == b).count());
            }
            out
        }
        Breakdown::History => split(
            &["<=7", "8-10", "11+"],
            &|u| match data.sequences[u].len() - 1 {
                0..=7 => 0,
                8..=10 => 1,
                _ => 2,
            },
        ),
        Breakdown::Cold => {
            let count = training_popularity(data);
            let mut out = split(&["warm", "cold"], &|u| usize::from(count[target(u)] == 0));
            let cold = count[1..].iter().filter(|&&c| c == 0).count();
            out[0].items = Some(count.len() - 1 - cold);
            out[1].items = Some(cold);
            out
        }
    }
}

/// Each row's popularity tier (0 head, 1 torso, 2 tail; row 0, the padding, is tail) from the
/// training counts `count`, by the module's rule.
fn popularity_tiers(count: &[u64]) -> Vec<usize> {
    let n = count.len() - 1;
    let mut order: Vec<usize> = (1..=n).collect();
    order.sort_by(|&a, &b| count[b].cmp(&count[a]).then(a.cmp(&b)));
    let head = n.div_ceil(5);
    let torso = n.div_ceil(2).max(head);
    let mut tier = vec![2; n + 1];
    for (rank, &row) in order.iter().enumerate() {
        tier[row] = if rank < head {
            0
        } else if rank < torso {
            1
        } else {
            2
        };
    }
    tier
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten items, five users. Training positions (all but each sequence's last two):
    /// u0 [1 1 1 2] u1 [1 2 3] u2 [1 2] u3 [4 5 6 7 8 9] u4 [1]: counts 1:6, 2:3, 3:1, 4..9:1,
    /// 10:0. By count then row: 1, 2, 3, 4, ..., 9, 10. head = ceil(10/5) = 2 items {1, 2},
    /// torso up to ceil(10/2) = 5: {3, 4, 5}, tail {6 .. 10}. Test targets (last): u0 1, u1 5,
    /// u2 10, u3 2, u4 7 -> head u0 u3, torso u1, tail u2 u4. History lengths (len - 1):
    /// 5, 4, 3, 7, 2: all <=7.
    #[test]
    fn buckets_follow_the_documented_rules() {
        let seqs = vec![
            vec![1, 1, 1, 2, 9, 1],
            vec![1, 2, 3, 9, 5],
            vec![1, 2, 9, 10],
            vec![4, 5, 6, 7, 8, 9, 1, 2],
            vec![1, 3, 7],
        ];
        let data = tiny(10, seqs);
        let pop = buckets(Breakdown::Popularity, &data);
        let got: Vec<(&str, Vec<usize>, Option<usize>)> = pop
            .iter()
            .map(|b| (b.name, b.users.clone(), b.items))
            .collect();
        assert_eq!(
            got,
            [
                ("head", vec![0, 3], Some(2)),
                ("torso", vec![1], Some(3)),
                ("tail", vec![2, 4], Some(5))
            ]
        );
        let hist = buckets(Breakdown::History, &data);
        assert_eq!(hist[0].users, [0, 1, 2, 3, 4]);
        assert!(hist[1].users.is_empty() && hist[2].users.is_empty());
        // 10 never trains: u2's target is cold; 9 items trained on, 1 not
        let cold = buckets(Breakdown::Cold, &data);
        assert_eq!((cold[0].users.len(), cold[1].users.clone()), (4, vec![2]));
        assert_eq!((cold[0].items, cold[1].items), (Some(9), Some(1)));
    }

    /// History buckets at their edges: 7 and 8, 10 and 11 items before the target.
    #[test]
    fn history_buckets_at_their_edges() {
        let seq = |before: usize| (1..=before as u32 + 1).map(|i| (i % 5) + 1).collect();
        let data = tiny(5, vec![seq(7), seq(8), seq(10), seq(11)]);
        let names: Vec<Vec<usize>> = buckets(Breakdown::History, &data)
            .into_iter()
            .map(|b| b.users)
            .collect();
        assert_eq!(names, [vec![0], vec![1, 2], vec![3]]);
    }

    fn tiny(items: usize, sequences: Vec<Vec<u32>>) -> Dataset {
        Dataset {
            name: "t".into(),
            item_keys: (0..=items).map(|i| i.to_string()).collect(),
            titles: vec![String::new(); items + 1],
            user_keys: (0..sequences.len()).map(|u| u.to_string()).collect(),
            sequences,
            max_seq_len: 10,
            pop: vec![1.0; items + 1],
            fingerprint: String::new(),
            root: None,
        }
    }
}
