//! A fixed random subset of a dataset's users (for methods too slow to train on the whole set
//! on a small machine): the sampled users' raw lines verbatim, the items they mention, and the
//! same images. Preprocessing then runs on the subset as on any dataset.

use std::collections::HashSet;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::error::{Error, Result};

/// What [`write_subset`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetReport {
    /// User lines kept.
    pub users: usize,
    /// Item lines kept.
    pub items: usize,
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tsv.partial");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Write `users` users of dataset directory `src`, drawn with `seed`, into `out` (users.tsv,
/// items.tsv, and `images` linked to the source's when it has one).
pub fn write_subset(src: &Path, out: &Path, users: usize, seed: u64) -> Result<SubsetReport> {
    let users_text = read(&src.join("users.tsv"))?;
    let items_text = read(&src.join("items.tsv"))?;
    let mut lines: Vec<&str> = users_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if users == 0 || users > lines.len() {
        return Err(Error::Config(format!(
            "--users {users}: {} has {} users",
            src.join("users.tsv").display(),
            lines.len()
        )));
    }
    lines.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut kept: Vec<&str> = lines[..users].to_vec();
    kept.sort_unstable();
    let wanted: HashSet<&str> = kept
        .iter()
        .filter_map(|l| l.split_once('\t'))
        .flat_map(|(_, seq)| seq.split_whitespace())
        .collect();
    let items: Vec<&str> = items_text
        .lines()
        .filter(|l| l.split('\t').next().is_some_and(|k| wanted.contains(k)))
        .collect();
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_atomic(&out.join("users.tsv"), &(kept.join("\n") + "\n"))?;
    write_atomic(&out.join("items.tsv"), &(items.join("\n") + "\n"))?;
    let images = src.join("images");
    let link = out.join("images");
    if images.is_dir() && !link.exists() {
        let target = std::fs::canonicalize(&images).map_err(|e| Error::io(&images, e))?;
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link).map_err(|e| Error::io(&link, e))?;
    }
    Ok(SubsetReport {
        users: kept.len(),
        items: items.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_sampled_users_and_only_their_items() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("users.tsv"), "u1\ta b\nu2\tb c\nu3\td\n").unwrap();
        std::fs::write(src.join("items.tsv"), "a\tA\nb\tB\nc\tC\nd\tD\ne\tE\n").unwrap();
        let out = dir.path().join("out");
        let r = write_subset(&src, &out, 2, 7).unwrap();
        assert_eq!(r.users, 2);
        let users = std::fs::read_to_string(out.join("users.tsv")).unwrap();
        let items = std::fs::read_to_string(out.join("items.tsv")).unwrap();
        let mut want: Vec<&str> = users
            .lines()
            .flat_map(|l| l.split('\t').nth(1).unwrap().split(' '))
            .collect();
        want.sort_unstable();
        want.dedup();
        let got: Vec<&str> = items
            .lines()
            .map(|l| l.split('\t').next().unwrap())
            .collect();
        assert_eq!(got, want, "items of the kept users, in file order");
        assert!(!items.contains("e\tE"), "an item nobody kept is dropped");
        // the same seed draws the same users
        let out2 = dir.path().join("out2");
        write_subset(&src, &out2, 2, 7).unwrap();
        assert_eq!(
            std::fs::read_to_string(out2.join("users.tsv")).unwrap(),
            users
        );
        assert!(write_subset(&src, &dir.path().join("x"), 9, 7).is_err());
    }
}
