//! The cold-start protocol (docs/COLD-START.md): a seeded random fraction of the items that
//! users interact with becomes *cold*: removed from every position of every user's sequence
//! except the last two, so after the leave-one-out split (training = all but the last two) no
//! cold item is ever a training input or a training target, while validation and test targets
//! keep them. Evaluation then reports warm and cold targets apart (`iisan eval --cold-items`):
//! a content-based item tower (IISAN) embeds a cold item from its title and image; an ID model
//! has only the untrained initial row.
//!
//! The output is an ordinary dataset directory: `items.tsv` copied unchanged, the filtered
//! `users.tsv`, `cold_items.txt` (one id per line), `split-cold.json` (source, fraction,
//! seed, counts) and `images` linked to the source's when it has one. It is written beside
//! the target and renamed; an existing target is refused.

use std::collections::HashSet;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use super::output::{Existing, check_out, link_images, replace_with, scratch_beside};
use super::tsv::{RawUser, read_text, read_users};
use crate::error::{Error, Result};

/// What [`split_cold`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColdReport {
    /// The source dataset directory.
    pub source: String,
    /// Fraction of the interacted items made cold.
    pub frac: f64,
    /// The seed of the draw.
    pub seed: u64,
    /// Distinct items in the users file.
    pub items: usize,
    /// Items made cold.
    pub cold_items: usize,
    /// Interactions removed (cold items before a user's last two positions).
    pub removed: usize,
    /// User lines written.
    pub users: usize,
}

/// Write the cold-start version of dataset directory `src` into `out` (see the module doc).
pub fn split_cold(src: &Path, out: &Path, frac: f64, seed: u64) -> Result<ColdReport> {
    if !(frac > 0.0 && frac < 1.0) {
        return Err(Error::Input(format!(
            "--frac {frac}: must lie strictly between 0 and 1"
        )));
    }
    if out.exists() {
        return Err(Error::file(
            out,
            "already exists (split-cold writes a new directory)",
        ));
    }
    check_out(out, "data split-cold", &[src])?;
    let users = read_users(&src.join("users.tsv"))?;
    let items_text = read_text(&src.join("items.tsv"))?;
    let (n_items, cold) = draw_cold(&users, frac, seed);
    let mut removed = 0;
    let mut lines = String::new();
    for u in &users {
        let tail = u.items.len().saturating_sub(2);
        let kept: Vec<&str> = u
            .items
            .iter()
            .enumerate()
            .filter(|(i, k)| *i >= tail || !cold.contains(k.as_str()))
            .map(|(_, k)| k.as_str())
            .collect();
        removed += u.items.len() - kept.len();
        lines.push_str(&format!("{}\t{}\n", u.key, kept.join(" ")));
    }
    let mut cold_sorted: Vec<&str> = cold.iter().copied().collect();
    cold_sorted.sort_unstable();
    let report = ColdReport {
        source: src.display().to_string(),
        frac,
        seed,
        items: n_items,
        cold_items: cold.len(),
        removed,
        users: users.len(),
    };
    let files = [
        ("items.tsv", items_text),
        ("users.tsv", lines),
        ("cold_items.txt", cold_sorted.join("\n") + "\n"),
        (
            "split-cold.json",
            serde_json::to_string_pretty(&report).expect("serialisable"),
        ),
    ];
    write_dir(src, out, &files)?;
    Ok(report)
}

/// The number of distinct items in `users` and the cold ones: the first `round(frac x n)` of
/// them sorted and shuffled with `seed` (at least 1, at most all but one).
fn draw_cold(users: &[RawUser], frac: f64, seed: u64) -> (usize, HashSet<&str>) {
    let mut seen = HashSet::new();
    let mut keys: Vec<&str> = Vec::new();
    for u in users {
        for k in &u.items {
            if seen.insert(k.as_str()) {
                keys.push(k);
            }
        }
    }
    keys.sort_unstable();
    keys.shuffle(&mut StdRng::seed_from_u64(seed));
    let n_cold = ((keys.len() as f64 * frac).round() as usize).clamp(1, keys.len().max(2) - 1);
    (keys.len(), keys[..n_cold].iter().copied().collect())
}

/// Write `files` (name, text) and a link to `src/images` (if any) into a scratch directory
/// beside `out`, then rename it to `out`.
fn write_dir(src: &Path, out: &Path, files: &[(&str, String)]) -> Result<()> {
    let tmp = scratch_beside(out)?;
    for (f, text) in files {
        let p = tmp.join(f);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    link_images(src, &tmp)?;
    replace_with(tmp, out, Existing::Absent, "data split-cold")
}

/// The item ids of a `cold_items.txt` (one per line; blank lines skipped).
pub fn read_cold_items(path: &Path) -> Result<HashSet<String>> {
    let text = read_text(path)?;
    let set: HashSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if set.is_empty() {
        return Err(Error::file(path, "no item ids"));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cold_items_leave_every_training_position_but_keep_the_targets() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let items: String = (0..10).map(|i| format!("i{i}\tt{i}\n")).collect();
        std::fs::write(src.join("items.tsv"), &items).unwrap();
        let users = "u1\ti0 i1 i2 i3 i4 i5\nu2\ti5 i6 i7 i8 i9 i0\nu3\ti1 i3 i5 i7 i9\n";
        std::fs::write(src.join("users.tsv"), users).unwrap();
        let out = dir.path().join("cold");
        let r = split_cold(&src, &out, 0.3, 5).unwrap();
        // 10 distinct items, 30 % -> 3 cold
        assert_eq!((r.items, r.cold_items, r.users), (10, 3, 3));
        let cold = read_cold_items(&out.join("cold_items.txt")).unwrap();
        assert_eq!(cold.len(), 3);
        let text = std::fs::read_to_string(out.join("users.tsv")).unwrap();
        let mut removed = 0;
        for (orig, new) in users.lines().zip(text.lines()) {
            let o: Vec<&str> = orig.split_once('\t').unwrap().1.split(' ').collect();
            let n: Vec<&str> = new.split_once('\t').unwrap().1.split(' ').collect();
            // the last two positions are kept verbatim; no cold item before them
            assert_eq!(o[o.len() - 2..], n[n.len() - 2..]);
            assert!(n[..n.len() - 2].iter().all(|k| !cold.contains(*k)));
            // everything warm before them stays, in order
            let warm: Vec<&str> = o[..o.len() - 2]
                .iter()
                .filter(|k| !cold.contains(**k))
                .copied()
                .collect();
            assert_eq!(n[..n.len() - 2], warm[..]);
            removed += o.len() - n.len();
        }
        assert_eq!(r.removed, removed);
        assert_eq!(
            std::fs::read_to_string(out.join("items.tsv")).unwrap(),
            items
        );
        // the same seed draws the same items; an existing output is refused
        let e = split_cold(&src, &out, 0.3, 5).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let again = dir.path().join("again");
        split_cold(&src, &again, 0.3, 5).unwrap();
        assert_eq!(
            read_cold_items(&again.join("cold_items.txt")).unwrap(),
            cold
        );
        assert!(split_cold(&src, &dir.path().join("x"), 1.0, 5).is_err());
    }
}
