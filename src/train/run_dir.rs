//! The run directory: a self-describing record of one training run.
//!
//! ```text
//! runs/<name>/
//!   config.toml          the resolved configuration
//!   dataset.json         name, fingerprint, statistics, synthetic or not
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

use serde::{Deserialize, Serialize};

use crate::config::{Config, Plan};
use crate::data::{Dataset, Stats};
use crate::efficiency::{Efficiency, Profile};
use crate::error::{Error, Result};
use crate::eval::{Metric, Metrics, PerMask};
use crate::model::{ServedModel, TrainedModel};

/// The git revision this binary was built from.
pub const GIT_REV: &str = env!("IISAN_GIT_REV");

/// One epoch's record in `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Training steps taken.
    pub steps: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Seconds of validation.
    pub eval_seconds: f64,
    /// Validation metrics.
    pub valid: PerMask<Metrics>,
    /// Peak RSS so far, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// Dataset description written with a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Dataset name.
    pub name: String,
    /// Whether the data is synthetic (the embedded default).
    pub synthetic: bool,
    /// Fingerprint of the preprocessed data.
    pub fingerprint: String,
    /// Statistics.
    pub stats: Stats,
}

impl DatasetInfo {
    /// Describe `data` (synthetic when its directory holds a generator manifest).
    pub fn of(data: &Dataset) -> DatasetInfo {
        let synthetic = data
            .root
            .as_ref()
            .is_some_and(|r| r.join("synth.json").exists());
        DatasetInfo {
            name: data.name.clone(),
            synthetic,
            fingerprint: data.fingerprint.clone(),
            stats: data.stats(),
        }
    }
}

/// `summary.json`: the outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Method name.
    pub method: String,
    /// Dataset.
    pub dataset: DatasetInfo,
    /// Masking convention used for model selection.
    pub selection_mask: String,
    /// Validation metric used for model selection.
    pub select_metric: Metric,
    /// Best validation epoch (1-based).
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Validation metrics at the best epoch.
    pub valid: PerMask<Metrics>,
    /// Test metrics with the best epoch's parameters.
    pub test: PerMask<Metrics>,
    /// Efficiency figures.
    pub efficiency: Efficiency,
    /// Whether validation and test metrics were computed (`eval.skip` leaves them empty).
    #[serde(default = "yes")]
    pub evaluated: bool,
    /// Where the training and evaluation time went, per phase, over the whole run.
    #[serde(default)]
    pub profile: Profile,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
    /// Seed.
    pub seed: u64,
    /// Git revision of the binary.
    pub git_rev: String,
    /// Where the run directory is.
    pub run_dir: PathBuf,
}

fn yes() -> bool {
    true
}

/// A finished run opened for use: its checked configuration, its dataset, its summary and its
/// model with the best epoch's parameters.
pub struct FinishedRun {
    /// The run's resolved configuration, checked.
    pub plan: Plan,
    /// The dataset it was trained on (`data.dir` of its config, relative to the working
    /// directory as at training time).
    pub data: Dataset,
    /// `summary.json`.
    pub summary: Summary,
    /// The model with `best.safetensors` loaded.
    pub model: TrainedModel,
}

/// Read `dir/summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a run summary: {e}")))
}

/// Open the finished run directory `dir` for serving: its user encoder (best parameters), its
/// item matrix and item ids; no dataset or tower is read.
pub fn open_served(dir: &Path) -> Result<ServedModel> {
    let plan = Config::load(Some(&dir.join("config.toml")), &[])?.check()?;
    let cfg = &plan.cfg;
    let items_path = dir.join("items.safetensors");
    if !items_path.exists() {
        return Err(Error::file(
            &items_path,
            "missing: runs trained before items.safetensors existed cannot be served",
        ));
    }
    let items = candle_core::safetensors::load(&items_path, &candle_core::Device::Cpu)
        .map_err(|e| Error::file(&items_path, format!("cannot read: {e}")))?
        .remove("items")
        .ok_or_else(|| Error::file(&items_path, "no tensor named items"))?;
    let ids_path = dir.join("item_ids.txt");
    let text = std::fs::read_to_string(&ids_path).map_err(|e| Error::io(&ids_path, e))?;
    let keys: Vec<String> = std::iter::once("<pad>".to_string())
        .chain(text.lines().map(str::to_string))
        .collect();
    if keys.len() != items.dim(0)? {
        return Err(Error::file(
            &ids_path,
            format!("{} ids for {} item rows", keys.len() - 1, items.dim(0)? - 1),
        ));
    }
    ServedModel::new(
        &cfg.model.user,
        cfg.data.options.max_seq_len,
        &dir.join(best_checkpoint(dir)?),
        items,
        keys,
    )
}

/// The run's checkpoint: `best.safetensors`, or `last.safetensors` of an `eval.skip` run.
fn best_checkpoint(dir: &Path) -> Result<&'static str> {
    ["best.safetensors", "last.safetensors"]
        .into_iter()
        .find(|f| dir.join(f).exists())
        .ok_or_else(|| Error::file(&dir.join("best.safetensors"), "missing: no checkpoint"))
}

/// Open the finished run directory `dir`: config, dataset, summary, and the model with its best
/// parameters (a dataset whose fingerprint differs from the one trained on is an error).
pub fn open_finished(dir: &Path) -> Result<FinishedRun> {
    let summary = read_summary(dir)?;
    let plan = Config::load(Some(&dir.join("config.toml")), &[])?.check()?;
    let cfg = &plan.cfg;
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    if data.fingerprint != summary.dataset.fingerprint {
        return Err(Error::file(
            &cfg.data.dir,
            format!(
                "dataset fingerprint {} differs from the {} the run {} was trained on",
                data.fingerprint,
                summary.dataset.fingerprint,
                dir.display()
            ),
        ));
    }
    let model = plan.build_model(&data)?;
    let best = dir.join("best.safetensors");
    if !best.exists() {
        return Err(Error::file(
            &best,
            "missing: the run saved no best checkpoint (eval.skip runs keep last.safetensors)",
        ));
    }
    model.load_weights(&best)?;
    Ok(FinishedRun {
        plan,
        data,
        summary,
        model,
    })
}

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
