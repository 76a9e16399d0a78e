//! A run's catalogue at scale: its ANN index built ([`build_index`]), the items added since
//! folded into its base ([`compact_items`]), and a clone with generated items for
//! measurements ([`super::synth_items`]). docs/SERVING.md, "Catalogues of millions of items".

use std::path::Path;

use super::on_compute_pool;
pub use crate::catalogue::ann::BuildReport;
use crate::catalogue::{AnnParams, CompactReport, ann, compact};
use crate::error::{Error, Result};
use crate::progress::Reporter;
use crate::run::finished::check_finished;

/// Build the ANN index of finished run `run` over every item of its catalogue with `params`,
/// on `threads` threads (0: one per core), and make it the index `recommend`, `eval` and
/// `serve` rank through. Items cannot be added meanwhile (the build holds the item lock); an
/// interrupted build leaves the previous index (or none) in use.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// use iisan::api::{AnnParams, Reporter, build_index};
/// let r = build_index("runs/big".as_ref(), &AnnParams::default(), 0, &Reporter::silent())?;
/// println!("{} items in {} lists, {:.1} s", r.items, r.lists, r.seconds);
/// # Ok(())
/// # }
/// ```
pub fn build_index(
    run: &Path,
    params: &AnnParams,
    threads: usize,
    progress: &Reporter,
) -> Result<BuildReport> {
    check_finished(run)?;
    check_params(params)?;
    on_compute_pool(threads, || ann::build(run, params, progress))
}

/// Fold the items added to finished run `run` since its base was written (its append-only
/// segment) into the base, and insert them into its ANN index if it has one.
pub fn compact_items(run: &Path, threads: usize, progress: &Reporter) -> Result<CompactReport> {
    check_finished(run)?;
    on_compute_pool(threads, || compact(run, progress))
}

/// Refuse parameters the index cannot be built or searched with.
fn check_params(p: &AnnParams) -> Result<()> {
    let bad = |what: &str| Err(Error::Input(format!("--{what}")));
    if p.lists > 1 << 20 {
        return bad("lists: give 0 (chosen from the item count) to 1048576");
    }
    if !(1..=1 << 20).contains(&p.probes) {
        return bad("probes: give 1 to 1048576");
    }
    if !(1..=65_536).contains(&p.candidates) {
        return bad("candidates: give 1 to 65536");
    }
    Ok(())
}
