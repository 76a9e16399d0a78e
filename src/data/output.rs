//! Output directories of the dataset commands (`data synth`, `data subset`, `data split-cold`):
//! a command writes a new directory beside its target and renames it into place, and may
//! replace only its own earlier output, recognised by the marker file it writes there. It never
//! writes into `.`, the working directory or one of its ancestors, or its own source.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What is at an output path before a command writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Absent,
    /// An empty directory.
    Empty,
    /// This command's own earlier output (its marker file is there).
    Ours,
}

/// `path` made absolute without requiring it to exist (its parent must, or be creatable).
fn absolute(path: &Path) -> Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    match (abs.parent(), abs.file_name()) {
        (Some(parent), Some(name)) => Ok(std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or(abs.clone())),
        _ => Ok(abs),
    }
}

/// Check the output directory `out` of a command that writes `marker` into its outputs and reads
/// `sources`: refuse `.`/the working directory or an ancestor of it, a source or a directory
/// inside one, and an existing non-empty directory without `marker`.
pub fn check_out(out: &Path, marker: &str, sources: &[&Path]) -> Result<Existing> {
    let abs = absolute(out)?;
    let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
    if cwd.starts_with(&abs) {
        return Err(Error::file(
            out,
            "is the working directory or contains it: choose a new directory for --out",
        ));
    }
    for src in sources {
        let s = absolute(src)?;
        if abs.starts_with(&s) {
            return Err(Error::file(
                out,
                format!(
                    "is or lies inside the source {}: choose another --out",
                    src.display()
                ),
            ));
        }
    }
    if !out.exists() {
        return Ok(Existing::Absent);
    }
    if !out.is_dir() {
        return Err(Error::file(out, "exists and is not a directory"));
    }
    if out.join(marker).is_file() {
        return Ok(Existing::Ours);
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    if entries.next().is_none() {
        return Ok(Existing::Empty);
    }
    Err(Error::file(
        out,
        format!("exists and was not written by this command (no {marker}): refusing to replace it"),
    ))
}

/// A fresh directory beside `out` to write into (`.<name>.tmp-<pid>`; a leftover of this
/// process id, which can only be this command's own, is removed first).
pub fn scratch_beside(out: &Path) -> Result<PathBuf> {
    let name = out
        .file_name()
        .ok_or_else(|| Error::file(out, "not a directory name"))?;
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if let Some(parent) = tmp.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

/// Move the finished directory `tmp` to `out`, replacing what [`check_out`] allowed there (the
/// old directory is renamed aside first and deleted only after the new one is in place).
pub fn replace_with(tmp: &Path, out: &Path, existing: Existing) -> Result<()> {
    let old = match existing {
        Existing::Absent => None,
        Existing::Empty => {
            std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
            None
        }
        Existing::Ours => {
            let mut old = tmp.as_os_str().to_owned();
            old.push(".old");
            let old = PathBuf::from(old);
            std::fs::rename(out, &old).map_err(|e| Error::io(out, e))?;
            Some(old)
        }
    };
    std::fs::rename(tmp, out).map_err(|e| Error::io(out, e))?;
    if let Some(old) = old {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
    }
    Ok(())
}

/// Link `dir/images` to the source's `images/` folder (by absolute path) when the source has
/// one, so a derived dataset shares its images instead of copying them.
pub fn link_images(src: &Path, dir: &Path) -> Result<()> {
    let images = src.join("images");
    if images.is_dir() {
        let target = std::fs::canonicalize(&images).map_err(|e| Error::io(&images, e))?;
        let link = dir.join("images");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&target, &link).map_err(|e| Error::io(&link, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_new_empty_or_own_directories_outside_the_source_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = d.join("src");
        std::fs::create_dir_all(src.join("images")).unwrap();
        assert_eq!(
            check_out(&d.join("new"), "m.json", &[&src]).unwrap(),
            Existing::Absent
        );
        for (out, msg) in [
            (src.clone(), "inside the source"),
            (src.join("images"), "inside the source"),
            (PathBuf::from("."), "working directory"),
        ] {
            let e = check_out(&out, "m.json", &[&src]).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
        let other = d.join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(check_out(&other, "m.json", &[]).unwrap(), Existing::Empty);
        std::fs::write(other.join("keep.txt"), "x").unwrap();
        let e = check_out(&other, "m.json", &[]).unwrap_err().to_string();
        assert!(e.contains("not written by this command (no m.json)"), "{e}");
        // our own output is replaced, and only after the new one is complete
        let ours = d.join("ours");
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::write(ours.join("m.json"), "{}").unwrap();
        std::fs::write(ours.join("stale.txt"), "old").unwrap();
        let existing = check_out(&ours, "m.json", &[]).unwrap();
        assert_eq!(existing, Existing::Ours);
        let tmp = scratch_beside(&ours).unwrap();
        std::fs::write(tmp.join("m.json"), "{\"new\": 1}").unwrap();
        replace_with(&tmp, &ours, existing).unwrap();
        assert!(!ours.join("stale.txt").exists());
        assert_eq!(
            std::fs::read_to_string(ours.join("m.json")).unwrap(),
            "{\"new\": 1}"
        );
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 3, "no scratch left");
    }
}
