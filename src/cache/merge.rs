//! `iisan cache merge DIR`: join the shard files `iisan encode --shard I/N` wrote
//! ([`super::shard`]) into the whole cache a single run writes. Every shard's header must equal
//! the others' but for its slice (same model, tower record, preprocessing, dtype, dataset
//! fingerprint, image hash), all N shards must be there, and their slices must tile items 1..=N
//! in order; the rows are then copied as stored, behind the padding row, into `<modality>.hsc`
//! (written beside as `.partial` and renamed; resumable like an encode).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::shard::{ShardSpec, cache_file, find_shards};
use super::writer::CacheWriter;
use super::{CacheHeader, HiddenStateCache, check_replaceable};
use crate::error::{Error, Result};

/// The outcome of merging one modality's shards.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeReport {
    /// `text` or `image`.
    pub modality: String,
    /// The cache written (or found up to date).
    pub path: PathBuf,
    /// Shards joined.
    pub shards: usize,
    /// Items in the cache.
    pub items: usize,
    /// Whether the cache was already there with this header (nothing written).
    pub up_to_date: bool,
    /// Seconds spent.
    pub seconds: f64,
}

/// Merge the shards of every modality found in `dir` (at least one must have shards).
pub fn merge_dir(dir: &Path) -> Result<Vec<MergeReport>> {
    let mut out = Vec::new();
    for modality in ["text", "image"] {
        let shards = find_shards(dir, modality)?;
        if !shards.is_empty() {
            out.push(merge_modality(dir, modality, &shards)?);
        }
    }
    if out.is_empty() {
        return Err(Error::file(
            dir,
            "holds no shard files (text.shard-<I>-of-<N>.hsc, image.shard-<I>-of-<N>.hsc)",
        ));
    }
    Ok(out)
}

/// That `files` are the N shards of one count, all present: the missing one is named.
fn check_complete(dir: &Path, modality: &str, files: &[(ShardSpec, PathBuf)]) -> Result<()> {
    let count = files[0].0.count;
    if let Some((s, p)) = files.iter().find(|(s, _)| s.count != count) {
        return Err(Error::file(
            p,
            format!(
                "shards of {} and of {count} in one directory: remove the older set",
                s.count
            ),
        ));
    }
    match (0..count).find(|j| files.iter().all(|(s, _)| s.index != *j)) {
        Some(index) => {
            let spec = ShardSpec { index, count };
            Err(Error::file(
                &cache_file(dir, modality, Some(spec)),
                format!("missing: run `iisan encode --shard {index}/{count}` first"),
            ))
        }
        None => Ok(()),
    }
}

/// The whole cache's header the shards of `files` make, after checking that they are the N
/// shards of one encode and tile the items; the opened shards in order.
fn check_shards(
    dir: &Path,
    modality: &str,
    files: &[(ShardSpec, PathBuf)],
) -> Result<(CacheHeader, Vec<HiddenStateCache>)> {
    check_complete(dir, modality, files)?;
    let opened = files
        .iter()
        .map(|(_, p)| HiddenStateCache::open_file(p))
        .collect::<Result<Vec<_>>>()?;
    let whole = |c: &HiddenStateCache| CacheHeader {
        shard: None,
        ..c.header().clone()
    };
    let want = whole(&opened[0]);
    let mut next = 1;
    for ((spec, path), c) in files.iter().zip(&opened) {
        let s = c
            .header()
            .shard
            .ok_or_else(|| Error::file(path, "has no shard record in its header"))?;
        if (s.index, s.count) != (spec.index, spec.count) {
            return Err(Error::file(
                path,
                format!(
                    "its header says shard {}/{}, its name another",
                    s.index, s.count
                ),
            ));
        }
        if whole(c) != want {
            return Err(Error::file(
                path,
                format!(
                    "was encoded differently from {} (model, tower, preprocessing, dtype or dataset): re-encode it",
                    files[0].1.display()
                ),
            ));
        }
        if s.first != next {
            return Err(Error::file(
                path,
                format!(
                    "holds items from {} but the shards before it end at {}: encode every shard with the same --batch",
                    s.first,
                    next - 1
                ),
            ));
        }
        next = s.end();
    }
    if next != want.items + 1 {
        return Err(Error::file(
            &files[files.len() - 1].1,
            format!(
                "the shards hold items 1..{} of {}: encode every shard with the same --batch",
                next - 1,
                want.items
            ),
        ));
    }
    Ok((want, opened))
}

