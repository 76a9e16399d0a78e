//! What the report reads of each run ([`RunView`]), what the page shows ([`PageOptions`]), and
//! what every section derives from the runs alike: their names and their shared cut-offs.

use std::path::PathBuf;

use crate::efficiency::tpme::TpmeWeights;
use crate::eval::{Breakdown, EvalGroup, Mask, Metric, Metrics};
use crate::run::Summary;
use crate::run::summary::EpochRecord;

/// One run as the report reads it.
#[derive(Debug, Clone)]
pub struct RunView {
    /// Its directory.
    pub dir: PathBuf,
    /// `summary.json`.
    pub summary: Summary,
    /// `metrics.jsonl`, in order.
    pub epochs: Vec<EpochRecord>,
    /// `config.toml` (the resolved configuration) as text.
    pub config: String,
    /// The test metrics broken down, or why they could not be computed.
    pub breakdowns: std::result::Result<Vec<(Breakdown, Vec<EvalGroup>)>, String>,
}

/// What the page shows.
#[derive(Debug, Clone, Copy)]
pub struct PageOptions {
    /// The mask of the charts and the efficiency table (tables show both).
    pub mask: Mask,
    /// TPME weights.
    pub weights: TpmeWeights,
}

/// Each run's name in tables and charts: its method, or where two runs share a method, the
/// method and the run directory's name.
pub fn labels(runs: &[RunView]) -> Vec<String> {
    runs.iter()
        .map(|r| {
            let m = &r.summary.method;
            let shared = runs.iter().filter(|o| &o.summary.method == m).count() > 1;
            let name = r
                .dir
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if shared {
                format!("{m} ({name})")
            } else {
                m.clone()
            }
        })
        .collect()
}

/// A run's test metrics under the `history` mask.
fn history(r: &RunView) -> &Metrics {
    r.summary.test.get(Mask::History)
}

/// The cut-offs every evaluated run computed (runs that skipped evaluation have none).
pub fn shared_ks(runs: &[RunView]) -> Vec<usize> {
    let tested = |r: &&RunView| r.summary.evaluated;
    let Some(first) = runs.iter().find(tested) else {
        return Vec::new();
    };
    let mut ks: Vec<usize> = history(first).0.keys().filter_map(|m| m.cutoff()).collect();
    ks.sort_unstable();
    ks.dedup();
    ks.retain(|&k| {
        runs.iter()
            .filter(tested)
            .all(|r| history(r).value(Metric::Hr(k)).is_some())
    });
    ks
}
