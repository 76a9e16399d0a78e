//! A trained model as serving needs it: the user encoder and the run's catalogue (the item
//! embeddings with their external ids, [`Catalogue`]). No tower runs at query time; scores
//! come from the same user states and dot products as evaluation
//! ([`UserEncoder::last_states`]), ranked by the catalogue (exactly, or through its ANN
//! index and re-scored exactly).

use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::sasrec::{UserEncoder, UserEncoderConfig};
pub use crate::catalogue::Scored;
use crate::catalogue::{Catalogue, search::Want};
use crate::data::batch::left_pad;
use crate::error::{Error, Result};
use crate::nn::{Engine, ParamStore};
use crate::scorer::Scorer;

/// User encoder + catalogue.
pub struct ServedModel {
    user: Arc<UserEncoder>,
    catalogue: Catalogue,
}

impl ServedModel {
    /// The encoder of shape `cfg` over `max_len` positions with the `user.*` parameters of
    /// `checkpoint`, over the catalogue `catalogue`.
    pub fn new(
        cfg: &UserEncoderConfig,
        max_len: usize,
        checkpoint: &Path,
        catalogue: Catalogue,
    ) -> Result<ServedModel> {
        let mut store = ParamStore::new(0, Device::Cpu);
        let user = UserEncoder::new(&mut store, cfg, max_len, Engine::Graph)?;
        store.load(checkpoint)?;
        ServedModel::assemble(Arc::new(user), catalogue)
    }

    /// The same user encoder over another catalogue: what serving switches to after items
    /// were added.
    pub fn with_catalogue(&self, catalogue: Catalogue) -> Result<ServedModel> {
        ServedModel::assemble(self.user.clone(), catalogue)
    }

    fn assemble(user: Arc<UserEncoder>, catalogue: Catalogue) -> Result<ServedModel> {
        let (d, dim) = (catalogue.dim(), user.dim());
        if d != dim {
            return Err(Error::Internal(format!(
                "item rows of width {d} for a user encoder of width {dim}"
            )));
        }
        Ok(ServedModel { user, catalogue })
    }

    /// The catalogue: item rows, ids, how ranking is done.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The external id of item row `item`.
    pub fn key(&self, item: u32) -> &str {
        self.catalogue.key(item)
    }

    /// The rows of external ids `keys`; every unknown id is named in one error.
    pub fn rows(&self, keys: &[&str]) -> Result<Vec<u32>> {
        self.catalogue.rows(keys)
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
    /// per history): the histories go through the user encoder together, then the catalogue
    /// ranks every state.
    pub fn answer(&self, queries: &[Query]) -> Result<Vec<Vec<Scored>>> {
        let histories: Vec<&[u32]> = queries.iter().map(|q| q.history).collect();
        let states = self.states(&histories)?;
        let wants: Vec<Want> = queries
            .iter()
            .map(|q| Want {
                k: q.k,
                exclude: if q.exclude_history { q.history } else { &[] },
            })
            .collect();
        self.catalogue.search(&states, &wants)
    }

    /// The user state of each history (item rows, oldest first, non-empty; the encoder reads
    /// the last `L`), `[histories.len(), d]` row after row: the vectors [`ServedModel::answer`]
    /// scores items with.
    pub fn user_embeddings(&self, histories: &[Vec<u32>]) -> Result<Vec<f32>> {
        let refs: Vec<&[u32]> = histories.iter().map(Vec::as_slice).collect();
        self.states(&refs)
    }

    /// User states `[histories.len(), d]`, `CHUNK` histories per encoder pass. Each pass reads
    /// only the rows its histories name, gathered into a small matrix (the catalogue may be
    /// memory-mapped and far larger than memory needs to hold).
    fn states(&self, histories: &[&[u32]]) -> Result<Vec<f32>> {
        if let Some(i) = histories.iter().position(|h| h.is_empty()) {
            return Err(Error::Input(format!("history {} is empty", i + 1)));
        }
        let (l, d) = (self.user.max_len(), self.catalogue.dim());
        let mut out = Vec::with_capacity(histories.len() * d);
        for chunk in histories.chunks(CHUNK) {
            let ids: Vec<u32> = chunk.iter().flat_map(|h| left_pad(h, l)).collect();
            let mut used: Vec<u32> = ids.clone();
            used.sort_unstable();
            used.dedup();
            if used[0] != 0 {
                used.insert(0, 0);
            }
            let rows: Vec<f32> = used
                .iter()
                .flat_map(|&r| self.catalogue.row(r))
                .copied()
                .collect();
            let items = Tensor::from_vec(rows, (used.len(), d), &Device::Cpu)?;
            let local: Vec<u32> = ids
                .iter()
                .map(|r| used.binary_search(r).expect("gathered") as u32)
                .collect();
            let states = self.user.last_states(&items, &local, chunk.len())?;
            out.extend(states.flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
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

impl Scorer for ServedModel {
    fn num_items(&self) -> usize {
        self.catalogue.num_items()
    }

    fn max_len(&self) -> usize {
        self.user.max_len()
    }

    fn item_embeddings(&self, _chunk: usize) -> Result<Tensor> {
        let n = self.catalogue.num_items() + 1;
        let d = self.catalogue.dim();
        Ok(Tensor::from_vec(
            self.catalogue.to_vec(),
            (n, d),
            &Device::Cpu,
        )?)
    }

    fn user_states(&self, items: &Tensor, histories: &[u32], n: usize) -> Result<Tensor> {
        self.user.last_states(items, histories, n)
    }
}
