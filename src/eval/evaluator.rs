//! Full-ranking evaluation of any [`Scorer`] on a dataset split: every user ranked against
//! every item, in user and item chunks, under both masks in one pass (docs/MODEL.md
//! section 6).

use std::time::Instant;

use super::metrics::Metrics;
use super::ranking::{Mask, PerMask, RankPair, rank_chunked};
use crate::data::batch::eval_inputs;
use crate::data::{Dataset, Split};
use crate::efficiency::Profile;
use crate::error::Result;
use crate::scorer::Scorer;

/// Metrics under both masks and the seconds they took.
#[derive(Debug, Clone)]
pub struct EvalResult {
    /// Metrics under each convention.
    pub metrics: PerMask<Metrics>,
    /// Seconds.
    pub seconds: f64,
    /// Where the seconds went: [`PHASE_ITEMS`], [`PHASE_USERS`], [`PHASE_RANKING`].
    pub phases: Profile,
}

/// Profile phase: every item's embedding.
pub const PHASE_ITEMS: &str = "evaluation: item embeddings";
/// Profile phase: the users' states.
pub const PHASE_USERS: &str = "evaluation: user states";
/// Profile phase: scoring every item and ranking the targets.
pub const PHASE_RANKING: &str = "evaluation: ranking";

/// How evaluation is chunked and which cut-offs it reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluator {
    /// Cut-offs K of HR@K and NDCG@K.
    pub ks: Vec<usize>,
    /// Items embedded and scored per chunk.
    pub item_chunk: usize,
    /// Users ranked per chunk.
    pub user_chunk: usize,
}

impl Evaluator {
    /// Rank every user of `data` on `split` (target: the split's item; history: every item
    /// before it) against all items of `model`.
    pub fn evaluate(&self, model: &dyn Scorer, data: &Dataset, split: Split) -> Result<EvalResult> {
        let t0 = Instant::now();
        let mut phases = Profile::default();
        let ranks = self.ranks_timed(model, data, split, &mut phases)?;
        Ok(EvalResult {
            metrics: self.metrics(&ranks),
            seconds: t0.elapsed().as_secs_f64(),
            phases,
        })
    }

    /// The rank of each user's target on `split` under both masks (1 = best), in user order.
    pub fn ranks(&self, model: &dyn Scorer, data: &Dataset, split: Split) -> Result<Vec<RankPair>> {
        self.ranks_timed(model, data, split, &mut Profile::default())
    }

    /// [`Evaluator::ranks`], charging each phase's time to `phases`.
    fn ranks_timed(
        &self,
        model: &dyn Scorer,
        data: &Dataset,
        split: Split,
        phases: &mut Profile,
    ) -> Result<Vec<RankPair>> {
        let all = phases.time(PHASE_ITEMS, || model.item_embeddings(self.item_chunk))?;
        let users: Vec<usize> = (0..data.num_users()).collect();
        let mut ranks = Vec::with_capacity(users.len());
        for chunk in users.chunks(self.user_chunk.max(1)) {
            let states = phases.time(PHASE_USERS, || {
                let ids = eval_inputs(data, chunk, split);
                model.user_states(&all, &ids, chunk.len())
            })?;
            let targets: Vec<u32> = chunk.iter().map(|&u| data.target(u, split)).collect();
            let hists: Vec<&[u32]> = chunk.iter().map(|&u| data.history(u, split)).collect();
            let part = phases.time(PHASE_RANKING, || {
                rank_chunked(&states, &all, &targets, &hists, self.item_chunk)
            })?;
            ranks.extend(part);
        }
        Ok(ranks)
    }

    /// The metrics of `ranks` (any subset of users) under both masks.
    pub fn metrics(&self, ranks: &[RankPair]) -> PerMask<Metrics> {
        PerMask::from_fn(|mask: Mask| {
            let of: Vec<u64> = ranks.iter().map(|r| *r.get(mask)).collect();
            Metrics::from_ranks(&of, &self.ks)
        })
    }
}
