//! The paper's preprocessing (docs/MODEL.md section 6): drop short users, keep each user's last
//! `max_seq_len + 3` interactions, re-index the remaining items `1..=N` in items-file order
//! (0 = padding), leave-one-out split, popularity over the training parts.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Dataset;
use super::tsv::{RawItems, RawUser};
use crate::error::{Error, Result};

/// What to do with an interaction whose item has no title (empty, or absent from the items file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingTitle {
    /// Fail with an error naming the users-file line (the default).
    #[default]
    Error,
    /// Keep the item with an empty text.
    Empty,
}

/// Preprocessing options; the defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataOptions {
    /// Users with fewer interactions are dropped (paper: 5). At least 3 (train, valid, test).
    pub min_seq_len: usize,
    /// Number of input positions of the user encoder (paper: 10); each user keeps its last
    /// `max_seq_len + 3` interactions.
    pub max_seq_len: usize,
    /// Policy for items without a title.
    pub missing_title: MissingTitle,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            min_seq_len: 5,
            max_seq_len: 10,
            missing_title: MissingTitle::Error,
        }
    }
}

impl DataOptions {
    /// Check the options (`min_seq_len >= 3`, `max_seq_len >= 1`).
    pub fn validate(&self) -> Result<()> {
        if self.min_seq_len < 3 {
            return Err(Error::Config(format!(
                "data.options.min_seq_len = {} but leave-one-out needs at least 3 interactions",
                self.min_seq_len
            )));
        }
        if self.max_seq_len == 0 {
            return Err(Error::Config(
                "data.options.max_seq_len must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// How many trailing interactions each user keeps: `max_seq_len + 3`.
    pub fn keep(&self) -> usize {
        self.max_seq_len + 3
    }
}

/// The users kept by [`select_users`].
struct Selection<'a> {
    /// Each kept user with its last `keep` interactions.
    kept: Vec<(&'a RawUser, &'a [String])>,
    /// The item keys of those interactions.
    used: HashSet<&'a str>,
    /// Used keys absent from the items file (policy Empty), in order of first use.
    extra: Vec<&'a str>,
}

/// Step 1: drop users with fewer than `min_seq_len` interactions, truncate the others to their
/// last `keep` interactions and check the titles of the items used (see [`check_title`]).
fn select_users<'a>(
    items: &RawItems,
    users: &'a [RawUser],
    users_path: &Path,
    opts: &DataOptions,
) -> Result<Selection<'a>> {
    let keep = opts.keep();
    let mut kept: Vec<(&RawUser, &[String])> = Vec::new();
    let mut used: HashSet<&str> = HashSet::new();
    let mut extra: Vec<&str> = Vec::new();
    for u in users {
        if opts.missing_title == MissingTitle::Error {
            // an unknown id is a broken file even where preprocessing would drop it
            if let Some(k) = u
                .items
                .iter()
                .find(|k| !items.index.contains_key(k.as_str()))
            {
                return Err(Error::line(
                    users_path,
                    u.line,
                    format!(
                        "item {k:?} of user {:?} is not in the items file (data.options.missing_title = \"empty\" keeps unknown items)",
                        u.key
                    ),
                ));
            }
        }
        if u.items.len() < opts.min_seq_len {
            continue;
        }
        let tail = &u.items[u.items.len().saturating_sub(keep)..];
        for key in tail {
            check_title(items, u, key, users_path, opts)?;
            if used.insert(key.as_str()) && !items.index.contains_key(key.as_str()) {
                extra.push(key.as_str());
            }
        }
        kept.push((u, tail));
    }
    if kept.is_empty() {
        return Err(Error::file(
            users_path,
            format!("no user has at least {} interactions", opts.min_seq_len),
        ));
    }
    Ok(Selection { kept, used, extra })
}

/// Under [`MissingTitle::Error`], fail on the interaction of user `u` with the item `key` when
/// that item has no title (empty, or absent from the items file).
fn check_title(
    items: &RawItems,
    u: &RawUser,
    key: &str,
    users_path: &Path,
    opts: &DataOptions,
) -> Result<()> {
    let title_ok = match items.index.get(key) {
        Some(&pos) => !items.items[pos].title.is_empty(),
        None => false,
    };
    if !title_ok && opts.missing_title == MissingTitle::Error {
        let why = match items.index.get(key) {
            Some(&pos) => format!(
                "has an empty title (items file line {})",
                items.items[pos].line
            ),
            None => "is not in the items file".to_string(),
        };
        return Err(Error::line(
            users_path,
            u.line,
            format!(
                "item {key:?} of user {:?} {why} (set data.options.missing_title = \"empty\" to keep it with an empty text)",
                u.key
            ),
        ));
    }
    Ok(())
}

/// Step 2: re-index the used items `1..=N` in items-file order, then unknown keys in order of
/// first use (0 = padding); returns the item keys, their titles and the kept users' sequences.
fn reindex(items: &RawItems, sel: &Selection<'_>) -> (Vec<String>, Vec<String>, Vec<Vec<u32>>) {
    let mut item_keys = vec!["<pad>".to_string()];
    let mut titles = vec![String::new()];
    let mut id_of = std::collections::HashMap::with_capacity(sel.used.len());
    for it in &items.items {
        if sel.used.contains(it.key.as_str()) {
            id_of.insert(it.key.as_str(), item_keys.len() as u32);
            item_keys.push(it.key.clone());
            titles.push(it.title.clone());
        }
    }
    for &key in &sel.extra {
        id_of.insert(key, item_keys.len() as u32);
        item_keys.push(key.to_string());
        titles.push(String::new());
    }
    let sequences: Vec<Vec<u32>> = sel
        .kept
        .iter()
        .map(|(_, tail)| tail.iter().map(|k| id_of[k.as_str()]).collect())
        .collect();
    (item_keys, titles, sequences)
}

/// Step 3: item popularity over the training parts (all but the last two interactions) of
/// `sequences`, over `n_items` ids; the padding id gets 1.
fn popularity(sequences: &[Vec<u32>], n_items: usize) -> Vec<f64> {
    let mut counts = vec![0f64; n_items];
    for s in sequences {
        for &i in &s[..s.len() - 2] {
            counts[i as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let mut pop: Vec<f64> = counts.iter().map(|c| c / total.max(1.0)).collect();
    pop[0] = 1.0;
    pop
}

/// Apply the preprocessing to parsed files. `users_path` names the users file in errors.
pub fn preprocess(
    name: &str,
    items: &RawItems,
    users: &[RawUser],
    users_path: &Path,
    opts: &DataOptions,
) -> Result<Dataset> {
    opts.validate()?;
    // 1. filter and truncate; check titles of what is used.
    let sel = select_users(items, users, users_path, opts)?;
    // 2. re-index in items-file order, then unknown keys in order of first use.
    let (item_keys, titles, sequences) = reindex(items, &sel);
    let user_keys = sel.kept.iter().map(|(u, _)| u.key.clone()).collect();
    // 3. popularity over the training parts (all but the last two interactions).
    let pop = popularity(&sequences, item_keys.len());
    let fingerprint = fingerprint(&item_keys, &sequences);
    Ok(Dataset {
        name: name.to_string(),
        item_keys,
        titles,
        user_keys,
        sequences,
        max_seq_len: opts.max_seq_len,
        pop,
        fingerprint,
        root: None,
    })
}

/// SHA-256 (hex, first 16 chars) over the re-indexed catalog keys and sequences: two datasets
/// with the same fingerprint give the same training data.
fn fingerprint(keys: &[String], seqs: &[Vec<u32>]) -> String {
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update([0u8]);
    }
    for s in seqs {
        for &i in s {
            h.update(i.to_le_bytes());
        }
        h.update(u32::MAX.to_le_bytes());
    }
    let d = h.finalize();
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::tsv::{parse_items, parse_users};

    fn build(items: &str, users: &str, opts: &DataOptions) -> Result<Dataset> {
        let it = parse_items(Path::new("items.tsv"), items)?;
        let us = parse_users(Path::new("users.tsv"), users)?;
        preprocess("t", &it, &us, Path::new("users.tsv"), opts)
    }

    #[test]
    fn filters_truncates_reindexes_in_items_order() {
        // max_seq_len 2 -> keep the last 5. u1 has 6 items -> drops "A"; u2 has 2 < 3 -> dropped.
        let items = "A\ta\nB\tb\nC\tc\nD\td\nE\te\nF\tf\nZ\tz\n";
        let users = "u1\tA B C D E F\nu2\tZ A\nu3\tF E D\n";
        let opts = DataOptions {
            min_seq_len: 3,
            max_seq_len: 2,
            ..Default::default()
        };
        let d = build(items, users, &opts).unwrap();
        // used: B C D E F in items order -> ids 1..5; A and Z unused.
        assert_eq!(d.item_keys, ["<pad>", "B", "C", "D", "E", "F"]);
        assert_eq!(d.sequences, vec![vec![1, 2, 3, 4, 5], vec![5, 4, 3]]);
        assert_eq!(d.user_keys, ["u1", "u3"]);
        // training parts: [1,2,3] and [5] -> counts B1 C1 D1 F1 of total 4.
        assert_eq!(d.pop, vec![1.0, 0.25, 0.25, 0.25, 0.0, 0.25]);
    }

    #[test]
    fn missing_title_is_an_error_by_default_and_kept_on_request() {
        let items = "A\ta\nB\t\nC\tc\n";
        let users = "u1\tA C C\nu2\tA B C\n";
        let opts = DataOptions {
            min_seq_len: 3,
            ..Default::default()
        };
        let e = build(items, users, &opts).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "users.tsv:2: item \"B\" of user \"u2\" has an empty title (items file line 2)"
            ),
            "{e}"
        );
        let users2 = "u1\tA X C\n";
        let e = build(items, users2, &opts).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"X\" of user \"u1\" is not in the items file"),
            "{e}"
        );
        let keep = DataOptions {
            missing_title: MissingTitle::Empty,
            ..opts
        };
        let d = build(items, users2, &keep).unwrap();
        assert_eq!(d.item_keys, ["<pad>", "A", "C", "X"]);
        assert_eq!(d.titles[3], "");
        assert_eq!(d.sequences, vec![vec![1, 3, 2]]);
    }

    #[test]
    fn an_unknown_item_is_an_error_even_in_the_dropped_prefix_or_a_dropped_user() {
        // max_seq_len 1 keeps the last 4: "X" at the front of u1 is dropped by truncation,
        // u2 is dropped as too short; both still name their unknown item
        let opts = DataOptions {
            min_seq_len: 3,
            max_seq_len: 1,
            ..Default::default()
        };
        let items = "A\ta\nB\tb\n";
        let e = build(items, "u1\tX A B A B\n", &opts).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("users.tsv:1: item \"X\" of user \"u1\""),
            "{e}"
        );
        let e = build(items, "u1\tA B A\nu2\tY\n", &opts).unwrap_err();
        assert!(e.to_string().starts_with("users.tsv:2: item \"Y\""), "{e}");
        let keep = DataOptions {
            missing_title: MissingTitle::Empty,
            ..opts
        };
        assert!(build(items, "u1\tX A B A B\n", &keep).is_ok());
    }

    #[test]
    fn no_user_long_enough_is_a_file_error() {
        let e = build("A\ta\n", "u\tA A\n", &DataOptions::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "users.tsv: no user has at least 5 interactions"
        );
    }
}
