//! The user side of a sequential recommender as evaluation and serving see it (in the spirit
//! of sbr-rs's `OnlineRankingModel`): item embeddings for the whole catalogue, and a user state
//! from a history; an item's score for a user is the dot product of the two. Evaluation,
//! `recommend` and a server depend on this trait, never on the trainer or the model: it sits
//! below both, so the evaluator does not import the model layer at all.

use candle_core::Tensor;

use crate::error::Result;

/// A model that scores every item of its catalogue for a user history.
pub trait Scorer: Send + Sync {
    /// Items in the catalogue N (ids `1..=N`; 0 is padding).
    fn num_items(&self) -> usize;

    /// History positions L the user encoder reads (longer histories keep their last L items).
    fn max_len(&self) -> usize;

    /// Evaluation-mode embeddings `[N + 1, d]` of every item, row 0 (padding) zero, computed
    /// `chunk` items at a time.
    fn item_embeddings(&self, chunk: usize) -> Result<Tensor>;

    /// Evaluation-mode user states `[n, d]` of `n` left-padded histories (`histories` is
    /// row-major `[n, L]`, item 0 = padding, each row with at least one item) over the item
    /// embeddings `items` from [`Scorer::item_embeddings`].
    fn user_states(&self, items: &Tensor, histories: &[u32], n: usize) -> Result<Tensor>;
}
