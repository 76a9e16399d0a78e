//! Output directories of the dataset commands (`data synth`, `data subset`, `data split-cold`,
//! `data import`, `data export`): a command writes a new directory beside its target and
//! renames it into place. It may replace only an earlier output of the same command holding
//! nothing else: each output records, in [`RECORD`], the command that wrote it and every entry
//! it wrote; a directory whose record names another command, or that holds an entry the record
//! does not list (a file the user added), is refused, and nothing is deleted. It never writes
//! into `.`, the working directory or one of its ancestors, or its own source. A scratch
//! directory is removed when the command fails (docs/SECURITY.md, "Outputs").

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The file in every output directory that records which command wrote it and what.
pub const RECORD: &str = ".iisan-output.json";

/// The contents of [`RECORD`].
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    /// The command, e.g. `data import`.
    command: String,
    /// The entries it wrote at the directory's top level (besides the record).
    entries: Vec<String>,
}

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

/// Check the output directory `out` of `command`, which reads `sources`: refuse `.`/the working
/// directory or an ancestor of it, a source or a directory inside one, and an existing
/// non-empty directory that is not wholly this command's earlier output (see the module doc).
pub fn check_out(out: &Path, command: &str, sources: &[&Path]) -> Result<Existing> {
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
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    if entries.next().is_none() {
        return Ok(Existing::Empty);
    }
    check_owned(out, command).map(|()| Existing::Ours)
}

/// Whether `out` (non-empty) holds exactly what an earlier `command` wrote, by its record.
fn check_owned(out: &Path, command: &str) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::file(
            out,
            format!("{why}: refusing to replace it; move it away or choose another --out"),
        ))
    };
    let record = out.join(RECORD);
    let Ok(text) = crate::atomic::read_bounded(&record, 1 << 20) else {
        return refuse(format!("exists and was not written by `iisan {command}`"));
    };
    let Ok(rec) = serde_json::from_str::<Record>(&text) else {
        return refuse(format!("exists and its {RECORD} cannot be read"));
    };
    if rec.command != command {
        let other = rec.command;
        return refuse(format!(
            "holds the output of `iisan {other}`, not of `iisan {command}`"
        ));
    }
    for e in std::fs::read_dir(out).map_err(|e| Error::io(out, e))? {
        let name = e.map_err(|e| Error::io(out, e))?.file_name();
        let name = name.to_string_lossy();
        if name != RECORD && !rec.entries.iter().any(|w| *w == name) {
            return refuse(format!(
                "holds {name:?}, which `iisan {command}` did not write"
            ));
        }
    }
    Ok(())
}

/// A fresh directory beside an output, removed on drop unless [`replace_with`] moved it into
/// place (a failed command leaves nothing behind). It dereferences to its path.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    done: bool,
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.done {
            // this process created the folder and wrote everything in it
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

impl Scratch {
    /// Keep the folder where it is (the caller moved it, or moves it itself).
    pub fn keep(mut self) -> PathBuf {
        self.done = true;
        std::mem::take(&mut self.path)
    }
}

/// A fresh directory beside `out` to write into (`.<name>.tmp-<pid>`; a leftover of this
/// process id, which can only be this command's own, is removed first).
pub fn scratch_beside(out: &Path) -> Result<Scratch> {
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
    Ok(Scratch {
        path: tmp,
        done: false,
    })
}

/// Record `command` and the entries of the finished directory `tmp`, and move it to `out`,
/// replacing what [`check_out`] allowed there (the old directory is renamed aside first, put
/// back if the move fails, and deleted only after the new one is in place).
pub fn replace_with(tmp: Scratch, out: &Path, existing: Existing, command: &str) -> Result<()> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(&*tmp).map_err(|e| Error::io(&tmp, e))? {
        let e = e.map_err(|e| Error::io(&tmp, e))?;
        entries.push(e.file_name().to_string_lossy().into_owned());
    }
    entries.sort();
    let record = Record {
        command: command.into(),
        entries,
    };
    let p = tmp.join(RECORD);
    let json = serde_json::to_string_pretty(&record).expect("serialisable") + "\n";
    std::fs::write(&p, json).map_err(|e| Error::io(&p, e))?;
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
    if let Err(e) = std::fs::rename(&*tmp, out) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, out);
        }
        return Err(Error::io(out, e));
    }
    tmp.keep();
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

    /// New, empty and the same command's own outputs are written; the source, the working
    /// directory, a foreign directory, another command's output and an own output the user
    /// added a file to are refused, and nothing of theirs is deleted.
    #[test]
    fn only_new_empty_or_wholly_own_directories_outside_the_source_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let src = d.join("src");
        std::fs::create_dir_all(src.join("images")).unwrap();
        assert_eq!(
            check_out(&d.join("new"), "t", &[&src]).unwrap(),
            Existing::Absent
        );
        for (out, msg) in [
            (src.clone(), "inside the source"),
            (src.join("images"), "inside the source"),
            (PathBuf::from("."), "working directory"),
        ] {
            let e = check_out(&out, "t", &[&src]).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
        let other = d.join("other");
        std::fs::create_dir_all(&other).unwrap();
        assert_eq!(check_out(&other, "t", &[]).unwrap(), Existing::Empty);
        std::fs::write(other.join("manifest.json"), "{}").unwrap();
        let e = check_out(&other, "t", &[]).unwrap_err().to_string();
        assert!(e.contains("was not written by `iisan t`"), "{e}");
        // an own output is replaced, and only after the new one is complete
        let ours = d.join("ours");
        let write = |existing| {
            let tmp = scratch_beside(&ours).unwrap();
            std::fs::write(tmp.join("m.json"), "{}").unwrap();
            replace_with(tmp, &ours, existing, "t").unwrap();
        };
        write(Existing::Absent);
        assert_eq!(check_out(&ours, "t", &[]).unwrap(), Existing::Ours);
        let e = check_out(&ours, "u", &[]).unwrap_err().to_string();
        assert!(
            e.contains("holds the output of `iisan t`, not of `iisan u`"),
            "{e}"
        );
        write(Existing::Ours);
        std::fs::write(ours.join("notes.txt"), "mine").unwrap();
        let e = check_out(&ours, "t", &[]).unwrap_err().to_string();
        assert!(
            e.contains("holds \"notes.txt\", which `iisan t` did not write"),
            "{e}"
        );
        assert!(ours.join("notes.txt").exists());
        // a scratch folder that is dropped (the command failed) is removed
        let tmp = scratch_beside(&d.join("failed")).unwrap();
        std::fs::write(tmp.join("half"), "x").unwrap();
        drop(tmp);
        let left: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 3, "{left:?}");
    }
}
