//! The per-layer hidden-state cache: the frozen towers run once per item, and training reads
//! their [CLS] states from here instead of running a backbone (docs/MODEL.md section 1).
//!
//! One file per modality:
//! ```text
//! b"IISANHS1" | u64 LE header length | JSON header | zero padding to 64 bytes |
//! data: [items + 1, states, width] row-major, f32 or f16 little-endian, row 0 = padding (zeros)
//! ```
//! The header names the model, modality, state count, width, dtype, item count and the
//! dataset's item fingerprint. [`CacheWriter`] appends rows in item order to `<file>.partial`
//! (an interrupted run resumes after the last whole row) and renames the file into place when
//! complete. [`HiddenStateCache`] memory-maps a finished file, checks it against the dataset
//! and its exact length (a truncated file is an error), and gathers batches without per-item
//! allocation.
mod header;
pub mod merge;
pub mod shard;
mod writer;

pub use header::{CacheDtype, CacheHeader};
pub use shard::{Shard, ShardSpec};
pub use writer::CacheWriter;

use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use half::f16;
use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::data::Dataset;
use crate::error::{Error, Result};

/// A finished, memory-mapped cache file.
pub struct HiddenStateCache {
    map: Mmap,
    header: CacheHeader,
    offset: usize,
    path: PathBuf,
}

/// The folder of `path` (`<dir>/<modality>.hsc`) when it holds shards of that cache
/// (`<modality>.shard-*.hsc`).
fn shards_beside(path: &Path) -> Option<PathBuf> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let modality = path.file_stem()?.to_string_lossy();
    let shards = shard::find_shards(dir, &modality).ok()?;
    (!shards.is_empty()).then(|| dir.to_path_buf())
}

impl HiddenStateCache {
    /// Open the whole cache `path`; its length must be exactly header + `(items + 1) * row`
    /// bytes. A shard file is refused (it holds a slice: `iisan cache merge` joins them).
    pub fn open(path: &Path) -> Result<HiddenStateCache> {
        let c = Self::open_file(path)?;
        if let Some(s) = c.header.shard {
            return Err(Error::file(
                path,
                format!(
                    "is shard {}/{} (items {}..{}), not a whole cache: join the shards with `iisan cache merge {}`",
                    s.index,
                    s.count,
                    s.first,
                    s.end(),
                    path.parent().unwrap_or(Path::new(".")).display()
                ),
            ));
        }
        Ok(c)
    }

    /// Open a whole cache or a shard file; its length must be exactly header + rows bytes.
    pub fn open_file(path: &Path) -> Result<HiddenStateCache> {
        let f = File::open(path).map_err(|e| match shards_beside(path) {
            Some(dir) if e.kind() == std::io::ErrorKind::NotFound => Error::file(
                path,
                format!(
                    "is missing, but shards of it are there: join them with `iisan cache merge {}`",
                    dir.display()
                ),
            ),
            _ => Error::io(path, e),
        })?;
        // SAFETY: read-only mapping of a finished cache file, which is never modified in place
        // (writers go through `.partial` and rename).
        let map = unsafe { Mmap::map(&f) }.map_err(|e| Error::io(path, e))?;
        let (header, offset) = CacheHeader::decode(path, &map)?;
        let want = header
            .data_bytes()
            .ok()
            .and_then(|d| d.checked_add(offset))
            .unwrap_or(usize::MAX);
        if map.len() != want {
            return Err(Error::file(
                path,
                format!(
                    "truncated or oversized cache: {} bytes, expected {want} for {} items",
                    map.len(),
                    header.items
                ),
            ));
        }
        Ok(HiddenStateCache {
            map,
            header,
            offset,
            path: path.to_path_buf(),
        })
    }

