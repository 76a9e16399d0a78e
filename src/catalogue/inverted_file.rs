//! The ANN index's structure: an inverted file (IVF) for inner-product scores. The rows are
//! partitioned by k-means (`super::kmeans`) into lists; each list's rows are stored together
//! (f16 or f32 copies, list by list). A query ranks the lists, scans the `probes` best
//! (`super::list_scan`) and returns the rows of its best approximate scores, which the caller
//! re-scores exactly from the catalogue (docs/SERVING.md, "The ANN index").
//!
//! A list `c` is ranked by an estimate of the best score among its `n_c` rows:
//! `q . c + |q| r_c` with the list's *reach* `r_c = s_c sqrt(2 ln n_c)`, where
//! `s_c^2 = sum |x - c|^2 / (n_c d)` is its rows' spread about the centroid per dimension: if
//! the rows' offsets from the centroid projected on `q` were Gaussian with deviation
//! `|q| s_c`, the largest of `n_c` of them would be about `|q| s_c sqrt(2 ln n_c)`. A list of
//! many far-spread rows is visited before a tight one with the same centroid score; measured
//! (docs/STACK.md section 17) it finds more of the exact top items for the same scan than
//! `q . c` alone.
//!
//! Written by hand: the Rust crates with inverted files are bindings to faiss (a C++ library
//! to install) or part of a database (lance); docs/STACK.md section 17 has what was measured.
//!
//! The file is safetensors (`centroids` f32 `[L, d]`, `reach` f32 `[L]`, `offsets` i64
//! `[L + 1]`, `rows` u32 `[n]`, `vectors` f16 or f32 `[n, d]`), memory-mapped when opened and
//! checked whole: shapes, offsets from 0 to n in order, and `rows` a permutation of `1..=n`.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use half::f16;
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use super::Catalogue;
use super::kmeans;
use super::list_scan::{self, Rows};
use super::top_k::TopK;
use crate::error::{Error, Result};
use crate::progress::{Reporter, Unit};

mod io;

/// How vectors are kept in the index (the catalogue's rows, which re-score the candidates,
/// stay f32). f16 is the default: half the bytes to scan, the same recall after re-scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// 4 bytes a value.
    F32,
    /// 2 bytes a value (IEEE half precision).
    #[default]
    F16,
}

/// Lloyd rounds of the k-means.
const ROUNDS: usize = 10;

/// Training rows per list (a sample of at most this many times the lists trains k-means).
const SAMPLE_PER_LIST: usize = 64;

/// Rows assigned to lists per step of a build (and per progress report).
const CHUNK: usize = 65_536;

/// The lists for `n` rows when none are asked for: the power of two nearest `4 sqrt(n)`
/// (4,096 at 10^6 rows, 16,384 at 10^7), at most `n`.
pub fn auto_lists(n: usize) -> usize {
    let t = 4.0 * (n.max(1) as f64).sqrt();
    (1usize << t.log2().round() as u32).clamp(1, n.max(1))
}

/// A value stored in the file (little-endian, every bit pattern valid).
trait Plain: Copy + Send + Sync + 'static {
    const DTYPE: Dtype;
    fn read(b: &[u8]) -> Self;
}

macro_rules! plain {
    ($t:ty, $d:expr, $n:literal) => {
        impl Plain for $t {
            const DTYPE: Dtype = $d;
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b[..$n].try_into().expect("width"))
            }
        }
    };
}
plain!(f32, Dtype::F32, 4);
plain!(u32, Dtype::U32, 4);
plain!(i64, Dtype::I64, 8);
plain!(f16, Dtype::F16, 2);

#[cfg(not(target_endian = "little"))]
compile_error!("the index file is read in place as little-endian values");

/// Values in the mapped file (in place, when aligned) or in memory.
enum Slab<T> {
    Mapped {
        map: Arc<Mmap>,
        at: usize,
        len: usize,
    },
    Owned(Vec<T>),
}

impl<T: Plain> Slab<T> {
    fn get(&self) -> &[T] {
        match self {
            // SAFETY: `at` is aligned for T and `at + len * size_of::<T>()` within the map
            // (checked by `tensor`); the map is never written (files are replaced by rename);
            // every bit pattern is a T.
            Slab::Mapped { map, at, len } => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(*at).cast::<T>(), *len)
            },
            Slab::Owned(v) => v,
        }
    }

    /// Its bytes as the file stores them.
    fn bytes(&self) -> &[u8] {
        let v = self.get();
        // SAFETY: any initialised memory may be read as bytes.
        unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
    }
}

/// The stored vectors.
enum Vectors {
    F16(Slab<f16>),
    F32(Slab<f32>),
}

/// An inverted file over rows `1..=n` of a catalogue.
pub struct InvertedFile {
    d: usize,
    centroids: Slab<f32>,
    reach: Slab<f32>,
    offsets: Slab<i64>,
    rows: Slab<u32>,
    vectors: Vectors,
}

