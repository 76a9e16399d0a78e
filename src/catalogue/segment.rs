//! The append-only segment: items added after the base matrix was written, so that adding one
//! item writes O(d) bytes instead of rewriting the whole matrix.
//!
//! ```text
//! items.seg-<B>.f32    the rows, little-endian f32, d per row, appended
//! item_ids.seg-<B>.txt their ids, one per line, appended
//! items.seg-<B>.json   the commit point: {"items": n, "id_bytes": b}
//! ```
//! `<B>` is the number of items the base holds, and the commit file also records the base's
//! fingerprint ([`BaseId`]): a segment extends exactly one base. Once `iisan index compact` has
//! folded it into a new base (of `B + n` items) the old segment's files name a base that no
//! longer exists and are never read again; a base replaced by another of the same size (a run
//! directory's files copied over by hand) does not take up the old base's items either.
//!
//! An append truncates both data files to the committed lengths (dropping what an interrupted
//! append left), appends, syncs them, and only then replaces the commit file (written beside
//! and renamed). A reader takes exactly the committed rows and bytes, so an append killed at
//! any point leaves the previous segment readable and complete, and a batch of items is added
//! whole or not at all.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::{read_bounded, write_beside};
use crate::data::ids::MAX_ID_BYTES;
use crate::error::{Error, Result};

/// The committed lengths of a segment, and the base it extends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Commit {
    items: usize,
    id_bytes: usize,
    base: String,
}

/// The base a segment extends: its item count and fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseId {
    /// Items in the base.
    pub items: usize,
    /// `super::base::Base::fingerprint`.
    pub fingerprint: String,
}

/// The items of a segment, in row order after the base.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    /// Their ids.
    pub keys: Vec<String>,
    /// Their rows, row-major `[keys.len(), d]`.
    pub rows: Vec<f32>,
}

/// The three file names of the segment over a base of `base` items.
fn names(dir: &Path, base: usize) -> [PathBuf; 3] {
    [
        dir.join(format!("items.seg-{base}.f32")),
        dir.join(format!("item_ids.seg-{base}.txt")),
        dir.join(format!("items.seg-{base}.json")),
    ]
}

/// The commit of the segment over `base` (empty when there is none, or when it extends
/// another base of the same size).
fn read_commit(path: &Path, base: &BaseId) -> Result<Commit> {
    if !path.exists() {
        return Ok(Commit::default());
    }
    let text = read_bounded(path, 4096)?;
    let c: Commit = serde_json::from_str(&text)
        .map_err(|e| Error::file(path, format!("not a segment commit: {e}")))?;
    Ok(if c.base == base.fingerprint {
        c
    } else {
        Commit::default()
    })
}

/// Read `len` bytes from the start of `path` (an error when the file is shorter).
fn read_prefix(path: &Path, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    if len > 0 {
        let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
        f.read_exact(&mut buf)
            .map_err(|e| Error::file(path, format!("shorter than its commit: {e}")))?;
    }
    Ok(buf)
}

