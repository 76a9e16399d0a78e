//! The run directory: a self-describing record of one training run.
//!
//! ```text
//! runs/<name>/
//!   config.toml          the resolved configuration
//!   dataset.json         name, fingerprint, statistics, synthetic or not
//!   towers.json          the frozen towers used: absolute folder, content hash, inputs
//!   metrics.jsonl        one JSON object per epoch
//!   best.safetensors     parameters of the best validation epoch
//!   items.safetensors    the item embedding matrix `items` [N + 1, d] with those parameters
//!   item_ids.txt         the external item id of each row, one per line from row 1
//!   summary.json         test metrics at the best epoch (both masks), efficiency, revision
//! ```
//! The run writes into `runs/.<name>.partial/` and renames it to `runs/<name>/` only when it
//! completed, so a run directory under its final name is never half-written.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::summary::{DatasetInfo, EpochRecord, Summary};
use crate::config::Config;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::provenance::TowerRecord;

/// A run directory being written.
#[derive(Debug)]
pub struct RunDir {
    partial: PathBuf,
    final_path: PathBuf,
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl RunDir {
    /// Create `<run.dir>/.<name>.partial/` and write the config and dataset description.
    /// An existing run of the same name is an error (runs are never overwritten).
    pub fn create(cfg: &Config, data: &Dataset) -> Result<RunDir> {
        let name = if cfg.run.name.is_empty() {
            let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
            format!("{}-{}-{stamp}", cfg.model.method.name(), data.name)
        } else {
            cfg.run.name.clone()
        };
        let final_path = cfg.run.dir.join(&name);
        if final_path.exists() {
            return Err(Error::file(
                &final_path,
                "run directory already exists (choose another run.name)",
            ));
        }
        let partial = cfg.run.dir.join(format!(".{name}.partial"));
        if partial.exists() {
            std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        }
        std::fs::create_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
        let dir = RunDir {
            partial,
            final_path,
        };
        write_atomic(&dir.file("config.toml"), &cfg.to_toml())?;
        let info = serde_json::to_string_pretty(&DatasetInfo::of(data)).expect("serialisable");
        write_atomic(&dir.file("dataset.json"), &info)?;
        Ok(dir)
    }

    /// Write `towers.json`: the frozen towers the model depends on (`iisan items add` runs
    /// them again on new items and checks their hashes first).
    pub fn write_towers(&self, towers: &[TowerRecord]) -> Result<()> {
        let text = serde_json::to_string_pretty(towers).expect("serialisable");
        write_atomic(&self.file("towers.json"), &text)
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

    /// Write `summary.json` and move the directory to its final name.
    pub fn finish(self, summary: &Summary) -> Result<PathBuf> {
        let text = serde_json::to_string_pretty(summary).expect("serialisable");
        write_atomic(&self.file("summary.json"), &text)?;
        std::fs::rename(&self.partial, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, e))?;
        Ok(self.final_path)
    }
}
