//! The exact-resume checkpoint of a run directory: after every epoch the training loop writes
//! everything the next epoch depends on, and resuming continues from it to the same bits as a
//! run that was never interrupted.
//!
//! ```text
//! resume-<E>.safetensors   param.<name> (current), best.<name> (best epoch's),
//!                          adam.<group>.<i>.{m,v} (Adam moments)
//! resume.json              epoch E, early-stopping state, timer, the dropout stream's state,
//!                          Adam step counts, the tensors file's name
//! ```
//! The tensors go first (beside their name, renamed), then `resume.json` (the commit point),
//! then the previous epoch's tensors are deleted: a crash at any moment leaves a consistent
//! checkpoint. The data order is not stored: each epoch's shuffle is replayed from the seed.
//! `metrics.jsonl` lines past the checkpoint's epoch (an epoch cut short after its line was
//! written) are dropped on resume.
//!
//! Fault injection for the kill-and-resume script and tests: `IISAN_FAULT=checkpoint-write:E`
//! aborts between writing epoch E's tensors and committing them; `IISAN_FAULT=after-epoch:E`
//! aborts once epoch E's checkpoint is committed; `IISAN_FAULT=evaluation:E` (the training
//! loop's) aborts when epoch E's validation has been computed but not recorded;
//! `IISAN_FAULT=finish:E` aborts once the summary of a run whose last epoch is E is written.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::dir::RunDir;
use super::summary::Summary;
use crate::atomic::{write_tensors, write_text};
use crate::error::{Error, Result};
use crate::eval::{Metrics, PerMask};
use crate::nn::loss_scale::LossScale;

/// The non-tensor state of the epoch loop after epoch `epoch`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoopState {
    /// The last completed epoch.
    pub epoch: usize,
    /// Whether early stopping ended the run there.
    pub stopped: bool,
    /// The best validation score so far (`None`: none yet).
    pub best: Option<f64>,
    /// Its epoch.
    pub best_epoch: usize,
    /// Epochs since without a better score.
    pub bad: usize,
    /// The best epoch's validation metrics.
    pub best_valid: PerMask<Metrics>,
    /// Training steps done.
    pub timer_done: usize,
    /// Training steps timed.
    pub timer_timed: usize,
    /// Their seconds.
    pub timer_seconds: f64,
    /// Seconds of validation so far.
    pub eval_seconds: f64,
    /// Peak memory when the first epoch's training ended.
    pub train_peak: Option<f64>,
    /// The device's peak then.
    #[serde(default)]
    pub train_peak_device: Option<f64>,
    /// The dropout stream's state.
    pub dropout: Xoshiro256PlusPlus,
    /// Adam's step count per group.
    pub adam_steps: BTreeMap<String, i32>,
    /// f16's loss scale (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScale>,
    /// The tensors file's name.
    pub tensors: String,
    /// SHA-256 of this record written without this field (see [`sealed`]): an edited
    /// `resume.json` is refused, not believed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// `state` as the text of `resume.json`, with its digest.
fn sealed(state: &LoopState) -> String {
    let s = LoopState {
        digest: Some(digest_of(state)),
        ..state.clone()
    };
    serde_json::to_string_pretty(&s).expect("serialisable")
}