    /// Open and check that the cache belongs to a dataset with `items` items and fingerprint
    /// `fingerprint`.
    pub fn open_for(path: &Path, items: usize, fingerprint: &str) -> Result<HiddenStateCache> {
        let c = Self::open(path)?;
        if c.header.items != items || c.header.items_fingerprint != fingerprint {
            return Err(Error::file(
                path,
                format!(
                    "cache was built for another dataset ({} items, fingerprint {}; this one has {items}, {fingerprint}): re-run iisan encode",
                    c.header.items, c.header.items_fingerprint
                ),
            ));
        }
        Ok(c)
    }

    /// The header.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's rows as stored (element type and byte order of the header).
    pub(crate) fn row_bytes(&self) -> &[u8] {
        &self.map[self.offset..]
    }

    /// States `taps` of items `ids`: a `[ids.len(), taps.len(), width]` f32 tensor.
    pub fn gather(&self, ids: &[u32], taps: &[usize], device: &Device) -> Result<Tensor> {
        self.check_taps(taps)?;
        let w = self.header.width;
        let mut out = Vec::with_capacity(ids.len() * taps.len() * w);
        for &id in ids {
            for &t in taps {
                self.read_state(id, t, &mut out)?;
            }
        }
        Ok(Tensor::from_vec(out, (ids.len(), taps.len(), w), device)?)
    }