fn merge_modality(
    dir: &Path,
    modality: &str,
    files: &[(ShardSpec, PathBuf)],
) -> Result<MergeReport> {
    let t0 = Instant::now();
    let (header, shards) = check_shards(dir, modality, files)?;
    let path = cache_file(dir, modality, None);
    let report = |up_to_date| MergeReport {
        modality: modality.into(),
        path: path.clone(),
        shards: files.len(),
        items: header.items,
        up_to_date,
        seconds: t0.elapsed().as_secs_f64(),
    };
    check_replaceable(&path)?;
    if let Ok(c) = HiddenStateCache::open_file(&path)
        && *c.header() == header
    {
        return Ok(report(true));
    }
    let mut w = CacheWriter::create_or_resume(&path, header.clone())?;
    let row = header.row_bytes();
    for s in &shards {
        let sh = s.header().shard.expect("checked");
        // a resumed merge skips the rows already copied
        let skip = w.next_item().clamp(sh.first, sh.end()) - sh.first;
        w.append_bytes(&s.row_bytes()[skip * row..])?;
    }
    w.finish()?;
    Ok(report(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheDtype, Shard};

    /// A header of 4 items, 1 state of width 1, for shard `index/count` holding `first..+len`.
    fn header(index: usize, count: usize, first: usize, len: usize) -> CacheHeader {
        CacheHeader {
            model: "m".into(),
            modality: "text".into(),
            states: 1,
            width: 1,
            dtype: CacheDtype::F32,
            items: 4,
            items_fingerprint: "fp".into(),
            preprocessing: "p".into(),
            tower: None,
            images_sha256: None,
            shard: Some(Shard {
                index,
                count,
                first,
                len,
            }),
        }
    }

    /// Write shard files for `(index, count, first, len)`; item i's state is the value i.
    fn shards(dir: &Path, spec: &[(usize, usize, usize, usize)]) {
        for &(i, n, first, len) in spec {
            let p = cache_file(dir, "text", Some(ShardSpec { index: i, count: n }));
            let mut w = CacheWriter::create_or_resume(&p, header(i, n, first, len)).unwrap();
            let v: Vec<f32> = (first..first + len).map(|x| x as f32).collect();
            w.append(&v).unwrap();
            w.finish().unwrap();
        }
    }

    fn merge_error(spec: &[(usize, usize, usize, usize)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        shards(dir.path(), spec);
        merge_dir(dir.path()).expect_err("refused").to_string()
    }

    /// Items 1-2 and 3-4 join to [0, 1, 2, 3, 4] behind the padding row; a second merge is a
    /// no-op.
    #[test]
    fn two_shards_join_behind_the_padding_row() {
        let dir = tempfile::tempdir().unwrap();
        shards(dir.path(), &[(0, 2, 1, 2), (1, 2, 3, 2)]);
        let r = merge_dir(dir.path()).unwrap();
        assert_eq!((r.len(), r[0].shards, r[0].up_to_date), (1, 2, false));
        let c = HiddenStateCache::open_for(&dir.path().join("text.hsc"), 4, "fp").unwrap();
        let v = c.gather_tap_major(&[0, 1, 2, 3, 4], &[0]).unwrap();
        assert_eq!(v, [0.0, 1.0, 2.0, 3.0, 4.0]);
        assert!(merge_dir(dir.path()).unwrap()[0].up_to_date);
    }

    #[test]
    fn gaps_missing_shards_and_mixed_counts_are_refused() {
        // items 1-2 then 4: item 3 is in no shard
        let e = merge_error(&[(0, 2, 1, 2), (1, 2, 4, 1)]);
        assert!(
            e.contains("holds items from 4 but the shards before it end at 2"),
            "{e}"
        );
        // items 1-2 only
        let e = merge_error(&[(0, 2, 1, 2), (1, 2, 3, 0)]);
        assert!(e.contains("the shards hold items 1..2 of 4"), "{e}");
        let e = merge_error(&[(0, 3, 1, 2), (2, 3, 4, 1)]);
        assert!(
            e.contains("text.shard-1-of-3.hsc: missing") && e.contains("--shard 1/3"),
            "{e}"
        );
        let e = merge_error(&[(0, 2, 1, 2), (1, 3, 3, 2)]);
        assert!(e.contains("shards of 3 and of 2 in one directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = merge_dir(dir.path()).err().unwrap().to_string();
        assert!(e.contains("holds no shard files"), "{e}");
    }
}
