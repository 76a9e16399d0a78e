//! Ranking the catalogue for user states: the exact scan (every row scored, in blocks, by one
//! matrix product per block for all the states at once) or the ANN index's candidates
//! re-scored exactly, plus the rows after the index (added since it was built), scanned.
//! Either way an answer's scores are dot products of the state and the items' rows, and
//! ties go to the lower row ([`TopK`]).

use rayon::prelude::*;

use super::Catalogue;
use super::top_k::{Scored, TopK};
use crate::error::Result;
use crate::nn::cpu::{Op, matmul};

/// How a catalogue ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Through the ANN index when the run has one, else exactly.
    #[default]
    Auto,
    /// Through the ANN index when the run has one, scanning this many lists per query
    /// instead of the number it was built with (`--probes`: recall for time), else exactly.
    Probes(usize),
    /// Every row scored (`--exact`).
    Exact,
}

/// Rows scored per matrix product of the exact scan: with [`STATES`] states, 16 MiB of
/// scores.
const BLOCK: usize = 16_384;

/// States scanned together (one pass over the rows for each group).
const STATES: usize = 256;

/// One ranking request: the best `k` for a state, leaving out the rows `exclude`.
#[derive(Debug, Clone, Copy)]
pub struct Want<'a> {
    /// Items to return.
    pub k: usize,
    /// Rows never returned.
    pub exclude: &'a [u32],
}

/// `a . b` in f32, by the project's vectorised dot product.
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    crate::nn::cpu::dot(a, b) as f32
}

impl SearchMode {
    /// The mode of the options `--exact` and `--probes N` (`exact` wins).
    pub fn of(exact: bool, probes: Option<usize>) -> SearchMode {
        match (exact, probes) {
            (true, _) => SearchMode::Exact,
            (false, Some(n)) => SearchMode::Probes(n),
            (false, None) => SearchMode::Auto,
        }
    }
}

impl Catalogue {
    /// The best items for each state (`states` row-major `[wants.len(), d]`), best first.
    pub fn search(&self, states: &[f32], wants: &[Want]) -> Result<Vec<Vec<Scored>>> {
        let d = self.dim();
        if wants.is_empty() {
            return Ok(Vec::new());
        }
        match &self.ann {
            Some(ann) => wants
                .par_iter()
                .enumerate()
                .map(|(i, w)| self.search_ann(ann, &states[i * d..(i + 1) * d], *w))
                .collect(),
            None => Ok((states.chunks(STATES * d).zip(wants.chunks(STATES)))
                .flat_map(|(s, w)| self.scan(s, w))
                .collect()),
        }
    }

    /// The exact scan: every row of the base, then every row of the segment.
    fn scan(&self, states: &[f32], wants: &[Want]) -> Vec<Vec<Scored>> {
        let (d, m) = (self.dim(), wants.len());
        let mut tops: Vec<TopK> = wants.iter().map(|w| TopK::new(w.k)).collect();
        let base = self.base.matrix.data();
        let parts = [
            (base, 0usize),
            (&self.tail.seg.rows[..], self.base.keys.len()),
        ];
        let mut scores = Vec::new();
        for (rows, first) in parts {
            let n = rows.len() / d;
            // the padding row (base row 0) is never a candidate
            let start = usize::from(first == 0);
            for lo in (start..n).step_by(BLOCK) {
                let hi = (lo + BLOCK).min(n);
                scores.resize(m * (hi - lo), 0.0);
                let block = &rows[lo * d..hi * d];
                matmul(
                    &mut scores,
                    states,
                    Op::N,
                    block,
                    Op::T,
                    (m, hi - lo, d),
                    false,
                );
                tops.par_iter_mut()
                    .zip(scores.par_chunks(hi - lo))
                    .zip(wants)
                    .for_each(|((t, s), w)| t.push_row((first + lo) as u32, s, w.exclude));
            }
        }
        tops.into_iter().map(TopK::into_sorted).collect()
    }

    /// One state through the index: its candidates (more when rows are excluded, since they
    /// are dropped after the search) re-scored exactly, and the rows after the index scanned.
    fn search_ann(&self, ann: &super::AnnIndex, state: &[f32], w: Want) -> Result<Vec<Scored>> {
        let mut top = TopK::new(w.k);
        let count = (w.k.max(ann.params().candidates) + w.exclude.len()).min(ann.items());
        for r in ann.search(state, count) {
            if !w.exclude.contains(&r) {
                top.push(r, dot(self.row(r), state));
            }
        }
        for r in ann.items() + 1..=self.num_items() {
            let r = r as u32;
            if !w.exclude.contains(&r) {
                top.push(r, dot(self.row(r), state));
            }
        }
        Ok(top.into_sorted())
    }
}
