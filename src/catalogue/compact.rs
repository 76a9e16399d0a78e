//! `iisan index compact`: fold the segment into the base, so that the items added since the
//! base was written are memory-mapped with the rest, and extend the ANN index over them.
//!
//! Under the item lock: the new matrix (base rows, then the segment's) is written beside and
//! renamed, then the ids (the base's commit point): from that rename on, readers see the new
//! base of `B + S` items and no segment (the old segment's files name base `B`, so they are
//! no longer read, and are removed last). The index, when the run has one, is then extended
//! by the rows it lacks (inserted into the loaded graph) and committed. Interrupted anywhere, the run keeps a complete catalogue; at worst the index covers fewer
//! rows, and the rest are scanned.

use std::path::Path;

use candle_core::{Device, Tensor};

use super::segment::Segment;
use super::{Catalogue, SearchMode, ann, base};
use crate::error::Result;
use crate::progress::Reporter;

/// What a compaction did.
#[derive(Debug, Clone)]
pub struct CompactReport {
    /// Items folded from the segment into the base.
    pub folded: usize,
    /// Items in the new base.
    pub items: usize,
    /// Rows added to the ANN index (0 without one).
    pub indexed: usize,
}

/// Fold the segment of run directory `dir` into its base and bring its ANN index (if any)
/// up to every row.
pub fn compact(dir: &Path, progress: &Reporter) -> Result<CompactReport> {
    let lock = super::lock(dir)?;
    let cat = Catalogue::open(dir, SearchMode::Exact)?;
    let (b, n) = (cat.base_items(), cat.num_items());
    if n > b {
        let items = Tensor::from_vec(cat.to_vec(), (n + 1, cat.dim()), &Device::Cpu)?;
        let keys: Vec<String> = std::iter::once("<pad>".to_string())
            .chain(cat.ids())
            .collect();
        base::write_base(dir, &keys, &items)?;
        Segment::remove(dir, b)?;
    }
    drop(cat);
    let indexed = ann::extend(dir, &lock, progress)?;
    Ok(CompactReport {
        folded: n - b,
        items: n,
        indexed,
    })
}
