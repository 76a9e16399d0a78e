//! The catalogue a run serves: every item's embedding row and external id, ranked for a user
//! state by exact scan or through an approximate nearest-neighbour index (docs/SERVING.md,
//! "Catalogues of millions of items").
//!
//! ```text
//! items.safetensors, item_ids.txt     the base (base.rs), memory-mapped (matrix.rs)
//! items.seg-<B>.*                     items added since, append-only (segment.rs)
//! items.ann.json, items-ann-*.ivf     the ANN index over rows 1..=M (ann.rs: an inverted
//!                                     file, inverted_file.rs, kmeans.rs, list_scan.rs)
//! ```
//! Rows are numbered base first (`1..=B`), then the segment's. Writers hold the exclusive
//! lock on `items.lock`: two writers (two `items add`, a server and a command) never
//! interleave. A value of this type is immutable; an append returns a new one that shares the
//! base (and the index) with the old, so adding an item costs O(d) plus the segment's size,
//! never the catalogue's.

pub mod ann;
pub mod base;
mod compact;
mod inverted_file;
mod kmeans;
mod list_scan;
mod matrix;
pub mod search;
mod segment;
mod top_k;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

pub use ann::{AnnIndex, AnnParams, Storage};
pub use base::write_base;
pub use compact::{CompactReport, compact};
pub use search::{SearchMode, Want};
pub use top_k::{Scored, TopK};

use base::{Base, IDS};
use segment::{BaseId, Segment};

use crate::data::ids;
use crate::error::{Error, Result};

/// The items added after the base, with the row of each id.
#[derive(Default)]
struct Tail {
    seg: Segment,
    index: HashMap<String, u32>,
}

/// Which version of the base a catalogue was read from: a compaction by another process
/// replaces `item_ids.txt`, which an append notices before it writes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64, u64, std::time::SystemTime);

fn stamp(dir: &Path) -> Result<Stamp> {
    file_stamp(&dir.join(IDS))
}

/// The identity of file `p` (inode, length, modification time).
fn file_stamp(p: &Path) -> Result<Stamp> {
    let m = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
    let t = m.modified().map_err(|e| Error::io(p, e))?;
    Ok(Stamp(std::os::unix::fs::MetadataExt::ino(&m), m.len(), t))
}

/// A run's items: base + segment, and the ANN index when the run has one and it is used.
#[derive(Clone)]
pub struct Catalogue {
    base: Arc<Base>,
    tail: Arc<Tail>,
    ann: Option<Arc<AnnIndex>>,
    mode: SearchMode,
    stamp: Stamp,
    /// The ANN index record's, when read (`None`: no record).
    ann_stamp: Option<Stamp>,
    /// The base, as its segment names it.
    base_id: BaseId,
}

