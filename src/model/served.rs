//! A trained model as serving needs it: the user encoder and the item embedding matrix
//! (`items.safetensors` of a run directory), with the external item ids in row order. No tower
//! runs at query time; scores come from the same user states and dot products as evaluation
//! ([`UserEncoder::last_states`]).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use super::sasrec::{UserEncoder, UserEncoderConfig};
use crate::data::batch::left_pad;
use crate::error::{Error, Result};
use crate::nn::{Engine, ParamStore};
use crate::scorer::Scorer;

/// One recommended item: its row and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Item row (`1..=N`).
    pub item: u32,
    /// Dot product of the user state and the item embedding.
    pub score: f32,
}

/// User encoder + item matrix + item index.
pub struct ServedModel {
    user: Arc<UserEncoder>,
    items: Tensor,
    /// `items` transposed and contiguous, `[d, N + 1]`: the scores' right operand, laid out
    /// once instead of packed from a strided view in every product.
    items_t: Tensor,
    keys: Vec<String>,
    index: HashMap<String, u32>,
}

impl ServedModel {
    /// The encoder of shape `cfg` over `max_len` positions with the `user.*` parameters of
    /// `checkpoint`, the item matrix `items` `[N + 1, d]` (row 0 padding) and the item ids
    /// `keys` in row order (`keys[0]` the padding row's).
    pub fn new(
        cfg: &UserEncoderConfig,
        max_len: usize,
        checkpoint: &Path,
        items: Tensor,
        keys: Vec<String>,
    ) -> Result<ServedModel> {
        let mut store = ParamStore::new(0, Device::Cpu);
        let user = UserEncoder::new(&mut store, cfg, max_len, Engine::Graph)?;
        store.load(checkpoint)?;
        ServedModel::assemble(Arc::new(user), items, keys)
    }

    /// The same user encoder over another item index (`items` `[N + 1, d]`, `keys` in row
    /// order): what serving switches to after items were added.
    pub fn with_items(&self, items: Tensor, keys: Vec<String>) -> Result<ServedModel> {
        ServedModel::assemble(self.user.clone(), items, keys)
    }

    fn assemble(user: Arc<UserEncoder>, items: Tensor, keys: Vec<String>) -> Result<ServedModel> {
        let (rows, d) = items.dims2()?;
        let dim = user.dim();
        if rows != keys.len() || d != dim || items.dtype() != DType::F32 {
            return Err(Error::Internal(format!(
                "item matrix {rows} x {d} ({:?}) for {} ids and width {dim}",
                items.dtype(),
                keys.len(),
            )));
        }
        let index = keys
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        Ok(ServedModel {
            user,
            items_t: items.t()?.contiguous()?,
            items,
            keys,
            index,
        })
    }

    /// External item ids in row order (`keys()[0]` is the padding row's).
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The external id of item row `item`.
    pub fn key(&self, item: u32) -> &str {
        &self.keys[item as usize]
    }

    /// The rows of external ids `keys`; every unknown id is named in one error.
    pub fn rows(&self, keys: &[&str]) -> Result<Vec<u32>> {
        let unknown: Vec<&str> = keys
            .iter()
            .filter(|k| !self.index.contains_key(**k))
            .copied()
            .collect();
        if !unknown.is_empty() {
            return Err(Error::UnknownItems {
                ids: unknown.iter().map(|k| k.to_string()).collect(),
                history: None,
            });
        }
        Ok(keys.iter().map(|k| self.index[*k]).collect())
    }

    /// The `k` best items for each history (item rows, oldest first, non-empty; the encoder
    /// reads the last `L`), best first, ties to the lower row; with `exclude_history` the
    /// items of the history are left out (as evaluation's `history` mask does).
    pub fn recommend(
        &self,
        histories: &[Vec<u32>],
        k: usize,
        exclude_history: bool,
    ) -> Result<Vec<Vec<Scored>>> {
        let queries: Vec<Query> = histories
            .iter()
            .map(|h| Query {
                history: h,
                k,
                exclude_history,
            })
            .collect();
        self.answer(&queries)
    }

    /// The answer to each query ([`ServedModel::recommend`] with its own `k` and exclusion
    /// per history): the histories go through the user encoder and the item matrix together.
    pub fn answer(&self, queries: &[Query]) -> Result<Vec<Vec<Scored>>> {
        if let Some(i) = queries.iter().position(|q| q.history.is_empty()) {
            return Err(Error::Input(format!("history {} is empty", i + 1)));
        }
        let l = self.user.max_len();
        let mut out = Vec::with_capacity(queries.len());
        // a chunk's score matrix is CHUNK x (N + 1) floats: bounded memory for any batch
        for chunk in queries.chunks(CHUNK) {
            let ids: Vec<u32> = chunk.iter().flat_map(|q| left_pad(q.history, l)).collect();
            let states = self.user.last_states(&self.items, &ids, chunk.len())?;
            let scores = states.matmul(&self.items_t)?;
            let cols = scores.dim(1)?;
            let flat = scores.flatten_all()?.to_vec1::<f32>()?;
            out.extend(
                flat.chunks(cols)
                    .zip(chunk)
                    .map(|(row, q)| top_k(row, q.k, q.exclude_history.then_some(q.history))),
            );
        }
        Ok(out)
    }

