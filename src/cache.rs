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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use half::f16;
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::provenance::TowerRecord;

const MAGIC: &[u8; 8] = b"IISANHS1";
const ALIGN: usize = 64;

/// Element type of the stored states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDtype {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size; about 3 significant digits).
    F16,
}

impl CacheDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            CacheDtype::F32 => 4,
            CacheDtype::F16 => 2,
        }
    }
}

/// The cache header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHeader {
    /// Model identifier (folder name and config summary).
    pub model: String,
    /// `text` or `image`.
    pub modality: String,
    /// Hidden states per item (layers + 1).
    pub states: usize,
    /// State width.
    pub width: usize,
    /// Element type.
    pub dtype: CacheDtype,
    /// Real items N (rows = N + 1).
    pub items: usize,
    /// Fingerprint of the dataset's items (keys and titles in id order).
    pub items_fingerprint: String,
    /// Preprocessing that produced the states (tokens or image size), for the record.
    pub preprocessing: String,
    /// The tower folder (absolute) and the content hash of what it held
    /// ([`crate::provenance`]); absent in caches written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tower: Option<TowerRecord>,
    /// Image caches: SHA-256 over every item's image file (its bytes, or a mark that it is
    /// missing), so a changed, added or restored image makes the cache stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_sha256: Option<String>,
}

impl CacheHeader {
    fn row_bytes(&self) -> usize {
        self.states * self.width * self.dtype.size()
    }

    /// The size of the data, `(items + 1) x states x width x element size` bytes, after
    /// checking every field it depends on (positive, and the product within `usize`); the
    /// reason otherwise.
    fn data_bytes(&self) -> std::result::Result<usize, String> {
        for (name, v) in [
            ("states", self.states),
            ("width", self.width),
            ("items", self.items),
        ] {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if self.modality != "text" && self.modality != "image" {
            return Err(format!("modality {:?} is not text or image", self.modality));
        }
        let rows = self.items.checked_add(1);
        rows.and_then(|rows| {
            [self.states, self.width, self.dtype.size()]
                .into_iter()
                .try_fold(rows, |acc, v| acc.checked_mul(v))
        })
        .ok_or_else(|| {
            format!(
                "{} items x {} states x {} wide does not fit in memory",
                self.items, self.states, self.width
            )
        })
    }

    /// The header as it starts a cache file: magic, length, JSON, zero padding to 64 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("serialisable");
        let mut out = MAGIC.to_vec();
        out.extend((json.len() as u64).to_le_bytes());
        out.extend(json);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        out
    }

    /// Parse and check the header at the start of `bytes` (`path` names the file in errors);
    /// returns it and the data offset. What [`HiddenStateCache::open`] and `cache-info` check
    /// (and the cache header's fuzz target calls).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<(CacheHeader, usize)> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(Error::file(
                path,
                "not an iisan hidden-state cache (bad magic)",
            ));
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let json = 16usize
            .checked_add(n)
            .and_then(|end| bytes.get(16..end))
            .ok_or_else(|| Error::file(path, "truncated cache header"))?;
        let h: CacheHeader = serde_json::from_slice(json)
            .map_err(|e| Error::file(path, format!("invalid cache header: {e}")))?;
        h.data_bytes()
            .map_err(|why| Error::file(path, format!("invalid cache header: {why}")))?;
        Ok((h, (16 + n).div_ceil(ALIGN) * ALIGN))
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Lock `<path>.lock` (created if needed) for the writer of the cache file `path`: a second
/// concurrent encode of the same file is refused instead of truncating the first one's work.
fn lock_writer(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    f.try_lock().map_err(|_| {
        Error::file(
            path,
            "another `iisan encode` is writing this cache now; run again when it is done",
        )
    })?;
    Ok(f)
}

/// Writes a cache file row by row, resumable.
pub struct CacheWriter {
    file: File,
    /// `<file>.lock`, locked while this writer lives: one encode per cache file at a time.
    _lock: File,
    header: CacheHeader,
    path: PathBuf,
    partial: PathBuf,
    rows_done: usize,
}

impl CacheWriter {
    /// Start `path` (via `<path>.partial`). If a partial file with the same header exists, it
    /// continues after its last complete row; otherwise it starts afresh. Row 0 (padding) is
    /// written at once.
    pub fn create_or_resume(path: &Path, header: CacheHeader) -> Result<CacheWriter> {
        let lock = lock_writer(path)?;
        let partial = partial_path(path);
        let head = header.encode();
        let row = header.row_bytes();
        if partial.exists() {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&partial)
                .map_err(|e| Error::io(&partial, e))?;
            let mut start = vec![0u8; head.len()];
            let same = f.read_exact(&mut start).is_ok() && start == head;
            if same {
                let len = f.metadata().map_err(|e| Error::io(&partial, e))?.len() as usize;
                let rows = (len - head.len()) / row;
                f.set_len((head.len() + rows * row) as u64)
                    .map_err(|e| Error::io(&partial, e))?;
                f.seek(SeekFrom::End(0))
                    .map_err(|e| Error::io(&partial, e))?;
                if rows > 0 {
                    return Ok(CacheWriter {
                        file: f,
                        _lock: lock,
                        header,
                        path: path.to_path_buf(),
                        partial,
                        rows_done: rows,
                    });
                }
            }
        }
        let mut f = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        f.write_all(&head).map_err(|e| Error::io(&partial, e))?;
        f.write_all(&vec![0u8; row])
            .map_err(|e| Error::io(&partial, e))?;
        Ok(CacheWriter {
            file: f,
            _lock: lock,
            header,
            path: path.to_path_buf(),
            partial,
            rows_done: 1,
        })
    }

    /// Rows already written (including row 0): the next item id to write.
    pub fn next_item(&self) -> usize {
        self.rows_done
    }

    /// The header being written.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    /// Append the states of the next `rows` items, `[rows, states, width]` f32 row-major.
    pub fn append(&mut self, values: &[f32]) -> Result<()> {
        let per = self.header.states * self.header.width;
        if !values.len().is_multiple_of(per) {
            return Err(Error::Internal(format!(
                "cache rows of {per} values, got {}",
                values.len()
            )));
        }
        let bytes: Vec<u8> = match self.header.dtype {
            CacheDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            CacheDtype::F16 => values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        self.file
            .write_all(&bytes)
            .map_err(|e| Error::io(&self.partial, e))?;
        self.rows_done += values.len() / per;
        Ok(())
    }

    /// Check completeness, flush and rename into place.
    pub fn finish(self) -> Result<PathBuf> {
        if self.rows_done != self.header.items + 1 {
            return Err(Error::Internal(format!(
                "cache has {} of {} rows",
                self.rows_done,
                self.header.items + 1
            )));
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path)
    }
}

/// A finished, memory-mapped cache file.
pub struct HiddenStateCache {
    map: Mmap,
    header: CacheHeader,
    offset: usize,
    path: PathBuf,
}

impl HiddenStateCache {
    /// Open `path`; its length must be exactly header + `(items + 1) * row` bytes.
    pub fn open(path: &Path) -> Result<HiddenStateCache> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
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
            CacheDtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            CacheDtype::F16 => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
        }
        Ok(())
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
    use super::*;

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
