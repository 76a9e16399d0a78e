//! A fixed random subset of a dataset's users (for methods too slow to train on the whole set
//! on a small machine): the sampled users' raw lines verbatim, the items they mention, and the
//! same images. Preprocessing then runs on the subset as on any dataset.

use std::collections::HashSet;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::output::{check_out, link_images, replace_with, scratch_beside};
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

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// The marker a subset directory carries: where it came from.
const MARKER: &str = "subset.json";

/// Write `users` users of dataset directory `src`, drawn with `seed`, into `out` (users.tsv,
/// items.tsv, `subset.json`, and `images` linked to the source's when it has one), written
/// beside `out` and renamed. `out` may be new, empty, or an earlier subset (replaced); never the
/// source, inside it, or another directory.
pub fn write_subset(src: &Path, out: &Path, users: usize, seed: u64) -> Result<SubsetReport> {
    let existing = check_out(out, "data subset", &[src])?;
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
    let tmp = scratch_beside(out)?;
    write(&tmp.join("users.tsv"), &(kept.join("\n") + "\n"))?;
    write(&tmp.join("items.tsv"), &(items.join("\n") + "\n"))?;
    let marker =
        serde_json::json!({"source": src.display().to_string(), "users": users, "seed": seed});
    write(&tmp.join(MARKER), &marker.to_string())?;
    link_images(src, &tmp)?;
    replace_with(tmp, out, existing, "data subset")?;
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
