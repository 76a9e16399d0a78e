//! The approximate nearest-neighbour index over a catalogue's rows, for inner-product scores:
//! an inverted file (`super::inverted_file`: k-means lists, the best lists of a query
//! scanned), memory-mapped when served (its pages are read on demand and shared through the
//! page cache by every process serving the run). This module keeps its record and its
//! commit point; docs/STACK.md section 17 has why an inverted file, and what was measured.
//!
//! IISAN's scores are raw dot products (the user state is not normalised): maximum
//! inner-product search, not a metric. The lists are ranked by inner products with the query
//! (plus each list's reach) and their rows scored by inner product; the candidates found are
//! re-scored exactly from the catalogue's rows (`super::search`), so a returned score is the
//! item's exact score.
//!
//! ```text
//! items.ann.json            the commit point: which file, over which rows, how built
//! items-ann-<rows>-<t>.ivf  the index (rows 1..=rows)
//! ```
//! A build writes its index file under a new name, then replaces `items.ann.json` (beside and
//! renamed), then removes the file the old record named: an interrupted build leaves the old
//! index in use. The record holds a fingerprint of the rows it was built over (their count,
//! width, the first 4,096 and the last); an index whose rows no longer match is refused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Catalogue;
pub use super::inverted_file::Storage;
use super::inverted_file::{InvertedFile, auto_lists};
use crate::atomic::{read_bounded, write_text};
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// The record of the index in use.
pub const RECORD: &str = "items.ann.json";

/// How the index is built and searched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnnParams {
    /// Lists the rows are partitioned into (0: the power of two nearest `4 sqrt(N)`; a
    /// record holds the number used).
    pub lists: usize,
    /// Lists scanned per query (recall and time grow with it).
    pub probes: usize,
    /// Candidates taken from the index per query and re-scored exactly (at least k).
    pub candidates: usize,
    /// Vector storage in the index.
    pub storage: Storage,
}

impl Default for AnnParams {
    /// The defaults measured in BENCHMARKS.md ("The ANN index").
    fn default() -> AnnParams {
        AnnParams {
            lists: 0,
            probes: 192,
            candidates: 100,
            storage: Storage::F16,
        }
    }
}

/// What `items.ann.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    /// The index file, in the run directory.
    file: String,
    /// Rows `1..=items` are in the index.
    items: usize,
    /// Row width d.
    dim: usize,
    params: AnnParams,
    /// Of the rows indexed (`fingerprint`).
    fingerprint: String,
    /// Seconds the build took.
    seconds: f64,
}

/// An index opened for search, or built.
pub struct AnnIndex {
    file: InvertedFile,
    record: Record,
    probes: usize,
}

/// Count, width, the first 4,096 rows and the last, hashed.
fn fingerprint(cat: &Catalogue, items: usize) -> String {
    let mut h = Sha256::new();
    h.update((items as u64).to_le_bytes());
    h.update((cat.dim() as u64).to_le_bytes());
    let rows = (1..=items.min(4096)).chain((items > 4096).then_some(items));
    for r in rows {
        for v in cat.row(r as u32) {
            h.update(v.to_le_bytes());
        }
    }
    format!("{:x}", h.finalize())[..16].to_string()
}

impl AnnIndex {
    /// Rows `1..=items()` are in the index.
    pub fn items(&self) -> usize {
        self.record.items
    }

    /// How it was built (`lists`: the number used) and is searched by default.
    pub fn params(&self) -> &AnnParams {
        &self.record.params
    }

    /// Lists scanned per query now (the built default, or the one the catalogue was opened
    /// with).
    pub fn probes(&self) -> usize {
        self.probes
    }

    /// Seconds its build took.
    pub fn build_seconds(&self) -> f64 {
        self.record.seconds
    }

    /// The `count` rows of the highest approximate inner product with `state` in the lists
    /// scanned (best first).
    pub fn search(&self, state: &[f32], count: usize) -> Vec<u32> {
        self.file.search(state, self.probes, count)
    }

    /// Open the index recorded in `dir` for the catalogue `cat` (none when there is no
    /// record): memory-mapped, checked against the catalogue's rows; `probes` overrides the
    /// lists scanned per query.
    pub fn open(dir: &Path, cat: &Catalogue, probes: Option<usize>) -> Result<Option<AnnIndex>> {
        let rec_path = dir.join(RECORD);
        if !rec_path.exists() {
            return Ok(None);
        }
        let record = read_record(&rec_path)?;
        let stale = record.dim != cat.dim()
            || record.items > cat.num_items()
            || fingerprint(cat, record.items) != record.fingerprint;
        if stale {
            let msg = "the ANN index was built over other item rows: build it again \
                       (`iisan index build`), or rank with --exact";
            return Err(Error::file(&rec_path, msg));
        }
        let path = checked_file(dir, &record.file, &rec_path)?;
        let file = InvertedFile::open(&path, record.items, record.dim)?;
        let probes = probes.unwrap_or(record.params.probes).max(1);
        Ok(Some(AnnIndex {
            file,
            record,
            probes,
        }))
    }
}

