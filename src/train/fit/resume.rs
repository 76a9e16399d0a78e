//! Exact resume: after every epoch the loop writes a checkpoint of everything the next epoch
//! depends on, and `iisan train --resume` continues from it to the same bits as a run that was
//! never interrupted.
//!
//! ```text
//! resume-<E>.safetensors   param.<name> (current), best.<name> (best epoch's),
//!                          adam.<group>.<i>.{m,v} (Adam moments)
//! resume.json              epoch E, early-stopping state, timer, the dropout stream's state,
//!                          Adam step counts, the tensors file's name
//! ```
//! The tensors go first (beside their name, renamed), then `resume.json` (the commit point),
//! then the previous epoch's tensors are deleted: a crash at any moment leaves a consistent
//! checkpoint. The data order is not stored: each epoch's shuffle is replayed from the seed
//! (the shuffle only permutes, so replaying E epochs costs E permutations of the users).
//! `metrics.jsonl` lines past the checkpoint's epoch (an epoch cut short after its line was
//! written) are dropped on resume.
//!
//! Fault injection for the kill-and-resume script and tests: `IISAN_FAULT=checkpoint-write:E`
//! aborts between writing epoch E's tensors and committing them; `IISAN_FAULT=after-epoch:E`
//! aborts once epoch E's checkpoint is committed; `IISAN_FAULT=evaluation:E` aborts when epoch
//! E's validation has been computed but not recorded.

use std::collections::{BTreeMap, HashMap};

use candle_core::Tensor;
use rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::{EarlyStopping, FitState, StepTimer};
use crate::atomic::{write_beside, write_text};
use crate::error::{Error, Result};
use crate::eval::{Metrics, PerMask};
use crate::train::run_dir::RunDir;
use crate::train::trainer::Trainer;

/// The non-tensor state of the epoch loop after epoch `epoch`.
#[derive(Debug, Serialize, Deserialize)]
struct LoopState {
    epoch: usize,
    stopped: bool,
    best: Option<f64>,
    best_epoch: usize,
    bad: usize,
    best_valid: PerMask<Metrics>,
    timer_done: usize,
    timer_timed: usize,
    timer_seconds: f64,
    eval_seconds: f64,
    train_peak: Option<f64>,
    #[serde(default)]
    train_peak_device: Option<f64>,
    dropout: Xoshiro256PlusPlus,
    adam_steps: BTreeMap<String, i32>,
    tensors: String,
}

/// Abort the process at fault point `point` of epoch `epoch` if `IISAN_FAULT` names it.
pub(super) fn fault(point: &str, epoch: usize) {
    if std::env::var("IISAN_FAULT").is_ok_and(|f| f == format!("{point}:{epoch}")) {
        eprintln!("IISAN_FAULT: aborting at {point} of epoch {epoch}");
        std::process::abort();
    }
}

/// Write the checkpoint of the state after epoch `epoch` into `run`.
pub(super) fn write(trainer: &Trainer, st: &FitState, run: &RunDir, epoch: usize) -> Result<()> {
    let params = trainer.params();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (p, best) in params.params().iter().zip(&st.stop.best_state) {
        // saved before the next step changes it: a shared handle, no copy
        tensors.insert(format!("param.{}", p.name), p.var.as_tensor().clone());
        tensors.insert(format!("best.{}", p.name), best.clone());
    }
    let (adam, adam_steps) = trainer.opt.export()?;
    tensors.extend(adam);
    let name = format!("resume-{epoch}.safetensors");
    write_beside(&run.file(&name), |tmp| {
        Ok(candle_core::safetensors::save(&tensors, tmp)?)
    })?;
    fault("checkpoint-write", epoch);
    let s = LoopState {
        epoch,
        stopped: st.stopped_early,
        best: st.stop.best.is_finite().then_some(st.stop.best),
        best_epoch: st.stop.best_epoch,
        bad: st.stop.bad,
        best_valid: st.stop.best_valid.clone(),
        timer_done: st.timer.done,
        timer_timed: st.timer.timed,
        timer_seconds: st.timer.seconds,
        eval_seconds: st.eval_seconds,
        train_peak: st.train_peak,
        train_peak_device: st.train_peak_device,
        dropout: trainer.dropout_ctx.rng_state(),
        adam_steps,
        tensors: name,
    };
    let json = serde_json::to_string_pretty(&s).expect("serialisable");
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

/// Delete the checkpoint files of a finished run.
pub(super) fn remove(run: &RunDir, epoch: usize) -> Result<()> {
    for f in [format!("resume-{epoch}.safetensors"), "resume.json".into()] {
        let p = run.file(&f);
        if p.exists() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Restore the trainer and the loop state from the checkpoint in `run`; returns the loop
/// state and the last completed epoch.
pub(super) fn read(
    trainer: &mut Trainer,
    run: &RunDir,
    patience: usize,
    warmup: usize,
) -> Result<(FitState, usize)> {
    let path = run.file("resume.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::file(&path, format!("no checkpoint to resume from ({e}): the run stopped before its first epoch ended; start it again with --restart"))
    })?;
    let s: LoopState = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a resume checkpoint: {e}")))?;
    let tpath = run.file(&s.tensors);
    let map = candle_core::safetensors::load(&tpath, trainer.params().device())
        .map_err(|e| Error::file(&tpath, format!("cannot read the checkpoint: {e}")))?;
    let get = |k: &str| {
        map.get(k)
            .cloned()
            .ok_or_else(|| Error::file(&tpath, format!("missing tensor {k}")))
    };
    let params = trainer.params();
    let mut best_state = Vec::new();
    for p in params.params() {
        p.var.set(&get(&format!("param.{}", p.name))?)?;
        best_state.push(get(&format!("best.{}", p.name))?);
    }
    trainer.opt.import(
        |k| map.get(k).and_then(|t| t.to_vec1::<f32>().ok()),
        &s.adam_steps,
    )?;
    trainer.dropout_ctx.set_rng_state(s.dropout);
    let mut stop = EarlyStopping::new(patience, best_state);
    (stop.best, stop.best_epoch, stop.bad) =
        (s.best.unwrap_or(f64::NEG_INFINITY), s.best_epoch, s.bad);
    stop.best_valid = s.best_valid;
    let mut timer = StepTimer::new(warmup);
    (timer.done, timer.timed, timer.seconds) = (s.timer_done, s.timer_timed, s.timer_seconds);
    let st = FitState {
        stop,
        timer,
        eval_seconds: s.eval_seconds,
        epochs_run: s.epoch,
        stopped_early: s.stopped,
        train_peak: s.train_peak,
        train_peak_device: s.train_peak_device,
    };
    truncate_metrics(run, s.epoch)?;
    Ok((st, s.epoch))
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
