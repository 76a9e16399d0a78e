//! Exact resume (the checkpoint's format and commit protocol: [`crate::run::checkpoint`]):
//! the epoch loop's state and the trainer's (parameters, best parameters, Adam moments, the
//! dropout stream, f16's loss scale) into a checkpoint after every epoch, and back out of it.

use std::collections::HashMap;

use candle_core::Tensor;

use super::{EarlyStopping, FitState, StepTimer};
use crate::error::{Error, Result};
use crate::run::RunDir;
use crate::run::checkpoint::{self, LoopState};
use crate::train::trainer::Trainer;

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
        loss_scale: trainer.scaler.state(),
        tensors: String::new(),
        digest: None,
    };
    checkpoint::write(run, tensors, s)
}

/// Restore the trainer and the loop state from the checkpoint in `run`; returns the loop
/// state and the last completed epoch.
pub(super) fn read(
    trainer: &mut Trainer,
    run: &RunDir,
    patience: usize,
    warmup: usize,
) -> Result<(FitState, usize)> {
    let (s, map) = checkpoint::read(run, trainer.params().device())?;
    let tpath = run.file(&s.tensors);
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
    params.sync()?;
    trainer.scaler.restore(s.loss_scale);
    trainer.opt.import(
        |k| map.get(k).and_then(|t| t.to_vec1::<f32>().ok()),
        &s.adam_steps,
    )?;
    trainer.dropout_ctx.set_rng_state(s.dropout.clone());
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
    Ok((st, s.epoch))
}