/// The record at `rec_path` (an index built by an earlier iisan is named as such).
fn read_record(rec_path: &Path) -> Result<Record> {
    let text = read_bounded(rec_path, 1 << 16)?;
    serde_json::from_str(&text).map_err(|e| {
        let msg = if text.contains(".usearch") {
            "records an HNSW index of an earlier iisan: build the index again \
             (`iisan index build`), or rank with --exact"
                .to_string()
        } else {
            format!("not an ANN index record: {e}")
        };
        Error::file(rec_path, msg)
    })
}

/// The identity of `dir`'s index record (`None` when the run has no index): a build or a
/// compaction replaces it.
pub(super) fn record_stamp(dir: &Path) -> Result<Option<super::Stamp>> {
    let p = dir.join(RECORD);
    if !p.exists() {
        return Ok(None);
    }
    super::file_stamp(&p).map(Some)
}

/// Whether `name` is a plain name of the kind builds write (`.usearch`: an earlier iisan's).
fn plain_index_name(name: &str) -> bool {
    name.starts_with("items-ann-")
        && (name.ends_with(".ivf") || name.ends_with(".usearch"))
        && !name.contains(['/', '\\'])
        && name.len() < 100
}

/// The index file a record names, which must be a plain name of the kind builds write.
fn checked_file(dir: &Path, name: &str, rec_path: &Path) -> Result<PathBuf> {
    if !plain_index_name(name) || !name.ends_with(".ivf") {
        return Err(Error::file(
            rec_path,
            format!("names {name:?}, not an index file"),
        ));
    }
    Ok(dir.join(name))
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Rows indexed.
    pub items: usize,
    /// Lists.
    pub lists: usize,
    /// Seconds.
    pub seconds: f64,
    /// The index file's size in bytes.
    pub bytes: u64,
}

/// Build the index of run directory `dir` over every row of its catalogue (under the item
/// lock, so no item is added meanwhile), and make it the run's index.
pub fn build(dir: &Path, params: &AnnParams, progress: &Reporter) -> Result<BuildReport> {
    let _lock = super::lock(dir)?;
    let cat = Catalogue::open(dir, super::SearchMode::Exact)?;
    let t0 = Instant::now();
    let n = cat.num_items();
    if n == 0 {
        return Err(Error::file(dir, "no items to index"));
    }
    let lists = match params.lists {
        0 => auto_lists(n),
        l => l.min(n),
    };
    let file = InvertedFile::build(&cat, n, lists, params.storage, progress)?;
    let record = Record {
        file: String::new(),
        items: n,
        dim: cat.dim(),
        params: AnnParams { lists, ..*params },
        fingerprint: fingerprint(&cat, n),
        seconds: t0.elapsed().as_secs_f64(),
    };
    save_and_commit(dir, &file, record)
}

/// Save `file` under a new name, then make `record` (naming it) the run's record.
fn save_and_commit(dir: &Path, file: &InvertedFile, mut record: Record) -> Result<BuildReport> {
    let stamp = chrono::Utc::now().timestamp_millis();
    record.file = format!("items-ann-{}-{stamp}.ivf", record.items);
    let path = dir.join(&record.file);
    file.write(&path)?;
    commit(dir, &record)?;
    let bytes = std::fs::metadata(&path)
        .map_err(|e| Error::io(&path, e))?
        .len();
    Ok(BuildReport {
        items: record.items,
        lists: file.lists(),
        seconds: record.seconds,
        bytes,
    })
}

/// Bring the index of `dir` (if it has one) up to every row of its catalogue, with the item
/// lock held (`_lock`): the missing rows join the lists of their nearest centroids, and the
/// file is written under a new name and committed. Returns the rows added.
pub(super) fn extend(dir: &Path, _lock: &std::fs::File, progress: &Reporter) -> Result<usize> {
    if !dir.join(RECORD).exists() {
        return Ok(0);
    }
    let cat = Catalogue::open(dir, super::SearchMode::Exact)?;
    let Some(old) = AnnIndex::open(dir, &cat, None)? else {
        return Ok(0);
    };
    let (m, n) = (old.items(), cat.num_items());
    if m == n {
        return Ok(0);
    }
    let t0 = Instant::now();
    let file = old.file.extend(&cat, n, progress)?;
    let mut record = old.record.clone();
    drop(old);
    record.items = n;
    record.fingerprint = fingerprint(&cat, n);
    record.seconds += t0.elapsed().as_secs_f64();
    save_and_commit(dir, &file, record)?;
    Ok(n - m)
}

/// Replace the record with `record`, then remove the index file the old one named (one
/// that a build wrote, by its name: an earlier iisan's HNSW file included).
fn commit(dir: &Path, record: &Record) -> Result<()> {
    let rec_path = dir.join(RECORD);
    let old: Option<String> = read_bounded(&rec_path, 1 << 16)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("file")?.as_str().map(str::to_string));
    let json = serde_json::to_string_pretty(record).expect("serialisable");
    write_text(&rec_path, &(json + "\n"))?;
    if let Some(old) = old.filter(|o| *o != record.file && plain_index_name(o)) {
        let _ = std::fs::remove_file(dir.join(old));
    }
    Ok(())
}