impl Segment {
    /// The committed items of the segment of `dir` over a base of `base` items, rows of width
    /// `dim` (none when there is no segment). The ids read are bounded by the commit, which
    /// is bounded by `items * (MAX_ID_BYTES + 1)`.
    pub fn read(dir: &Path, base: &BaseId, dim: usize) -> Result<Segment> {
        let [rows_path, ids_path, commit_path] = names(dir, base.items);
        let c = read_commit(&commit_path, base)?;
        if c.id_bytes > c.items * (MAX_ID_BYTES + 1) {
            let msg = format!("{} id bytes for {} items", c.id_bytes, c.items);
            return Err(Error::file(&commit_path, msg));
        }
        let text = String::from_utf8(read_prefix(&ids_path, c.id_bytes)?)
            .map_err(|_| Error::file(&ids_path, "ids are not UTF-8"))?;
        let keys: Vec<String> = text.lines().map(str::to_string).collect();
        if keys.len() != c.items || (c.items > 0 && !text.ends_with('\n')) {
            let msg = format!("{} committed ids, {} lines", c.items, keys.len());
            return Err(Error::file(&ids_path, msg));
        }
        let rows = read_prefix(&rows_path, c.items * dim * 4)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Segment { keys, rows })
    }

    /// How many items the segment over `base` commits (its commit file only).
    pub fn committed(dir: &Path, base: &BaseId) -> Result<usize> {
        Ok(read_commit(&names(dir, base.items)[2], base)?.items)
    }

    /// Append the items `keys` with rows `rows` (`[keys.len(), d]`) to the segment of `dir`
    /// over a base of `base` items, which now commits `self` (the caller holds the item lock
    /// and has checked the ids). Returns the segment with them.
    pub fn append(
        &self,
        dir: &Path,
        base: &BaseId,
        keys: &[String],
        rows: &[f32],
    ) -> Result<Segment> {
        let [rows_path, ids_path, commit_path] = names(dir, base.items);
        let old = Commit {
            items: self.keys.len(),
            id_bytes: self.keys.iter().map(|k| k.len() + 1).sum(),
            base: base.fingerprint.clone(),
        };
        let ids: String = keys.iter().map(|k| format!("{k}\n")).collect();
        let bytes: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
        append_at(&rows_path, self.rows.len() * 4, &bytes)?;
        append_at(&ids_path, old.id_bytes, ids.as_bytes())?;
        let new = Commit {
            items: old.items + keys.len(),
            id_bytes: old.id_bytes + ids.len(),
            base: old.base.clone(),
        };
        let json = serde_json::to_string(&new).expect("serialisable");
        write_beside(&commit_path, |tmp| {
            let mut f = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
            f.write_all(json.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(tmp, e))
        })?;
        let mut seg = self.clone();
        seg.keys.extend(keys.iter().cloned());
        seg.rows.extend_from_slice(rows);
        Ok(seg)
    }

    /// Remove the files of the segment over a base of `base` items (after a compaction folded
    /// it into the base; files that are not there are skipped).
    pub fn remove(dir: &Path, base: usize) -> Result<()> {
        for p in names(dir, base).iter().rev() {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(p, e)),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Cut `path` to `len` bytes (what the commit holds), append `bytes`, sync.
fn append_at(path: &Path, len: usize, bytes: &[u8]) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.set_len(len as u64)
        .and_then(|()| f.seek(SeekFrom::Start(len as u64)).map(|_| ()))
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_commit_whole_batches_and_leftovers_are_ignored_then_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let base = BaseId {
            items: 7,
            fingerprint: "f7".into(),
        };
        let empty = Segment::read(d, &base, 2).unwrap();
        assert!(empty.keys.is_empty());
        let one = empty
            .append(d, &base, &["A".into(), "B".into()], &[1.0, 2.0, 3.0, 4.0])
            .unwrap();
        // an append killed after writing its data but before its commit: extra bytes in both
        // data files, the commit unchanged
        let [rows, ids, _] = names(d, 7);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&rows)
            .unwrap()
            .write_all(&[9; 8])
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&ids)
            .unwrap()
            .write_all(b"HALF")
            .unwrap();
        let back = Segment::read(d, &base, 2).unwrap();
        assert_eq!(back.keys, ["A", "B"]);
        assert_eq!(back.rows, [1.0, 2.0, 3.0, 4.0]);
        // the next append drops the leftovers
        one.append(d, &base, &["C".into()], &[5.0, 6.0]).unwrap();
        let back = Segment::read(d, &base, 2).unwrap();
        assert_eq!(back.keys, ["A", "B", "C"]);
        assert_eq!(back.rows, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(std::fs::read_to_string(&ids).unwrap(), "A\nB\nC\n");
        // another base's segment is another file set
        let eight = BaseId {
            items: 8,
            fingerprint: "f7".into(),
        };
        assert!(Segment::read(d, &eight, 2).unwrap().keys.is_empty());
        // another base of the same size does not take up this one's items
        let other = BaseId {
            items: 7,
            fingerprint: "g7".into(),
        };
        assert!(Segment::read(d, &other, 2).unwrap().keys.is_empty());
        assert_eq!(Segment::committed(d, &other).unwrap(), 0);
        Segment::remove(d, 7).unwrap();
        assert!(Segment::read(d, &base, 2).unwrap().keys.is_empty());
    }
}
