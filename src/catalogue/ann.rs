//! The approximate nearest-neighbour index over a catalogue's rows, for inner-product scores:
//! an HNSW graph of the `usearch` crate (docs/STACK.md section 17: why usearch, and what was
//! measured), memory-mapped when served (`Index::view`: the graph and its vectors are paged
//! in on demand and shared through the page cache by every process serving the run).
//!
//! IISAN's scores are raw dot products (the user state is not normalised): maximum
//! inner-product search, not a metric. The graph is built and searched with usearch's inner
//! product (`1 - q.x` as the distance), which measured far better here than the textbook
//! reduction to Euclidean search (an extra coordinate `sqrt(M^2 - |x|^2)`): recall@10 0.92
//! against 0.36 at the same settings on the Scientific catalogue grown to 10^6 items
//! (docs/STACK.md section 17). The candidates it returns are re-scored exactly from the
//! catalogue's rows (`super::search`), so a returned score is the item's exact score.
//!
//! ```text
//! items.ann.json              the commit point: which file, over which rows, how built
//! items-ann-<rows>-<t>.usearch the index (keys = item rows 1..=rows)
//! ```
//! A build writes its index file under a new name, then replaces `items.ann.json` (beside and
//! renamed), then removes the file the old record named: an interrupted build leaves the old
//! index in use. The record holds a fingerprint of the rows it was built over (their count,
//! width, the first 4,096 and the last); an index whose rows no longer match is refused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::Catalogue;
use crate::atomic::{read_bounded, write_text};
use crate::error::{Error, Result};
use crate::progress::{Reporter, Unit};

/// The record of the index in use.
pub const RECORD: &str = "items.ann.json";

/// Searches an opened index runs at once (each holds a context of a few KiB; more wait).
pub const SEARCH_CONTEXTS: usize = 256;

/// How vectors are kept in the index (the catalogue's rows, which re-score the candidates,
/// stay f32). f16 is the default: half the size, and measured faster to build and search with
/// the same recall (docs/STACK.md section 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// 4 bytes a value.
    F32,
    /// 2 bytes a value (IEEE half precision).
    #[default]
    F16,
}

/// How the index is built and searched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnnParams {
    /// Graph degree M (edges per node and layer; twice that on the bottom layer).
    pub connectivity: usize,
    /// Beam width while inserting (build quality; build time grows with it).
    pub expansion_add: usize,
    /// Beam width while searching (recall and latency grow with it).
    pub expansion_search: usize,
    /// Candidates taken from the index per query and re-scored exactly (at least k).
    pub candidates: usize,
    /// Vector storage in the index.
    pub storage: Storage,
}

