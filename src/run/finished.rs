//! A finished run directory opened for use: as a model to evaluate again (`iisan eval`), or as
//! the user encoder and item matrix that serve recommendations (`iisan recommend`).

use std::path::Path;

use super::summary::{EpochRecord, Summary};
use crate::atomic::read_bounded;
use crate::catalogue::{Catalogue, SearchMode};
use crate::config::{Config, Plan};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{ServedModel, TrainedModel};
use crate::nn::DeviceSpec;

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

/// The largest `summary.json` read (one is a few KiB; its profile grows with phases, not epochs).
const MAX_SUMMARY: u64 = 16 << 20;

/// The largest `metrics.jsonl` read (about 600 bytes an epoch: 100,000 epochs fit).
const MAX_EPOCHS: u64 = 64 << 20;

/// Read `dir/summary.json`.
pub fn read_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text = read_bounded(&path, MAX_SUMMARY)?;
    serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a run summary: {e}")))
}

/// Read `dir/metrics.jsonl`, the epochs trained so far in order (none when the file is absent).
pub fn read_epochs(dir: &Path) -> Result<Vec<EpochRecord>> {
    let path = dir.join("metrics.jsonl");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = read_bounded(&path, MAX_EPOCHS)?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::line(&path, i + 1, format!("not an epoch record: {e}")))
        })
        .collect()
}

/// Refuse a directory that is not a finished run (no `summary.json`).
pub fn check_finished(dir: &Path) -> Result<()> {
    if dir.join("summary.json").is_file() {
        return Ok(());
    }
    Err(Error::file(
        dir,
        "is not a finished run (no summary.json): finish it with `iisan train --resume` first",
    ))
}

/// Open the finished run directory `dir` for serving: its user encoder (best parameters) and
/// its catalogue, ranking by `mode`; no dataset or tower is read.
pub fn open_served(dir: &Path, mode: SearchMode) -> Result<ServedModel> {
    check_finished(dir)?;
    let plan = read_plan(dir)?;
    let cfg = &plan.cfg();
    ServedModel::new(
        &cfg.model.user,
        cfg.data.options.max_seq_len,
        &dir.join(best_checkpoint(dir)?),
        Catalogue::open(dir, mode)?,
    )
}

/// The run's resolved `config.toml`, checked.
pub fn read_plan(dir: &Path) -> Result<Plan> {
    Config::load(Some(&dir.join("config.toml")), &[])?.check()
}

/// The run's checkpoint: `best.safetensors`, or `last.safetensors` of an `eval.skip` run.
pub fn best_checkpoint(dir: &Path) -> Result<&'static str> {
    ["best.safetensors", "last.safetensors"]
        .into_iter()
        .find(|f| dir.join(f).exists())
        .ok_or_else(|| Error::file(&dir.join("best.safetensors"), "missing: no checkpoint"))
}

/// Open the finished run directory `dir`: config, dataset, summary, and the model with its best
/// parameters on `device` (default: the run's `train.device`); a dataset whose fingerprint
/// differs from the one trained on is an error.
pub fn open_finished(dir: &Path, device: Option<DeviceSpec>) -> Result<FinishedRun> {
    let summary = read_summary(dir)?;
    let mut plan = read_plan(dir)?;
    if let Some(d) = device {
        plan = plan.changed(|c| c.train.device = d)?;
    }
    let best = dir.join("best.safetensors");
    if !best.exists() {
        return Err(Error::file(
            &best,
            "missing: the run saved no best checkpoint (eval.skip runs keep last.safetensors)",
        ));
    }
    let cfg = &plan.cfg();
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
    model.load_weights(&best)?;
    Ok(FinishedRun {
        plan,
        data,
        summary,
        model,
    })
}

/// The frozen towers the run `dir` recorded (`towers.json`).
pub fn read_towers(dir: &Path) -> Result<Vec<crate::provenance::TowerRecord>> {
    let path = dir.join("towers.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::file(
                &path,
                "missing: the run was trained before towers were recorded",
            )
        } else {
            Error::io(&path, e)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a tower list: {e}")))
}
