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

/// Evaluate `run` on its test split (the caller puts this on the compute pool).
pub(super) fn evaluate(run: &FinishedRun, o: &EvalOptions) -> Result<Evaluation> {
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
    let ranks = ev.ranks(&run.model, data, Split::Test)?;
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
    })
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
