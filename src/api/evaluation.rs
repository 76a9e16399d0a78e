//! A finished run evaluated again on the test split: all users, split by whether their target
//! is one of a set of cold items (docs/COLD-START.md), or broken down by target popularity,
//! history length or coldness ([`crate::eval::breakdown`]), from the same ranking.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::data::cold::read_cold_items;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::eval::breakdown::{Breakdown, EvalGroup, buckets};
use crate::eval::{Evaluator, RankPair};
use crate::model::{Query, Scored, ServedModel};
use crate::nn::DeviceSpec;
use crate::run::finished::FinishedRun;

/// What [`super::Run::evaluate`] computes.
#[derive(Debug, Clone, Default)]
pub struct EvalOptions {
    /// Cut-offs K of HR@K and NDCG@K (default: the run's `eval.ks`).
    pub ks: Option<Vec<usize>>,
    /// Report the users whose test target is one of these items (`cold_items.txt` of
    /// `iisan data split-cold`) apart from the others: groups `all`, `warm`, `cold`.
    pub cold_items: Option<PathBuf>,
    /// Also report the users split into the buckets of this breakdown (after `all` and any
    /// warm / cold groups).
    pub by: Option<Breakdown>,
    /// Evaluate on this device instead of the run's `train.device`.
    pub device: Option<DeviceSpec>,
    /// Rank every item exactly even when the run has an ANN index (the metrics training
    /// reported); without it, a run with an index is evaluated on what it serves.
    pub exact: bool,
}

/// The test metrics of a run: the group `all`, then `warm` and `cold` when asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The cut-offs.
    pub ks: Vec<usize>,
    /// The groups, `all` first.
    pub groups: Vec<EvalGroup>,
    /// Seconds the ranking took.
    pub seconds: f64,
    /// Whether the ranking was the ANN index's served lists (HR@K and NDCG@K of the top
    /// `max K` each user is served; MRR counts only targets in those lists), not the full
    /// ranking of every item.
    pub ann: bool,
}

impl Evaluation {
    /// The group named `name`.
    pub fn group(&self, name: &str) -> Option<&EvalGroup> {
        self.groups.iter().find(|g| g.name == name)
    }
}

/// Refuse cold items the catalogue lacks or the run trained on (one in a training position:
/// any place of a sequence before its last two, which validation and test hold out).
fn check_cold(data: &Dataset, cold: &HashSet<String>, path: &Path) -> Result<()> {
    let known: HashSet<&str> = data.item_keys.iter().map(String::as_str).collect();
    if let Some(k) = cold.iter().find(|k| !known.contains(k.as_str())) {
        return Err(Error::file(
            path,
            format!("item {k:?} is not in the catalogue"),
        ));
    }
    for seq in &data.sequences {
        let trained = &seq[..seq.len().saturating_sub(2)];
        if let Some(&i) = trained
            .iter()
            .find(|&&i| cold.contains(&data.item_keys[i as usize]))
        {
            let k = &data.item_keys[i as usize];
            return Err(Error::file(
                path,
                format!("item {k:?} is in the training data, so it is not cold"),
            ));
        }
    }
    Ok(())
}

/// Evaluate `run` on its test split (the caller puts this on the compute pool): by the full
/// ranking of every item, or, with `served` (a model whose catalogue ranks through an ANN
/// index), by the lists it serves.
pub(super) fn evaluate(
    run: &FinishedRun,
    served: Option<&ServedModel>,
    o: &EvalOptions,
) -> Result<Evaluation> {
    let ev = Evaluator {
        ks: o
            .ks
            .clone()
            .unwrap_or_else(|| run.plan.evaluator().ks.clone()),
        ..run.plan.evaluator().clone()
    };
    if ev.ks.is_empty() || ev.ks.contains(&0) {
        return Err(Error::Config("--ks: cut-offs must be positive".into()));
    }
    if o.cold_items.is_some() && o.by == Some(Breakdown::Cold) {
        return Err(Error::Config(
            "--by cold splits by the run's own training data; give it or --cold-items, not both"
                .into(),
        ));
    }
    let data = &run.data;
    let cold = o.cold_items.as_deref().map(read_cold_items).transpose()?;
    if let (Some(cold), Some(path)) = (&cold, &o.cold_items) {
        check_cold(data, cold, path)?;
    }
    let t0 = Instant::now();
    let ranks = match served {
        Some(s) => served_ranks(s, data, &ev.ks)?,
        None => ev.ranks(&run.model, data, Split::Test)?,
    };
    let seconds = t0.elapsed().as_secs_f64();
    let group = |name: &str, r: Vec<RankPair>| EvalGroup {
        name: name.to_string(),
        users: r.len(),
        items: None,
        metrics: ev.metrics(&r),
    };
    let mut groups = vec![group("all", ranks.clone())];
    if let (Some(cold), Some(path)) = (cold, &o.cold_items) {
        let is_cold: Vec<bool> = (0..data.num_users())
            .map(|u| cold.contains(&data.item_keys[data.target(u, Split::Test) as usize]))
            .collect();
        let part = |want: bool| -> Vec<RankPair> {
            ranks
                .iter()
                .zip(&is_cold)
                .filter(|(_, c)| **c == want)
                .map(|(r, _)| *r)
                .collect()
        };
        let (warm, cold) = (part(false), part(true));
        if cold.is_empty() {
            return Err(Error::file(
                path,
                "no user's test target is among these items",
            ));
        }
        groups.push(group("warm", warm));
        groups.push(group("cold", cold));
    }
    if let Some(by) = o.by {
        groups.extend(bucket_groups(&ev, &ranks, by, data));
    }
    Ok(Evaluation {
        ks: ev.ks,
        groups,
        seconds,
        ann: served.is_some(),
    })
}