    /// States `taps` of items `ids` tap-major: `[taps.len(), ids.len(), width]` f32, each tap's
    /// rows contiguous (the layout of the side network's CPU kernels).
    pub fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
        self.check_taps(taps)?;
        let mut out = Vec::with_capacity(ids.len() * taps.len() * self.header.width);
        for &t in taps {
            for &id in ids {
                self.read_state(id, t, &mut out)?;
            }
        }
        Ok(out)
    }

    fn check_taps(&self, taps: &[usize]) -> Result<()> {
        match taps.iter().find(|&&t| t >= self.header.states) {
            Some(t) => Err(Error::Config(format!(
                "tap {t} outside the cache's {} states ({})",
                self.header.states,
                self.path.display()
            ))),
            None => Ok(()),
        }
    }

    /// Append state `t` of item `id` (as f32) to `out`.
    fn read_state(&self, id: u32, t: usize, out: &mut Vec<f32>) -> Result<()> {
        let h = &self.header;
        if id as usize > h.items {
            return Err(Error::Internal(format!(
                "item {id} outside the cache's {} items",
                h.items
            )));
        }
        let (w, es) = (h.width, h.dtype.size());
        let start = self.offset + id as usize * h.row_bytes() + t * w * es;
        let bytes = &self.map[start..start + w * es];
        match h.dtype {
            // into a zeroed slice rather than `extend` over a mapped iterator: this form compiles
            // to plain vector copies (a Scientific validation pass reads 218 MB of states)
            CacheDtype::F32 => {
                let at = out.len();
                out.resize(at + w, 0.0);
                for (o, b) in out[at..].iter_mut().zip(bytes.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            CacheDtype::F16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
        }
        Ok(())
    }
}

/// Refuse to replace `path` unless it is absent or an iisan cache file (magic `IISANHS1`, even
/// a truncated or stale one): a cache command writes over its own kind of file only.
pub fn check_replaceable(path: &Path) -> Result<()> {
    use std::io::Read;
    let mut magic = [0u8; 8];
    let ours = match File::open(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
        Ok(mut f) => f.read_exact(&mut magic).is_ok() && &magic == header::MAGIC,
    };
    if ours {
        Ok(())
    } else {
        Err(Error::file(
            path,
            "exists and is not an iisan cache: not replaced (move it or choose another --out)",
        ))
    }
}

/// Fingerprint of a dataset's items (keys and titles in id order): what a cache depends on.
pub fn items_fingerprint(data: &Dataset) -> String {
    let mut h = Sha256::new();
    for (k, t) in data.item_keys.iter().zip(&data.titles) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(t.as_bytes());
        h.update([1]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::writer::partial_path;
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

    /// A folder holding only shards of a cache points to `iisan cache merge`.
    #[test]
    fn a_folder_of_shards_only_points_to_merge() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("text.shard-1-of-2.hsc"), b"").unwrap();
        let e = HiddenStateCache::open(&dir.path().join("text.hsc"))
            .err()
            .unwrap();
        assert!(
            e.to_string().contains("join them with `iisan cache merge"),
            "{e}"
        );
    }

    fn header(dtype: CacheDtype) -> CacheHeader {
        CacheHeader {
            model: "m".into(),
            modality: "text".into(),
            states: 3,
            width: 2,
            dtype,
            items: 4,
            items_fingerprint: "fp".into(),
            preprocessing: "t30".into(),
            tower: None,
            images_sha256: None,
            shard: None,
        }
    }

    fn rows(ids: std::ops::Range<usize>) -> Vec<f32> {
        // item i, state s, unit u -> i * 10 + s + u / 4 (exact in f16 too)
        ids.flat_map(|i| {
            (0..3).flat_map(move |s| (0..2).map(move |u| (i * 10 + s) as f32 + u as f32 / 4.0))
        })
        .collect()
    }

    #[test]
    fn write_resume_read_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        for dtype in [CacheDtype::F32, CacheDtype::F16] {
            let path = dir.path().join(format!("c-{dtype:?}.hsc"));
            let mut w = CacheWriter::create_or_resume(&path, header(dtype)).unwrap();
            w.append(&rows(1..3)).unwrap();
            drop(w); // interrupted after items 1-2
            // a torn half row at the end is discarded on resume
            let part = partial_path(&path);
            let mut f = OpenOptions::new().append(true).open(&part).unwrap();
            f.write_all(&[1, 2, 3]).unwrap();
            let mut w = CacheWriter::create_or_resume(&path, header(dtype)).unwrap();
            assert_eq!(w.next_item(), 3);
            w.append(&rows(3..5)).unwrap();
            w.finish().unwrap();
            assert!(!part.exists());
            let c = HiddenStateCache::open_for(&path, 4, "fp").unwrap();
            let g = c
                .gather(&[4, 0, 2], &[2, 0], &Device::Cpu)
                .unwrap()
                .to_vec3::<f32>()
                .unwrap();
            assert_eq!(g[0], vec![vec![42.0, 42.25], vec![40.0, 40.25]]);
            assert_eq!(g[1], vec![vec![0.0, 0.0], vec![0.0, 0.0]]);
            assert_eq!(g[2], vec![vec![22.0, 22.25], vec![20.0, 20.25]]);
            assert!(c.gather(&[1], &[3], &Device::Cpu).is_err());
            // tap-major: tap 2 of items 4, 2, then tap 0 of items 4, 2
            let t = c.gather_tap_major(&[4, 2], &[2, 0]).unwrap();
            assert_eq!(t, [42.0, 42.25, 22.0, 22.25, 40.0, 40.25, 20.0, 20.25]);
            let e = HiddenStateCache::open_for(&path, 5, "fp")
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("another dataset"), "{e}");
            // truncate by one byte
            let len = std::fs::metadata(&path).unwrap().len();
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len - 1)
                .unwrap();
            let e = HiddenStateCache::open(&path).err().unwrap().to_string();
            assert!(
                e.contains("truncated") && e.contains(&path.display().to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn headers_with_zero_or_overflowing_sizes_are_refused_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let bad = [
            (
                CacheHeader {
                    width: 0,
                    ..header(CacheDtype::F32)
                },
                "width is 0",
            ),
            (
                CacheHeader {
                    states: 0,
                    ..header(CacheDtype::F32)
                },
                "states is 0",
            ),
            (
                CacheHeader {
                    items: usize::MAX,
                    ..header(CacheDtype::F32)
                },
                "does not fit in memory",
            ),
            (
                CacheHeader {
                    modality: "audio".into(),
                    ..header(CacheDtype::F32)
                },
                "is not text or image",
            ),
        ];
        for (i, (h, msg)) in bad.into_iter().enumerate() {
            // a file holding just the header (what a hand-edited or corrupt cache looks like)
            let path = dir.path().join(format!("bad{i}.hsc"));
            std::fs::write(&path, h.encode()).unwrap();
            let e = HiddenStateCache::open(&path)
                .err()
                .expect("refused")
                .to_string();
            assert!(e.contains("invalid cache header") && e.contains(msg), "{e}");
        }
    }

    #[test]
    fn a_second_writer_of_the_same_cache_is_refused_while_the_first_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hsc");
        let first = CacheWriter::create_or_resume(&path, header(CacheDtype::F32)).unwrap();
        let e = CacheWriter::create_or_resume(&path, header(CacheDtype::F32))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            e.contains("another `iisan encode` is writing this cache now"),
            "{e}"
        );
        drop(first);
        assert!(CacheWriter::create_or_resume(&path, header(CacheDtype::F32)).is_ok());
    }

    #[test]
    fn a_different_header_restarts_the_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.hsc");
        let mut w = CacheWriter::create_or_resume(&path, header(CacheDtype::F32)).unwrap();
        w.append(&rows(1..3)).unwrap();
        drop(w);
        let other = CacheHeader {
            items_fingerprint: "other".into(),
            ..header(CacheDtype::F32)
        };
        let w = CacheWriter::create_or_resume(&path, other).unwrap();
        assert_eq!(w.next_item(), 1);
    }

    /// A shard of items 3..=4 of 4 holds just those rows (no padding row), resumes at its own
    /// item ids, and is refused where a whole cache is read.
    #[test]
    fn a_shard_file_holds_its_slice_and_is_not_a_whole_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.shard-1-of-2.hsc");
        let h = CacheHeader {
            shard: Some(Shard {
                index: 1,
                count: 2,
                first: 3,
                len: 2,
            }),
            ..header(CacheDtype::F32)
        };
        // items 3..=4 here; a whole cache of 4 items holds 1..=4 behind its padding row
        assert_eq!(
            (h.item_range(), header(CacheDtype::F32).item_range()),
            (3..5, 1..5)
        );
        let mut w = CacheWriter::create_or_resume(&path, h.clone()).unwrap();
        assert_eq!(w.next_item(), 3);
        w.append(&rows(3..4)).unwrap();
        drop(w);
        let mut w = CacheWriter::create_or_resume(&path, h).unwrap();
        assert_eq!(w.next_item(), 4);
        w.append(&rows(4..5)).unwrap();
        w.finish().unwrap();
        let c = HiddenStateCache::open_file(&path).unwrap();
        // 2 rows x 3 states x 2 wide x 4 bytes; the first value is item 3 state 0 = 30
        assert_eq!(c.row_bytes().len(), 48);
        assert_eq!(c.row_bytes()[..4], 30f32.to_le_bytes());
        let e = HiddenStateCache::open(&path).err().unwrap().to_string();
        assert!(
            e.contains("is shard 1/2") && e.contains("iisan cache merge"),
            "{e}"
        );
    }

    #[test]
    fn only_absent_files_and_caches_are_replaceable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("text.hsc");
        assert!(check_replaceable(&p).is_ok());
        std::fs::write(&p, b"IISANHS1 and then a torn header").unwrap();
        assert!(check_replaceable(&p).is_ok());
        std::fs::write(&p, b"notes").unwrap();
        let e = check_replaceable(&p).err().unwrap().to_string();
        assert!(e.contains("is not an iisan cache: not replaced"), "{e}");
    }

    #[test]
    fn not_a_cache() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"hello world, not a cache").unwrap();
        assert!(
            HiddenStateCache::open(&p)
                .err()
                .unwrap()
                .to_string()
                .contains("bad magic")
        );
    }
}
