//! What a run records: one line per epoch (`metrics.jsonl`), the dataset it ran on
//! (`dataset.json`) and its outcome (`summary.json`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Stats};
use crate::efficiency::{Efficiency, Profile};
use crate::eval::{Metric, Metrics, PerMask};

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