/// The exclusive lock every catalogue writer holds (released when dropped).
pub(crate) fn lock(dir: &Path) -> Result<File> {
    let path = dir.join("items.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    f.lock().map_err(|e| Error::io(&path, e))?;
    Ok(f)
}

impl Catalogue {
    /// Open the catalogue of run directory `dir`, ranking by `mode`.
    pub fn open(dir: &Path, mode: SearchMode) -> Result<Catalogue> {
        let stamp = stamp(dir)?;
        let ann_stamp = ann::record_stamp(dir)?;
        let base = Base::read(dir)?;
        let base_id = base.id();
        let seg = Segment::read(dir, &base_id, base.matrix.dim())?;
        let mut cat = Catalogue {
            base: Arc::new(base),
            tail: Arc::new(Tail::default()),
            ann: None,
            mode,
            stamp,
            ann_stamp,
            base_id,
        };
        cat.tail = Arc::new(cat.tail_of(seg));
        if mode != SearchMode::Exact {
            let probes = match mode {
                SearchMode::Probes(n) => Some(n),
                _ => None,
            };
            cat.ann = AnnIndex::open(dir, &cat, probes)?.map(Arc::new);
        }
        Ok(cat)
    }

    fn tail_of(&self, seg: Segment) -> Tail {
        let b = self.base.keys.len();
        let index = seg
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), (b + i) as u32))
            .collect();
        Tail { seg, index }
    }

    /// Items N (padding not counted).
    pub fn num_items(&self) -> usize {
        self.base.keys.len() - 1 + self.tail.seg.keys.len()
    }

    /// Items in the base (the rest are in the segment).
    pub fn base_items(&self) -> usize {
        self.base.keys.len() - 1
    }

    /// Width d of a row.
    pub fn dim(&self) -> usize {
        self.base.matrix.dim()
    }

    /// How ranking is done.
    pub fn mode(&self) -> SearchMode {
        self.mode
    }

    /// The ANN index ranking uses, if any.
    pub fn ann(&self) -> Option<&AnnIndex> {
        self.ann.as_deref()
    }

    /// The external id of row `row` (`1..=N`; 0 is `<pad>`).
    pub fn key(&self, row: u32) -> &str {
        let r = row as usize;
        match self.base.keys.get(r) {
            Some(k) => k,
            None => &self.tail.seg.keys[r - self.base.keys.len()],
        }
    }

    /// Every item id in row order (row 1 first).
    pub fn ids(&self) -> Vec<String> {
        let tail = self.tail.seg.keys.iter();
        self.base.keys[1..].iter().chain(tail).cloned().collect()
    }

    /// The row of `key`, if the catalogue has it.
    pub fn row_of(&self, key: &str) -> Option<u32> {
        let base = self.base.index.get(key);
        base.or_else(|| self.tail.index.get(key)).copied()
    }

    /// The rows of external ids `keys`; every unknown id is named in one error.
    pub fn rows(&self, keys: &[&str]) -> Result<Vec<u32>> {
        let rows: Vec<Option<u32>> = keys.iter().map(|k| self.row_of(k)).collect();
        if rows.iter().any(Option::is_none) {
            let ids = (keys.iter().zip(&rows))
                .filter(|(_, r)| r.is_none())
                .map(|(k, _)| k.to_string())
                .collect();
            return Err(Error::UnknownItems { ids, history: None });
        }
        Ok(rows.into_iter().map(|r| r.expect("checked")).collect())
    }

    /// The embedding of row `row` (`0..=N`; row 0 is zeros).
    #[inline]
    pub fn row(&self, row: u32) -> &[f32] {
        let (r, b, d) = (row as usize, self.base.keys.len(), self.dim());
        if r < b {
            self.base.matrix.row(r)
        } else {
            &self.tail.seg.rows[(r - b) * d..(r - b + 1) * d]
        }
    }

    /// Every row `[N + 1, d]` (row 0 zeros), copied.
    pub fn to_vec(&self) -> Vec<f32> {
        let mut v = self.base.matrix.data().to_vec();
        v.extend_from_slice(&self.tail.seg.rows);
        v
    }

    /// Check new ids: valid, not repeated, not in the catalogue (every problem named).
    pub fn check_new_keys(&self, keys: &[String]) -> Result<()> {
        check_keys(keys, |k| self.row_of(k).is_some())
    }

    /// The catalogue of `dir` as it is now, if it changed since this one was read (`None`
    /// when not): only the segment read again when only items were appended (O(segment)),
    /// everything when the base or the ANN index was replaced (a compaction, a build).
    /// What replicas that follow a writer call (`iisan serve --follow`).
    pub fn refresh(&self, dir: &Path) -> Result<Option<Catalogue>> {
        let same_index = ann::record_stamp(dir)? == self.ann_stamp;
        if stamp(dir)? != self.stamp || !same_index {
            return Catalogue::open(dir, self.mode).map(Some);
        }
        if Segment::committed(dir, &self.base_id)? == self.tail.seg.keys.len() {
            return Ok(None);
        }
        let seg = Segment::read(dir, &self.base_id, self.dim())?;
        let mut next = self.clone();
        next.tail = Arc::new(self.tail_of(seg));
        Ok(Some(next))
    }

    /// Append the items `keys` with embeddings `rows` (`[keys.len(), d]`, row-major) to the
    /// catalogue of run directory `dir` (whose catalogue this is, or was: a catalogue another
    /// writer changed since is read again first), under its lock; returns the catalogue with
    /// them. Invalid, repeated or known ids are an error naming them, and nothing is written.
    pub fn append(&self, dir: &Path, keys: &[String], rows: &[f32]) -> Result<Catalogue> {
        let _lock = lock(dir)?;
        let d = self.dim();
        if rows.len() != keys.len() * d {
            let msg = format!(
                "{} values for {} new rows of width {d}",
                rows.len(),
                keys.len()
            );
            return Err(Error::Internal(msg));
        }
        let fresh = stamp(dir)? == self.stamp
            && Segment::committed(dir, &self.base_id)? == self.tail.seg.keys.len();
        let now = if fresh {
            self.clone()
        } else {
            Catalogue::open(dir, self.mode)?
        };
        now.check_new_keys(keys)?;
        let seg = now.tail.seg.append(dir, &now.base_id, keys, rows)?;
        let mut next = now.clone();
        next.tail = Arc::new(now.tail_of(seg));
        Ok(next)
    }
}

/// Check new item ids: none empty or invalid (the first named), none repeated in `keys` or
/// `known` already (all of those named in one error).
pub fn check_keys(keys: &[String], known: impl Fn(&str) -> bool) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Input("no items to add".into()));
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(p) = ids::item_id_problem(k) {
            let msg = format!("item {}: id {} {p}", i + 1, ids::shown(k));
            return Err(Error::Input(msg));
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut dup: Vec<String> = Vec::new();
    for k in keys {
        if (known(k) || !seen.insert(k.as_str())) && !dup.contains(k) {
            dup.push(k.clone());
        }
    }
    if !dup.is_empty() {
        return Err(Error::DuplicateItems { ids: dup });
    }
    Ok(())
}