impl Default for AnnParams {
    /// The defaults measured in BENCHMARKS.md ("The ANN index").
    fn default() -> AnnParams {
        AnnParams {
            connectivity: 32,
            expansion_add: 128,
            expansion_search: 512,
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
    index: Index,
    record: Record,
}

fn cxx(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, format!("ANN index: {e}"))
}

/// The index file's path as the C++ side takes it (UTF-8).
fn utf8(path: &Path) -> Result<&str> {
    path.to_str()
        .ok_or_else(|| Error::file(path, "the ANN index needs a UTF-8 path"))
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

fn options(dim: usize, p: &AnnParams) -> IndexOptions {
    IndexOptions {
        dimensions: dim,
        metric: MetricKind::IP,
        quantization: match p.storage {
            Storage::F32 => ScalarKind::F32,
            Storage::F16 => ScalarKind::F16,
        },
        connectivity: p.connectivity,
        expansion_add: p.expansion_add,
        expansion_search: p.expansion_search,
        multi: false,
    }
}

impl AnnIndex {
    /// Rows `1..=items()` are in the index.
    pub fn items(&self) -> usize {
        self.record.items
    }

    /// How it was built and is searched.
    pub fn params(&self) -> &AnnParams {
        &self.record.params
    }

    /// Search with beam width `n` from now on (at least 1; the count asked for when larger).
    pub fn set_expansion_search(&self, n: usize) {
        self.index.change_expansion_search(n.max(1));
    }

    /// The search beam width in use.
    pub fn expansion_search(&self) -> usize {
        self.index.expansion_search()
    }

    /// Seconds its build took.
    pub fn build_seconds(&self) -> f64 {
        self.record.seconds
    }

    /// The `count` rows of the highest inner product with `state` the graph search finds
    /// (best first).
    ///
    /// A search takes one of the index's [`SEARCH_CONTEXTS`] contexts for its duration and
    /// fails when none is free (more searches at once than that: threads of a Python program,
    /// say); it is then retried after yielding. The width is right by construction, so a
    /// failure that lasts is an allocation failure, reported as an internal error.
    pub fn search(&self, state: &[f32], count: usize) -> Result<Vec<u32>> {
        let mut tries = 0;
        loop {
            match self.index.search(state, count) {
                Ok(m) => return Ok(m.keys.iter().map(|&k| k as u32).collect()),
                Err(_) if tries < 100_000 => {
                    tries += 1;
                    std::thread::yield_now();
                }
                Err(e) => return Err(Error::Internal(format!("ANN search: {e}"))),
            }
        }
    }

    /// Open the index recorded in `dir` for the catalogue `cat` (none when there is no
    /// record): memory-mapped, checked against the catalogue's rows.
    pub fn open(dir: &Path, cat: &Catalogue) -> Result<Option<AnnIndex>> {
        let rec_path = dir.join(RECORD);
        if !rec_path.exists() {
            return Ok(None);
        }
        let record: Record = serde_json::from_str(&read_bounded(&rec_path, 1 << 16)?)
            .map_err(|e| Error::file(&rec_path, format!("not an ANN index record: {e}")))?;
        let stale = record.dim != cat.dim()
            || record.items > cat.num_items()
            || fingerprint(cat, record.items) != record.fingerprint;
        if stale {
            let msg = "the ANN index was built over other item rows: build it again \
                       (`iisan index build`), or rank with --exact";
            return Err(Error::file(&rec_path, msg));
        }
        let path = checked_file(dir, &record.file, &rec_path)?;
        let index = Index::new(&options(record.dim, &record.params)).map_err(|e| cxx(&path, e))?;
        // the contexts reserved here are kept by the view
        index
            .reserve_capacity_and_threads(0, SEARCH_CONTEXTS)
            .map_err(|e| cxx(&path, e))?;
        index.view(utf8(&path)?).map_err(|e| cxx(&path, e))?;
        if index.size() != record.items || index.dimensions() != record.dim {
            let msg = format!("holds {} rows, its record {}", index.size(), record.items);
            return Err(Error::file(&path, msg));
        }
        index.change_expansion_search(record.params.expansion_search);
        Ok(Some(AnnIndex { index, record }))
    }
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

/// The index file a record names, which must be a plain name of the kind builds write.
fn checked_file(dir: &Path, name: &str, rec_path: &Path) -> Result<PathBuf> {
    let plain = name.starts_with("items-ann-")
        && name.ends_with(".usearch")
        && !name.contains(['/', '\\'])
        && name.len() < 100;
    if !plain {
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
    /// Seconds.
    pub seconds: f64,
    /// The index file's size in bytes.
    pub bytes: u64,
}

/// Build the index of run directory `dir` over every row of its catalogue (under the item
/// lock, so no item is added meanwhile), and make it the run's index.
pub fn build(dir: &Path, params: &AnnParams, progress: &Reporter) -> Result<BuildReport> {
    let lock = super::lock(dir)?;
    build_locked(dir, &lock, params, progress)
}

/// [`build`] with the item lock held (`_lock`).
fn build_locked(
    dir: &Path,
    _lock: &std::fs::File,
    params: &AnnParams,
    progress: &Reporter,
) -> Result<BuildReport> {
    let cat = Catalogue::open(dir, super::SearchMode::Exact)?;
    let t0 = Instant::now();
    let n = cat.num_items();
    let index = Index::new(&options(cat.dim(), params)).map_err(|e| cxx(dir, e))?;
    index
        .reserve_capacity_and_threads(n, rayon::current_num_threads())
        .map_err(|e| cxx(dir, e))?;
    let task = progress.task("indexing items", Unit::Items, n as u64, 0);
    add_rows(&index, &cat, 1..=n, &task, progress)?;
    task.finish();
    let record = Record {
        file: String::new(),
        items: n,
        dim: cat.dim(),
        params: *params,
        fingerprint: fingerprint(&cat, n),
        seconds: t0.elapsed().as_secs_f64(),
    };
    save_and_commit(dir, &index, record)
}

/// Save `index` under a new name, then make `record` (naming it) the run's record.
fn save_and_commit(dir: &Path, index: &Index, mut record: Record) -> Result<BuildReport> {
    let stamp = chrono::Utc::now().timestamp_millis();
    record.file = format!("items-ann-{}-{stamp}.usearch", record.items);
    let path = dir.join(&record.file);
    index.save(utf8(&path)?).map_err(|e| cxx(&path, e))?;
    commit(dir, &record)?;
    let bytes = std::fs::metadata(&path)
        .map_err(|e| Error::io(&path, e))?
        .len();
    Ok(BuildReport {
        items: record.items,
        seconds: record.seconds,
        bytes,
    })
}

/// Bring the index of `dir` (if it has one) up to every row of its catalogue, with the item
/// lock held (`_lock`): the missing rows are inserted into the loaded graph, which is saved
/// under a new name and committed. Returns the rows added.
pub(super) fn extend(dir: &Path, _lock: &std::fs::File, progress: &Reporter) -> Result<usize> {
    let rec_path = dir.join(RECORD);
    if !rec_path.exists() {
        return Ok(0);
    }
    let cat = Catalogue::open(dir, super::SearchMode::Exact)?;
    let Some(old) = AnnIndex::open(dir, &cat)? else {
        return Ok(0);
    };
    let (m, n) = (old.items(), cat.num_items());
    if m == n {
        return Ok(0);
    }
    let mut record = old.record.clone();
    drop(old);
    let t0 = Instant::now();
    let path = checked_file(dir, &record.file, &rec_path)?;
    let index = Index::new(&options(record.dim, &record.params)).map_err(|e| cxx(&path, e))?;
    index.load(utf8(&path)?).map_err(|e| cxx(&path, e))?;
    index
        .reserve_capacity_and_threads(n, rayon::current_num_threads())
        .map_err(|e| cxx(&path, e))?;
    let task = progress.task("indexing new items", Unit::Items, (n - m) as u64, 0);
    add_rows(&index, &cat, m + 1..=n, &task, progress)?;
    task.finish();
    record.items = n;
    record.fingerprint = fingerprint(&cat, n);
    record.seconds += t0.elapsed().as_secs_f64();
    save_and_commit(dir, &index, record)?;
    Ok(n - m)
}

/// Insert rows `rows` of `cat` into `index`, in parallel, reporting to `task`.
fn add_rows(
    index: &Index,
    cat: &Catalogue,
    rows: std::ops::RangeInclusive<usize>,
    task: &crate::progress::Task,
    progress: &Reporter,
) -> Result<()> {
    let all: Vec<usize> = rows.collect();
    for chunk in all.chunks(65_536) {
        chunk.par_iter().try_for_each(|&r| {
            index
                .add(r as u64, cat.row(r as u32))
                .map_err(|e| Error::Internal(format!("ANN add: {e}")))
        })?;
        task.advance(chunk.len() as u64);
        progress.check(|| "index build stopped".into())?;
    }
    Ok(())
}

/// Replace the record with `record`, then remove the index file the old one named.
fn commit(dir: &Path, record: &Record) -> Result<()> {
    let rec_path = dir.join(RECORD);
    let old: Option<Record> = read_bounded(&rec_path, 1 << 16)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let json = serde_json::to_string_pretty(record).expect("serialisable");
    write_text(&rec_path, &(json + "\n"))?;
    if let Some(old) = old.filter(|o| o.file != record.file) {
        let p = checked_file(dir, &old.file, &rec_path)?;
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}