impl InvertedFile {
    /// Rows indexed.
    pub fn len(&self) -> usize {
        self.rows.get().len()
    }

    /// Lists.
    pub fn lists(&self) -> usize {
        self.reach.get().len()
    }

    /// How its vectors are stored.
    pub fn storage(&self) -> Storage {
        match self.vectors {
            Vectors::F16(_) => Storage::F16,
            Vectors::F32(_) => Storage::F32,
        }
    }

    /// List `j`'s range of positions.
    fn range(&self, j: usize) -> std::ops::Range<usize> {
        let o = self.offsets.get();
        o[j] as usize..o[j + 1] as usize
    }

    /// Partition rows `1..=n` of `cat` into `lists` lists (k-means on a sample of them) and
    /// lay them out.
    pub fn build(
        cat: &Catalogue,
        n: usize,
        lists: usize,
        storage: Storage,
        progress: &Reporter,
    ) -> Result<InvertedFile> {
        let d = cat.dim();
        let lists = lists.clamp(1, n.max(1));
        let step = (n / (SAMPLE_PER_LIST * lists)).max(1);
        let sample: Vec<f32> = (1..=n)
            .step_by(step)
            .flat_map(|r| cat.row(r as u32).iter().copied())
            .collect();
        let centroids = kmeans::train(&sample, d, lists, ROUNDS, progress)?;
        drop(sample);
        let list_of = assign(cat, &centroids, 1..=n, progress)?;
        Ok(lay_out(cat, centroids, &list_of, storage))
    }

    /// This file with rows `len() + 1..=n` of `cat` added, each to the list of its nearest
    /// centroid (the centroids unchanged).
    pub fn extend(&self, cat: &Catalogue, n: usize, progress: &Reporter) -> Result<InvertedFile> {
        let m = self.len();
        let mut list_of = vec![0u32; m];
        for j in 0..self.lists() {
            for &r in &self.rows.get()[self.range(j)] {
                list_of[r as usize - 1] = j as u32;
            }
        }
        let centroids = self.centroids.get().to_vec();
        list_of.extend(assign(cat, &centroids, m + 1..=n, progress)?);
        Ok(lay_out(cat, centroids, &list_of, self.storage()))
    }

    /// The catalogue rows of the `count` best approximate scores for `q` over the `probes`
    /// best lists (best first, ties to the lower row).
    pub fn search(&self, q: &[f32], probes: usize, count: usize) -> Vec<u32> {
        let (d, reach) = (self.d, self.reach.get());
        let norm = q.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut order = Vec::with_capacity(reach.len());
        list_scan::score(Rows::F32(self.centroids.get()), q, &mut order);
        let mut order: Vec<(f32, u32)> = (order.iter().zip(reach).enumerate())
            .map(|(j, (s, r))| (s + norm * r, j as u32))
            .collect();
        let probes = probes.clamp(1, order.len());
        order.select_nth_unstable_by(probes - 1, |a, b| b.0.total_cmp(&a.0));
        let mut best = TopK::new(count);
        let mut scores = Vec::new();
        for &(_, j) in &order[..probes] {
            let range = self.range(j as usize);
            let rows = match &self.vectors {
                Vectors::F16(v) => Rows::F16(&v.get()[range.start * d..range.end * d]),
                Vectors::F32(v) => Rows::F32(&v.get()[range.start * d..range.end * d]),
            };
            list_scan::score(rows, q, &mut scores);
            for (&s, &r) in scores.iter().zip(&self.rows.get()[range]) {
                best.push(r, s);
            }
        }
        best.into_sorted().into_iter().map(|s| s.item).collect()
    }
}

/// The list (nearest centroid) of each row `rows` of `cat`, in chunks, with progress.
fn assign(
    cat: &Catalogue,
    centroids: &[f32],
    rows: std::ops::RangeInclusive<usize>,
    progress: &Reporter,
) -> Result<Vec<u32>> {
    let (d, (first, last)) = (cat.dim(), rows.into_inner());
    let n = (last + 1).saturating_sub(first);
    let task = progress.task("assigning items to lists", Unit::Items, n as u64, 0);
    let mut out = Vec::with_capacity(n);
    for lo in (first..=last).step_by(CHUNK) {
        let x: Vec<f32> = (lo..=last.min(lo + CHUNK - 1))
            .flat_map(|r| cat.row(r as u32).iter().copied())
            .collect();
        out.extend(kmeans::nearest(&x, centroids, d, Some(&task)));
        progress.check(|| "index build stopped".into())?;
    }
    task.finish();
    Ok(out)
}