/// Users ranked per call of the served model.
const SERVED_USERS: usize = 512;

/// Each test user's rank of its target among the `max(ks)` items `served` recommends for its
/// history (1-based; `N + 1` when the target is not among them, beyond every cut-off), under
/// both masks: `history` leaves the history's items out of the list (a target that repeats
/// one never hits, as in the full ranking: docs/MODEL.md section 6), `none` leaves nothing
/// out. Dataset items are matched to catalogue rows by id.
fn served_ranks(served: &ServedModel, data: &Dataset, ks: &[usize]) -> Result<Vec<RankPair>> {
    let cat = served.catalogue();
    let k = ks.iter().copied().max().unwrap_or(1).min(cat.num_items());
    let row: Vec<u32> = (data.item_keys.iter().enumerate())
        .map(|(i, key)| match i {
            0 => Ok(0),
            _ => cat.rows(&[key.as_str()]).map(|r| r[0]),
        })
        .collect::<Result<_>>()?;
    let miss = cat.num_items() as u64 + 1;
    let users: Vec<usize> = (0..data.num_users()).collect();
    let mut ranks = Vec::with_capacity(users.len());
    for chunk in users.chunks(SERVED_USERS) {
        let hists: Vec<Vec<u32>> = chunk
            .iter()
            .map(|&u| {
                let h = data.history(u, Split::Test).iter();
                h.filter(|&&i| i != 0).map(|&i| row[i as usize]).collect()
            })
            .collect();
        let queries: Vec<Query> = hists
            .iter()
            .flat_map(|h| {
                [true, false].map(|ex| Query {
                    history: h,
                    k,
                    exclude_history: ex,
                })
            })
            .collect();
        let lists = served.answer(&queries)?;
        for ((&u, h), pair) in chunk.iter().zip(&hists).zip(lists.chunks(2)) {
            let t = row[data.target(u, Split::Test) as usize];
            let at = |l: &[Scored]| {
                l.iter()
                    .position(|s| s.item == t)
                    .map_or(miss, |p| p as u64 + 1)
            };
            let history = if h.contains(&t) { miss } else { at(&pair[0]) };
            ranks.push(RankPair {
                history,
                none: at(&pair[1]),
            });
        }
    }
    Ok(ranks)
}

/// The groups of `by`'s buckets, their metrics from the users' `ranks`.
fn bucket_groups(
    ev: &Evaluator,
    ranks: &[RankPair],
    by: Breakdown,
    data: &Dataset,
) -> Vec<EvalGroup> {
    buckets(by, data)
        .into_iter()
        .map(|b| {
            let r: Vec<RankPair> = b.users.iter().map(|&u| ranks[u]).collect();
            EvalGroup {
                name: b.name.to_string(),
                users: r.len(),
                items: b.items,
                metrics: ev.metrics(&r),
            }
        })
        .collect()
}

/// The test metrics of `run` broken down by each of `by`, from one ranking of its test users
/// at the run's cut-offs (the caller puts this on the compute pool).
#[cfg(feature = "charts")]
pub(super) fn breakdowns(
    run: &FinishedRun,
    by: &[Breakdown],
) -> Result<Vec<(Breakdown, Vec<EvalGroup>)>> {
    let ev = run.plan.evaluator();
    let ranks = ev.ranks(&run.model, &run.data, Split::Test)?;
    Ok(by
        .iter()
        .map(|&b| (b, bucket_groups(ev, &ranks, b, &run.data)))
        .collect())
}
