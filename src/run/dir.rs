//! The run directory being written: `runs/.<name>.partial/` (locked through `run.lock` while a
//! training owns it), renamed to `runs/<name>/` only when the run completed, so a run
//! directory under its final name is never half-written, and two trainings never share a
//! directory. The files it holds: [`super`].

use std::io::Write;
use std::path::{Path, PathBuf};

use super::summary::{DatasetInfo, EpochRecord, Summary};
use crate::atomic::write_text;
use crate::config::Config;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::provenance::TowerRecord;

/// A run directory being written. It owns `runs/.<name>.partial/` exclusively: the directory
/// is created with `create_dir` (one creator wins) and holds `run.lock`, locked for the life of
/// this value, so a second training of the same name is refused and an interrupted one is
/// recognised (its lock is free).
#[derive(Debug)]
pub struct RunDir {
    partial: PathBuf,
    final_path: PathBuf,
    lock: std::fs::File,
}

/// The lock file inside a partial run directory.
const LOCK: &str = "run.lock";

/// The lock of the partial run directory `partial` of run `name`, taken: an error when the
/// directory has no `run.lock` (not an iisan run) or another training holds it.
fn take_free_lock(partial: &Path, name: &str) -> Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(partial.join(LOCK))
        .map_err(|_| {
            Error::file(
                partial,
                "exists but is not an iisan run (no run.lock): move it away or choose another run.name",
            )
        })?;
    lock.try_lock().map_err(|_| {
        Error::file(
            partial,
            format!("another training of run {name:?} is writing it now"),
        )
    })?;
    Ok(lock)
}

/// What to do with an interrupted run of the same name found in `.<name>.partial/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interrupted {
    /// Refuse, saying how to go on (the default: nothing is deleted unasked).
    #[default]
    Refuse,
    /// Delete it and start afresh (`iisan train --restart`).
    Restart,
}

impl RunDir {
    /// Create `<run.dir>/.<name>.partial/`, lock it, and write the config and dataset
    /// description. An existing run of the same name is an error (runs are never overwritten),
    /// so is a training of that name still running; an interrupted one is deleted only with
    /// [`Interrupted::Restart`]. Without `run.name` the name is `<method>-<dataset>-<time>`,
    /// made unique with a `-2`, `-3`, ... suffix.
    pub fn create(cfg: &Config, data: &Dataset, interrupted: Interrupted) -> Result<RunDir> {
        std::fs::create_dir_all(&cfg.run.dir).map_err(|e| Error::io(&cfg.run.dir, e))?;
        let dir = if cfg.run.name.is_empty() {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            let base = format!("{}-{}-{stamp}", cfg.model.method.name(), data.name);
            (1..)
                .map(|i| {
                    if i == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{i}")
                    }
                })
                .find_map(|name| Self::claim(cfg, &name).transpose())
                .expect("an unused name")?
        } else {
            let name = &cfg.run.name;
            match Self::claim(cfg, name)? {
                Some(dir) => dir,
                None => Self::reclaim(cfg, name, interrupted)?,
            }
        };
        write_text(&dir.file("config.toml"), &cfg.to_toml())?;
        let info = serde_json::to_string_pretty(&DatasetInfo::of(data)).expect("serialisable");
        write_text(&dir.file("dataset.json"), &info)?;
        Ok(dir)
    }

    /// Create and lock `.<name>.partial/` if neither it nor the final directory exists;
    /// `None` if one does.
    fn claim(cfg: &Config, name: &str) -> Result<Option<RunDir>> {
        let final_path = cfg.run.dir.join(name);
        let partial = cfg.run.dir.join(format!(".{name}.partial"));
        if final_path.exists() {
            return Ok(None);
        }
        match std::fs::create_dir(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(None),
            Err(e) => return Err(Error::io(&partial, e)),
        }
        let lock_path = partial.join(LOCK);
        let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.try_lock()
            .map_err(|e| Error::file(&lock_path, format!("cannot lock: {e}")))?;
        Ok(Some(RunDir {
            partial,
            final_path,
            lock,
        }))
    }

    /// The name `name` is taken: say by what, or delete an interrupted run (`Restart`) and
    /// claim the name again.
    fn reclaim(cfg: &Config, name: &str, interrupted: Interrupted) -> Result<RunDir> {
        let final_path = cfg.run.dir.join(name);
        if final_path.exists() {
            return Err(Error::file(
                &final_path,
                "run directory already exists (choose another run.name)",
            ));
        }
        let partial = cfg.run.dir.join(format!(".{name}.partial"));
        let lock = take_free_lock(&partial, name)?;
        if interrupted == Interrupted::Refuse {
            return Err(Error::file(
                &partial,
                format!(
                    "an interrupted run {name:?} is here: continue it with `iisan train --resume {}`, or pass --restart to delete it and start again",
                    partial.display()
                ),
            ));
        }
        drop(lock);
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        Self::claim(cfg, name)?
            .ok_or_else(|| Error::file(&partial, "was taken by another training while restarting"))
    }

    /// Reopen the interrupted run in the partial directory `partial` (`runs/.<name>.partial`)
    /// to resume it: its lock must be free (no training is writing it).
    pub fn reopen(partial: &Path) -> Result<RunDir> {
        let name = partial
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix('.'))
            .and_then(|n| n.strip_suffix(".partial"))
            .ok_or_else(|| Error::file(partial, "not a partial run directory (.<name>.partial)"))?;
        let final_path = partial.with_file_name(name);
        if final_path.exists() {
            return Err(Error::file(
                &final_path,
                "the run already finished under this name",
            ));
        }
        let lock = take_free_lock(partial, name)?;
        Ok(RunDir {
            partial: partial.to_path_buf(),
            final_path,
            lock,
        })
    }

    /// Write `towers.json`: the frozen towers the model depends on (`iisan items add` runs
    /// them again on new items and checks their hashes first).
    pub fn write_towers(&self, towers: &[TowerRecord]) -> Result<()> {
        let text = serde_json::to_string_pretty(towers).expect("serialisable");
        write_text(&self.file("towers.json"), &text)
    }

    /// The (partial) run directory being written.
    pub fn dir(&self) -> &Path {
        &self.partial
    }

    /// Path of `name` inside the (partial) run directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.partial.join(name)
    }

    /// The directory's final path.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Append one epoch to `metrics.jsonl`.
    pub fn append_epoch(&self, rec: &EpochRecord) -> Result<()> {
        let path = self.file("metrics.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let line = serde_json::to_string(rec).expect("serialisable");
        writeln!(f, "{line}").map_err(|e| Error::io(&path, e))
    }

    /// Write `summary.json`: from here on the run counts as finished.
    pub fn write_summary(&self, summary: &Summary) -> Result<()> {
        let text = serde_json::to_string_pretty(summary).expect("serialisable");
        write_text(&self.file("summary.json"), &text)
    }

    /// Whether `summary.json` was written (the run finished; moving it may have been cut
    /// short).
    pub fn has_summary(&self) -> bool {
        self.file("summary.json").is_file()
    }

    /// Move the directory to its final name, the lock held and its file inside until the
    /// rename is done, then delete the lock file (a run cut short between the two has a
    /// stale `run.lock`, which nothing reads in a finished run).
    pub fn finish(self) -> Result<PathBuf> {
        std::fs::rename(&self.partial, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, e))?;
        let lock_path = self.final_path.join(LOCK);
        std::fs::remove_file(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        drop(self.lock);
        Ok(self.final_path)
    }
}