/// The file of rows `1..=list_of.len()` of `cat`, row `r` in list `list_of[r - 1]`.
fn lay_out(cat: &Catalogue, centroids: Vec<f32>, list_of: &[u32], s: Storage) -> InvertedFile {
    let (d, lists) = (cat.dim(), centroids.len() / cat.dim());
    let mut offsets = vec![0i64; lists + 1];
    for &j in list_of {
        offsets[j as usize + 1] += 1;
    }
    for j in 0..lists {
        offsets[j + 1] += offsets[j];
    }
    let mut at: Vec<usize> = offsets[..lists].iter().map(|&o| o as usize).collect();
    let mut rows = vec![0u32; list_of.len()];
    for (i, &j) in list_of.iter().enumerate() {
        rows[at[j as usize]] = i as u32 + 1;
        at[j as usize] += 1;
    }
    let vectors = match s {
        Storage::F32 => Vectors::F32(Slab::Owned(
            (rows.par_iter())
                .flat_map_iter(|r| cat.row(*r).iter().copied())
                .collect(),
        )),
        Storage::F16 => Vectors::F16(Slab::Owned(
            (rows.par_iter())
                .flat_map_iter(|r| cat.row(*r).iter().map(|&v| f16::from_f32(v)))
                .collect(),
        )),
    };
    let reach = (0..lists)
        .into_par_iter()
        .map(|j| {
            let members = &rows[offsets[j] as usize..offsets[j + 1] as usize];
            reach_of(
                &centroids[j * d..][..d],
                members.iter().map(|&r| cat.row(r)),
            )
        })
        .collect();
    InvertedFile {
        d,
        centroids: Slab::Owned(centroids),
        reach: Slab::Owned(reach),
        offsets: Slab::Owned(offsets),
        rows: Slab::Owned(rows),
        vectors,
    }
}

/// `s sqrt(2 ln n)` of a list with centroid `c` and members `rows` (0 for fewer than two).
fn reach_of<'a>(c: &[f32], rows: impl ExactSizeIterator<Item = &'a [f32]>) -> f32 {
    let n = rows.len();
    if n < 2 {
        return 0.0;
    }
    let ss: f64 = rows
        .map(|x| {
            x.iter()
                .zip(c)
                .map(|(a, b)| ((a - b) * (a - b)) as f64)
                .sum::<f64>()
        })
        .sum();
    let s = (ss / (n * c.len()) as f64).sqrt();
    (s * (2.0 * (n as f64).ln()).sqrt()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two lists over rows 1..=3 of width 2 as written by hand: list 0 holds row 2 ((1,0)),
    /// list 1 rows 3 and 1 ((0,1), (0,2)).
    fn small(rows: Vec<u32>) -> InvertedFile {
        InvertedFile {
            d: 2,
            centroids: Slab::Owned(vec![1.0, 0.0, 0.0, 1.5]),
            reach: Slab::Owned(vec![0.0, 0.5]),
            offsets: Slab::Owned(vec![0, 1, 3]),
            rows: Slab::Owned(rows),
            vectors: Vectors::F16(Slab::Owned(
                [1.0, 0.0, 0.0, 1.0, 0.0, 2.0].map(f16::from_f32).to_vec(),
            )),
        }
    }

    #[test]
    fn lists_are_ranked_by_centroid_score_plus_reach_and_the_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ivf");
        small(vec![2, 3, 1]).write(&path).unwrap();
        let f = InvertedFile::open(&path, 3, 2).unwrap();
        assert_eq!((f.len(), f.lists(), f.storage()), (3, 2, Storage::F16));
        // q = (1, 0.9), |q| = 1.345: list 0 scores 1 + 0, list 1 0.9 * 1.5 + 1.345 * 0.5 =
        // 2.02; one probe scans list 1 only: rows 3 (0.9) and 1 (1.8)
        let mut got = f.search(&[1.0, 0.9], 1, 10);
        got.sort();
        assert_eq!(got, [1, 3]);
        // two probes, best 2 by score: row 1 (1.8), row 2 (1.0)
        let mut got = f.search(&[1.0, 0.9], 2, 2);
        got.sort();
        assert_eq!(got, [1, 2]);
        // opened for another row count or width: refused by name
        let e = InvertedFile::open(&path, 4, 2).err().unwrap().to_string();
        assert!(e.contains("x.ivf") && e.contains("[4, 2]"), "{e}");
    }

    #[test]
    fn a_file_whose_rows_are_not_each_row_once_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.ivf");
        small(vec![2, 2, 1]).write(&path).unwrap();
        let e = InvertedFile::open(&path, 3, 2).err().unwrap().to_string();
        assert!(e.contains("row 2 is not one of 1..=3 once"), "{e}");
        small(vec![2, 9, 1]).write(&path).unwrap();
        assert!(InvertedFile::open(&path, 3, 2).is_err());
    }

    #[test]
    fn auto_lists_is_the_power_of_two_nearest_four_root_n() {
        // 4 sqrt(10^6) = 4000 -> 4096; 4 sqrt(10^7) = 12,649 (log2 13.6) -> 16,384;
        // 4 sqrt(3000) = 219 -> 256; 4 sqrt(1) = 4, at most n = 1
        assert_eq!(auto_lists(1_000_000), 4096);
        assert_eq!(auto_lists(10_000_000), 16_384);
        assert_eq!(auto_lists(3000), 256);
        assert_eq!(auto_lists(1), 1);
    }
}
