//! Datasets: the item catalog, the users' sequences and the leave-one-out split.
//!
//! A dataset directory holds `items.tsv` and `users.tsv` (IISAN's format, see [`tsv`]) and,
//! for multimodal data, `images/<item id>.{png,jpg,jpeg,webp}`. [`Dataset::load`] applies the
//! paper's preprocessing ([`split`]); [`synth`] writes the embedded synthetic default.

pub mod batch;
pub mod cold;
pub mod draw;
pub mod ids;
pub mod image;
#[cfg(feature = "import")]
pub mod import;
pub mod output;
pub mod split;
pub mod subset;
pub mod synth;
pub mod text;
pub mod tsv;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use split::{DataOptions, MissingTitle};

use crate::error::Result;

/// Which held-out interaction an evaluation targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Target `seq[-2]`, input `seq[..-2]`.
    Valid,
    /// Target `seq[-1]`, input `seq[..-1]`.
    Test,
}

/// A preprocessed dataset. Item id 0 is padding; real items are `1..=num_items()`.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Short name (the directory name, or what the caller chose).
    pub name: String,
    /// External item ids by internal id; `item_keys[0]` is `"<pad>"`.
    pub item_keys: Vec<String>,
    /// Titles by internal id; `titles[0]` is empty.
    pub titles: Vec<String>,
    /// External user ids, one per kept user.
    pub user_keys: Vec<String>,
    /// Each kept user's last `max_seq_len + 3` interactions as internal ids, oldest first.
    pub sequences: Vec<Vec<u32>>,
    /// Input positions of the user encoder.
    pub max_seq_len: usize,
    /// Popularity over the training parts, `pop[0] = 1` (docs/MODEL.md section 5).
    pub pop: Vec<f64>,
    /// Hash of the preprocessed catalog and sequences (see [`split`]).
    pub fingerprint: String,
    /// The dataset directory, when loaded from one (images live under it).
    pub root: Option<PathBuf>,
}

/// Summary statistics printed by `iisan data stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Users kept.
    pub users: usize,
    /// Items kept (excluding padding).
    pub items: usize,
    /// Interactions kept.
    pub interactions: usize,
    /// Mean kept sequence length.
    pub avg_len: f64,
    /// Users whose test target already occurs in their input history.
    pub repeated_test_targets: usize,
    /// Users whose validation target already occurs in their training history.
    pub repeated_valid_targets: usize,
}

impl Dataset {
    /// Load `items` and `users` TSV files and preprocess them.
    pub fn from_files(items: &Path, users: &Path, opts: &DataOptions) -> Result<Dataset> {
        let raw_items = tsv::read_items(items)?;
        let raw_users = tsv::read_users(users)?;
        let name = users
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into());
        split::preprocess(&name, &raw_items, &raw_users, users, opts)
    }

    /// Load a dataset directory (`items.tsv`, `users.tsv`, optional `images/`).
    pub fn load(dir: &Path, opts: &DataOptions) -> Result<Dataset> {
        let mut d = Self::from_files(&dir.join("items.tsv"), &dir.join("users.tsv"), opts)?;
        d.root = Some(dir.to_path_buf());
        Ok(d)
    }

    /// Number of real items N.
    pub fn num_items(&self) -> usize {
        self.item_keys.len() - 1
    }

    /// Number of users.
    pub fn num_users(&self) -> usize {
        self.sequences.len()
    }

    /// Number of kept interactions.
    pub fn num_interactions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    /// The training part of user `u`: `seq[..len-2]`.
    pub fn train_part(&self, u: usize) -> &[u32] {
        let s = &self.sequences[u];
        &s[..s.len() - 2]
    }

    /// The history before the target of `split` (every item the user saw before it).
    pub fn history(&self, u: usize, split: Split) -> &[u32] {
        let s = &self.sequences[u];
        match split {
            Split::Valid => &s[..s.len() - 2],
            Split::Test => &s[..s.len() - 1],
        }
    }

    /// The target item of `split`.
    pub fn target(&self, u: usize, split: Split) -> u32 {
        let s = &self.sequences[u];
        match split {
            Split::Valid => s[s.len() - 2],
            Split::Test => s[s.len() - 1],
        }
    }

    /// Statistics of the preprocessed data.
    pub fn stats(&self) -> Stats {
        let repeated = |split| {
            (0..self.num_users())
                .filter(|&u| self.history(u, split).contains(&self.target(u, split)))
                .count()
        };
        Stats {
            users: self.num_users(),
            items: self.num_items(),
            interactions: self.num_interactions(),
            avg_len: self.num_interactions() as f64 / self.num_users() as f64,
            repeated_test_targets: repeated(Split::Test),
            repeated_valid_targets: repeated(Split::Valid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let items = tsv::parse_items(Path::new("i"), "A\ta\nB\tb\nC\tc\n").unwrap();
        let users = tsv::parse_users(Path::new("u"), "u1\tA B C A\nu2\tC B A C B\n").unwrap();
        let opts = DataOptions {
            min_seq_len: 3,
            ..Default::default()
        };
        split::preprocess("t", &items, &users, Path::new("u"), &opts).unwrap()
    }

    #[test]
    fn leave_one_out_parts() {
        let d = tiny();
        // u1 = [1,2,3,1]: train [1,2], valid target 3, test target 1 (repeats).
        assert_eq!(d.train_part(0), [1, 2]);
        assert_eq!(d.target(0, Split::Valid), 3);
        assert_eq!(d.history(0, Split::Test), [1, 2, 3]);
        assert_eq!(d.target(0, Split::Test), 1);
        // u2 = [3,2,1,3,2]: valid target 3 repeats (in [3,2,1]); test target 2 repeats.
        let s = d.stats();
        assert_eq!((s.users, s.items, s.interactions), (2, 3, 9));
        assert_eq!(s.repeated_test_targets, 2);
        assert_eq!(s.repeated_valid_targets, 1);
        assert!((s.avg_len - 4.5).abs() < 1e-12);
    }
}
