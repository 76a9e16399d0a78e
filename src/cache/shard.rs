//! Sharded encoding (docs/SHARDING.md): `iisan encode --shard I/N` encodes one deterministic,
//! contiguous slice of the items into its own shard file, so N machines (a Kubernetes Indexed
//! Job, a Slurm job array) can share a catalogue; [`super::merge`] joins the N files into the
//! cache a single run writes, byte for byte.
//!
//! The slices are cut on whole encode windows (`window` items: the text encoder's sorting window,
//! a multiple of the image batch), so every shard forms exactly the batches a single run forms
//! over its items and the states are the same to the bit.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which shard of how many: `I/N`, `0 <= I < N` (0-based, like `JOB_COMPLETION_INDEX` and
/// Slurm's `--array=0-(N-1)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    /// This shard, 0-based.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not I/N with 0 <= I < N (e.g. 0/3)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| bad())?,
            n.trim().parse::<usize>().map_err(|_| bad())?,
        );
        if index >= count {
            return Err(bad());
        }
        Ok(ShardSpec { index, count })
    }
}

/// The slice a shard file holds, recorded in its header: items `first .. first + len` of the
/// dataset (1-based ids; `len` may be 0 when there are more shards than windows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
    /// The first item id held.
    pub first: usize,
    /// Items held.
    pub len: usize,
}

impl Shard {
    /// Shard `spec` of `items` items cut on windows of `window` items: window `w` of the
    /// `ceil(items / window)` windows goes to shard `floor(w * N / windows)`, so shards differ
    /// by at most one window and each is contiguous.
    pub fn plan(spec: ShardSpec, items: usize, window: usize) -> Shard {
        let window = window.max(1);
        let windows = items.div_ceil(window);
        let cut = |i: usize| (i * windows).div_ceil(spec.count) * window;
        let start = cut(spec.index).min(items);
        let end = cut(spec.index + 1).min(items);
        Shard {
            index: spec.index,
            count: spec.count,
            first: start + 1,
            len: end - start,
        }
    }

    /// One past the last item id held.
    pub fn end(&self) -> usize {
        self.first + self.len
    }
}

/// The cache file of `modality` in `dir`: `<modality>.hsc`, or for a shard
/// `<modality>.shard-<I>-of-<N>.hsc`.
pub fn cache_file(dir: &Path, modality: &str, shard: Option<ShardSpec>) -> PathBuf {
    match shard {
        None => dir.join(format!("{modality}.hsc")),
        Some(s) => dir.join(format!("{modality}.shard-{}-of-{}.hsc", s.index, s.count)),
    }
}

/// The shard files of `modality` in `dir`, by name (`<modality>.shard-<I>-of-<N>.hsc`), with
/// their parsed `I/N`, sorted by `I`.
pub fn find_shards(dir: &Path, modality: &str) -> Result<Vec<(ShardSpec, PathBuf)>> {
    let prefix = format!("{modality}.shard-");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(mid) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".hsc"))
        else {
            continue;
        };
        let spec = mid
            .split_once("-of-")
            .and_then(|(i, n)| format!("{i}/{n}").parse::<ShardSpec>().ok());
        match spec {
            Some(s) => out.push((s, e.path())),
            None => {
                return Err(Error::file(
                    &e.path(),
                    "not a shard name (<modality>.shard-<I>-of-<N>.hsc)",
                ));
            }
        }
    }
    out.sort_by_key(|(s, _)| s.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        assert_eq!(
            "2/3".parse::<ShardSpec>(),
            Ok(ShardSpec { index: 2, count: 3 })
        );
        for bad in ["3/3", "0/0", "1", "a/3", "-1/3", "1/3/4"] {
            assert!(bad.parse::<ShardSpec>().is_err(), "{bad}");
        }
    }

    /// 40 items, windows of 16: 3 windows, items 1-16, 17-32, 33-40. Shard i starts at window
    /// ceil(3 i / N). N = 3: cuts 0, 1, 2 -> one window each. N = 2: cuts 0, ceil(1.5) = 2 ->
    /// items 1-32 and 33-40. N = 5: cuts 0, ceil(0.6) = 1, ceil(1.2) = 2, ceil(1.8) = 2,
    /// ceil(2.4) = 3, end 3 -> shards 2 and 4 are empty (shard 4 starts past the last item).
    #[test]
    fn plans_tile_the_items_on_whole_windows() {
        let firsts_lens = |n: usize| -> Vec<(usize, usize)> {
            (0..n)
                .map(|index| {
                    let s = Shard::plan(ShardSpec { index, count: n }, 40, 16);
                    (s.first, s.len)
                })
                .collect()
        };
        assert_eq!(firsts_lens(1), [(1, 40)]);
        assert_eq!(firsts_lens(3), [(1, 16), (17, 16), (33, 8)]);
        assert_eq!(firsts_lens(2), [(1, 32), (33, 8)]);
        assert_eq!(
            firsts_lens(5),
            [(1, 16), (17, 16), (33, 0), (33, 8), (41, 0)]
        );
    }

    #[test]
    fn names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ShardSpec { index: 1, count: 3 };
        let p = cache_file(dir.path(), "text", Some(spec));
        assert!(p.ends_with("text.shard-1-of-3.hsc"));
        assert!(cache_file(dir.path(), "image", None).ends_with("image.hsc"));
        std::fs::write(&p, b"").unwrap();
        std::fs::write(dir.path().join("image.shard-0-of-3.hsc"), b"").unwrap();
        assert_eq!(find_shards(dir.path(), "text").unwrap(), vec![(spec, p)]);
        std::fs::write(dir.path().join("text.shard-x-of-3.hsc"), b"").unwrap();
        assert!(find_shards(dir.path(), "text").is_err());
    }
}