/// The SHA-256 (hex) of `state` written as `resume.json` without its digest.
fn digest_of(state: &LoopState) -> String {
    use sha2::{Digest, Sha256};
    let plain = LoopState {
        digest: None,
        ..state.clone()
    };
    let text = serde_json::to_string_pretty(&plain).expect("serialisable");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `state` (as read) carries the digest of its own contents.
fn intact(state: &LoopState) -> bool {
    state.digest.as_deref() == Some(digest_of(state).as_str())
}

/// Abort the process at fault point `point` of epoch `epoch` if `IISAN_FAULT` names it.
pub fn fault(point: &str, epoch: usize) {
    if std::env::var("IISAN_FAULT").is_ok_and(|f| f == format!("{point}:{epoch}")) {
        eprintln!("IISAN_FAULT: aborting at {point} of epoch {epoch}");
        std::process::abort();
    }
}

/// Commit the checkpoint of epoch `state.epoch` into `run`: `tensors` (named as the module doc
/// says) beside their file and renamed, then `resume.json`, then the previous epoch's tensors
/// deleted. `state.tensors` is set here.
pub fn write(run: &RunDir, tensors: HashMap<String, Tensor>, mut state: LoopState) -> Result<()> {
    let epoch = state.epoch;
    let name = format!("resume-{epoch}.safetensors");
    write_tensors(&run.file(&name), &tensors)?;
    fault("checkpoint-write", epoch);
    state.tensors = name;
    let json = sealed(&state);
    write_text(&run.file("resume.json"), &json)?;
    if epoch > 1 {
        let old = run.file(&format!("resume-{}.safetensors", epoch - 1));
        if old.exists() {
            std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
        }
    }
    fault("after-epoch", epoch);
    Ok(())
}

/// Finish `run` after its last epoch `epoch`, in steps each of which a crash can cut short and
/// a resume completes ([`complete`]): `summary.json` is written (from then on the run counts as
/// finished), `resume.json` is deleted before the tensors it names, the directory is renamed to
/// its final name with its lock still inside, and the lock file goes last.
pub fn finish(run: RunDir, summary: &Summary, epoch: usize) -> Result<PathBuf> {
    run.write_summary(summary)?;
    fault("finish", epoch);
    remove(&run, Some(epoch))?;
    run.finish()
}

/// Complete the finishing of a run that was cut short after its `summary.json` was written.
pub fn complete(run: RunDir) -> Result<PathBuf> {
    remove(&run, None)?;
    run.finish()
}

/// Delete the checkpoint: `resume.json` first (so it never names a deleted file), then the
/// tensors of epoch `epoch`, or every `resume-<E>.safetensors` when it is not known.
fn remove(run: &RunDir, epoch: Option<usize>) -> Result<()> {
    let mut files = vec!["resume.json".to_string()];
    match epoch {
        Some(e) => files.push(format!("resume-{e}.safetensors")),
        None => {
            for e in std::fs::read_dir(run.dir()).map_err(|e| Error::io(run.dir(), e))? {
                let name = e.map_err(|e| Error::io(run.dir(), e))?.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("resume-") && name.ends_with(".safetensors") {
                    files.push(name.into_owned());
                }
            }
        }
    }
    for f in files {
        let p = run.file(&f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// The committed checkpoint of `run`: its loop state and its tensors (loaded on `device`);
/// `metrics.jsonl` is cut back to the checkpoint's epoch.
pub fn read(run: &RunDir, device: &Device) -> Result<(LoopState, HashMap<String, Tensor>)> {
    let path = run.file("resume.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::file(&path, format!("no checkpoint to resume from ({e}): the run stopped before its first epoch ended; start it again with --restart"))
    })?;
    let s: LoopState = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a resume checkpoint: {e}")))?;
    if !intact(&s) {
        return Err(Error::file(
            &path,
            "was edited or damaged since it was written (its digest does not match): resume \
             only from the checkpoint as the training wrote it, or start again with --restart",
        ));
    }
    let tpath = run.file(&s.tensors);
    let map = candle_core::safetensors::load(&tpath, device)
        .map_err(|e| Error::file(&tpath, format!("cannot read the checkpoint: {e}")))?;
    truncate_metrics(run, s.epoch)?;
    Ok((s, map))
}

/// Keep the first `epochs` lines of `metrics.jsonl`.
fn truncate_metrics(run: &RunDir, epochs: usize) -> Result<()> {
    let path = run.file("metrics.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let kept: String = text
        .lines()
        .take(epochs)
        .map(|l| format!("{l}\n"))
        .collect();
    if kept.len() != text.len() {
        write_text(&path, &kept)?;
    }
    Ok(())
}