    /// The user state of each history (item rows, oldest first, non-empty; the encoder reads
    /// the last `L`), `[histories.len(), d]` row after row: the vectors [`ServedModel::answer`]
    /// scores items with.
    pub fn user_embeddings(&self, histories: &[Vec<u32>]) -> Result<Vec<f32>> {
        if let Some(i) = histories.iter().position(|h| h.is_empty()) {
            return Err(Error::Input(format!("history {} is empty", i + 1)));
        }
        let l = self.user.max_len();
        let mut out = Vec::with_capacity(histories.len() * self.user.dim());
        for chunk in histories.chunks(CHUNK) {
            let ids: Vec<u32> = chunk.iter().flat_map(|h| left_pad(h, l)).collect();
            let states = self.user.last_states(&self.items, &ids, chunk.len())?;
            out.extend(states.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }

    /// The item matrix `[N + 1, d]`.
    pub fn items(&self) -> &Tensor {
        &self.items
    }
}

/// One history to answer: item rows oldest first, how many items, whether to leave out the
/// history's own items.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Item rows, oldest first, non-empty.
    pub history: &'a [u32],
    /// Items to return.
    pub k: usize,
    /// Leave out the items of the history.
    pub exclude_history: bool,
}

/// Histories scored per matrix product.
const CHUNK: usize = 256;

/// `k` up to which [`top_k`] keeps a sorted list in one pass instead of selecting.
const SCAN_K: usize = 64;

/// The `k` best items of a score row (`row[0]`, padding, never), best first, ties to the lower
/// row, leaving out `exclude`.
fn top_k(row: &[f32], k: usize, exclude: Option<&[u32]>) -> Vec<Scored> {
    if k <= SCAN_K {
        top_k_scan(row, k, exclude)
    } else {
        top_k_select(row, k, exclude)
    }
}

/// [`top_k`] for small `k`: one pass keeping the best `k` sorted; an item that does not beat
/// the current k-th is rejected with one comparison (rows come in increasing order, so a tie
/// never displaces an entry: it goes to the lower row already kept).
fn top_k_scan(row: &[f32], k: usize, exclude: Option<&[u32]>) -> Vec<Scored> {
    let mut best: Vec<Scored> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &score) in row.iter().enumerate().skip(1) {
        if best.len() == k && score.total_cmp(&best[k - 1].score) != Ordering::Greater {
            continue;
        }
        let item = i as u32;
        if exclude.is_some_and(|h| h.contains(&item)) {
            continue;
        }
        let at = best.partition_point(|b| b.score.total_cmp(&score) != Ordering::Less);
        best.insert(at, Scored { item, score });
        best.truncate(k);
    }
    best
}

/// [`top_k`] for large `k`: select the k-th, then sort the `k` best.
fn top_k_select(row: &[f32], k: usize, exclude: Option<&[u32]>) -> Vec<Scored> {
    let mut cand: Vec<Scored> = (1..row.len() as u32)
        .filter(|i| exclude.is_none_or(|h| !h.contains(i)))
        .map(|item| Scored {
            item,
            score: row[item as usize],
        })
        .collect();
    let better = |a: &Scored, b: &Scored| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.item.cmp(&b.item))
    };
    if cand.len() > k && k > 0 {
        cand.select_nth_unstable_by(k - 1, better);
    }
    cand.truncate(k);
    cand.sort_by(better);
    // keep k entries, not the whole catalogue's capacity, per answer
    cand.shrink_to_fit();
    cand
}

impl Scorer for ServedModel {
    fn num_items(&self) -> usize {
        self.keys.len() - 1
    }

    fn max_len(&self) -> usize {
        self.user.max_len()
    }

    fn item_embeddings(&self, _chunk: usize) -> Result<Tensor> {
        Ok(self.items.clone())
    }

    fn user_states(&self, items: &Tensor, histories: &[u32], n: usize) -> Result<Tensor> {
        self.user.last_states(items, histories, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_row_and_excludes() {
        // rows 1..=5 score [0.5, 0.9, 0.5, -1, 0.7]: best 2 (0.9), 5 (0.7), then the tie
        // 0.5 between rows 1 and 3 goes to row 1.
        let row = [100.0, 0.5, 0.9, 0.5, -1.0, 0.7];
        let items = |v: Vec<Scored>| v.iter().map(|s| s.item).collect::<Vec<_>>();
        for f in [top_k_scan, top_k_select] {
            assert_eq!(items(f(&row, 3, None)), [2, 5, 1]);
            assert_eq!(items(f(&row, 10, None)), [2, 5, 1, 3, 4]);
            assert_eq!(items(f(&row, 3, Some(&[2, 1]))), [5, 3, 4]);
            assert!(f(&row, 0, None).is_empty());
        }
    }

    #[test]
    fn scan_and_select_agree_on_rows_with_many_ties() {
        // scores from a small set, so most items tie with others; both must give the same
        // items in the same order for every k and exclusion
        let row: Vec<f32> = (0..500)
            .map(|i| ((i * 37) % 11) as f32 * 0.5 - 2.0)
            .collect();
        let hist: Vec<u32> = (1..500).step_by(7).collect();
        for k in [1, 2, 5, 10, 33, 64] {
            for ex in [None, Some(hist.as_slice())] {
                assert_eq!(top_k_scan(&row, k, ex), top_k_select(&row, k, ex), "k {k}");
            }
        }
    }
}
