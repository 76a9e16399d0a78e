//! The loop over epochs (docs/MODEL.md section 5): shuffled user batches, validation after
//! every epoch, early stopping on the validation selection metric, and test metrics with the
//! best epoch's parameters. Its state lives in three small parts: [`EarlyStopping`],
//! [`StepTimer`] (seconds per epoch with warm-up steps left out) and the summary built at the
//! end.

use std::time::Instant;

use candle_core::Tensor;
use rand::seq::SliceRandom;

mod resume;

use super::trainer::Trainer;
use crate::config::Schedule;
use crate::data::Split;
use crate::efficiency::{Efficiency, peak_device_mib, peak_rss_mib};
use crate::error::{Error, Result};
use crate::eval::{Metrics, PerMask};
use crate::progress::{EpochEnd, Unit};
use crate::run::checkpoint;
use crate::run::summary::GIT_REV;
use crate::run::{DatasetInfo, EpochRecord, RunDir, Summary};
use crate::scorer::Scorer;

/// The best validation epoch so far and the epochs since.
struct EarlyStopping {
    patience: usize,
    best: f64,
    best_epoch: usize,
    bad: usize,
    best_state: Vec<Tensor>,
    best_valid: PerMask<Metrics>,
}

impl EarlyStopping {
    fn new(patience: usize, initial: Vec<Tensor>) -> Self {
        EarlyStopping {
            patience,
            best: f64::NEG_INFINITY,
            best_epoch: 0,
            bad: 0,
            best_state: initial,
            best_valid: PerMask::default(),
        }
    }

    /// Whether `score` beats the best so far (ties do not).
    fn improves(&self, score: f64) -> bool {
        score > self.best
    }

    /// Record a better epoch and the parameters that reached it.
    fn improved(&mut self, epoch: usize, score: f64, state: Vec<Tensor>, valid: PerMask<Metrics>) {
        (self.best, self.best_epoch, self.bad) = (score, epoch, 0);
        self.best_state = state;
        self.best_valid = valid;
    }

    /// Record an epoch that did not improve; true when the run should stop.
    fn worse(&mut self) -> bool {
        self.bad += 1;
        self.bad > self.patience
    }
}

/// Seconds of the timed training steps (the first `warmup` steps of the run left out).
struct StepTimer {
    warmup: usize,
    done: usize,
    timed: usize,
    seconds: f64,
}

impl StepTimer {
    fn new(warmup: usize) -> Self {
        StepTimer {
            warmup,
            done: 0,
            timed: 0,
            seconds: 0.0,
        }
    }

    fn record(&mut self, seconds: f64) {
        if self.done >= self.warmup {
            self.seconds += seconds;
            self.timed += 1;
        }
        self.done += 1;
    }

    /// Mean seconds per timed step times the steps of a full epoch.
    fn seconds_per_epoch(&self, full_steps: usize) -> Result<f64> {
        if self.timed == 0 {
            return Err(Error::Internal(format!(
                "no timed step: warm-up {} of {} steps",
                self.warmup, self.done
            )));
        }
        Ok(self.seconds / self.timed as f64 * full_steps as f64)
    }
}

/// What the epoch loop carries from one epoch to the next.
struct FitState {
    stop: EarlyStopping,
    timer: StepTimer,
    /// Seconds of validation so far.
    eval_seconds: f64,
    epochs_run: usize,
    stopped_early: bool,
    /// Peak memory when the first epoch's training ended.
    train_peak: Option<f64>,
    /// The device's peak then.
    train_peak_device: Option<f64>,
}

impl FitState {
    fn new(stop: EarlyStopping, timer: StepTimer) -> Self {
        FitState {
            stop,
            timer,
            eval_seconds: 0.0,
            epochs_run: 0,
            stopped_early: false,
            train_peak: None,
            train_peak_device: None,
        }
    }
}

/// Where [`Trainer::fit`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// From the initial parameters.
    Fresh,
    /// From the checkpoint of the last completed epoch in the run directory.
    Resume,
}

/// One epoch's training: its mean loss and seconds.
struct EpochTrain {
    loss: f64,
    seconds: f64,
}

/// Where the last good parameters are, for a diverged run's message.
fn last_good(run: &RunDir) -> String {
    let best = run.file("best.safetensors");
    if best.exists() {
        format!(
            "the best checkpoint so far is {} (lower train.lr?)",
            best.display()
        )
    } else {
        "no checkpoint was written yet (lower train.lr?)".into()
    }
}

impl Trainer<'_> {
    /// The training steps of one epoch over `order` (shuffled here).
    fn train_epoch(
        &mut self,
        epoch: usize,
        run: &RunDir,
        order: &mut [usize],
        sched: Schedule,
        timer: &mut StepTimer,
    ) -> Result<EpochTrain> {
        order.shuffle(&mut self.shuffle_rng);
        let task = self.progress.task(
            &format!("epoch {epoch}"),
            Unit::Steps,
            sched.steps as u64,
            0,
        );
        let t0 = Instant::now();
        let (mut total, mut counted) = (0.0, 0usize);
        let batch = self.plan.cfg().train.batch;
        for (s, users) in order.chunks(batch).take(sched.steps).enumerate() {
            self.progress.check(|| {
                format!(
                    "training stopped at epoch {epoch}, step {} of {}; {} resumes from its last \
                 completed epoch (`iisan train --resume`) to the uninterrupted result",
                    s + 1,
                    sched.steps,
                    run.dir().display()
                )
            })?;
            let ts = Instant::now();
            let loss = self.step(users).map_err(|e| match e {
                Error::Diverged(why) => Error::Diverged(format!(
                    "{why} at epoch {epoch}, step {} of {}; {}",
                    s + 1,
                    sched.steps,
                    last_good(run)
                )),
                e => e,
            })?;
            timer.record(ts.elapsed().as_secs_f64());
            // an f16 step skipped for overflow may have no finite loss to count
            if loss.is_finite() {
                (total, counted) = (total + loss as f64, counted + 1);
            }
            task.advance(1);
            if s % 10 == 0 {
                task.message(&format!("loss {:.4}", total / counted.max(1) as f64));
            }
        }
        task.finish();
        Ok(EpochTrain {
            loss: total / counted.max(1) as f64,
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    /// Report the end of epoch `rec` (its validation selection score, if validated).
    fn report_epoch(&self, rec: &EpochRecord, score: Option<f64>, improved: bool) {
        let cfg = &self.plan.cfg();
        self.progress.epoch(&EpochEnd {
            epoch: rec.epoch,
            loss: rec.loss,
            steps: rec.steps,
            train_seconds: rec.train_seconds,
            eval_seconds: rec.eval_seconds,
            valid: score.map(|v| {
                let metric = self.plan.select().to_string();
                (metric, cfg.eval.mask.name().to_string(), v)
            }),
            improved,
        });
    }

    /// Train with early stopping, writing into `run` (from the start, or from the checkpoint
    /// of an interrupted run: [`Start::Resume`]); returns the summary (test metrics with the
    /// best validation epoch's parameters).
    pub fn fit(&mut self, run: RunDir, sched: Schedule, start: Start) -> Result<Summary> {
        let wall = Instant::now();
        let t = &self.plan.cfg().train;
        let (patience, warmup, epochs) = (t.patience, t.warmup_steps, t.epochs);
        let mut order: Vec<usize> = (0..self.data.num_users()).collect();
        let (mut st, done) = match start {
            Start::Fresh => {
                let stop = EarlyStopping::new(patience, self.model.params().snapshot()?);
                (FitState::new(stop, StepTimer::new(warmup)), 0)
            }
            Start::Resume => {
                let (st, done) = resume::read(self, &run, patience, warmup)?;
                // the data order of the epochs done, replayed from the seed
                for _ in 0..done {
                    order.shuffle(&mut self.shuffle_rng);
                }
                (st, done)
            }
        };
        if !st.stopped_early {
            for epoch in done + 1..=epochs {
                let go_on = self.epoch(epoch, &run, sched, &mut order, &mut st)?;
                st.stopped_early = !go_on;
                resume::write(self, &st, &run, epoch)?;
                if !go_on {
                    break;
                }
            }
        }
        let test = self.test_metrics(&run, &st.stop)?;
        // the item side for serving, with the parameters just restored
        let items = self
            .model
            .item_embeddings(self.plan.evaluator().item_chunk)?;
        let keys = self.model.item_keys().to_vec();
        crate::catalogue::write_base(run.dir(), &keys, &items)?;
        if self.plan.cfg().train.profile {
            let table = self.profile.table();
            self.progress
                .note(&format!("time per phase (whole run):\n{table}"));
        }
        // each step of finishing can be cut short and resumed (run::checkpoint::finish)
        let epochs_run = st.epochs_run;
        let summary = self.summary(&run, sched, st, test, wall.elapsed().as_secs_f64())?;
        checkpoint::finish(run, &summary, epochs_run)?;
        Ok(summary)
    }

    /// Train and validate epoch `epoch`; false when early stopping ends the run.
    fn epoch(
        &mut self,
        epoch: usize,
        run: &RunDir,
        sched: Schedule,
        order: &mut [usize],
        st: &mut FitState,
    ) -> Result<bool> {
        let tr = self.train_epoch(epoch, run, order, sched, &mut st.timer)?;
        if epoch == 1 {
            st.train_peak = peak_rss_mib();
            st.train_peak_device = peak_device_mib(self.model.params().device());
        }
        st.epochs_run = epoch;
        let valid = if self.plan.cfg().eval.skip {
            None
        } else {
            let v = self.evaluate(Split::Valid)?;
            checkpoint::fault("evaluation", epoch);
            self.profile.merge(&v.phases);
            st.eval_seconds += v.seconds;
            Some(v)
        };
        let rec = EpochRecord {
            epoch,
            loss: tr.loss,
            steps: sched.steps,
            train_seconds: tr.seconds,
            eval_seconds: valid.as_ref().map_or(0.0, |v| v.seconds),
            valid: valid
                .as_ref()
                .map(|v| v.metrics.clone())
                .unwrap_or_default(),
            peak_rss_mib: peak_rss_mib(),
        };
        run.append_epoch(&rec)?;
        let Some(valid) = valid else {
            self.report_epoch(&rec, None, false);
            st.stop.best_epoch = epoch;
            return Ok(true);
        };
        let score = valid
            .metrics
            .get(self.plan.cfg().eval.mask)
            .get(self.plan.select());
        let improved = st.stop.improves(score);
        self.report_epoch(&rec, Some(score), improved);
        if improved {
            let state = self.model.params().snapshot()?;
            self.model
                .params()
                .save(&run.file("best.safetensors"), Some(&state))?;
            st.stop.improved(epoch, score, state, valid.metrics);
            return Ok(true);
        }
        Ok(!st.stop.worse())
    }

    /// The run's `summary.json`.
    fn summary(
        &self,
        run: &RunDir,
        sched: Schedule,
        st: FitState,
        test: PerMask<Metrics>,
        wall_seconds: f64,
    ) -> Result<Summary> {
        let (skip, params) = (self.plan.cfg().eval.skip, self.model.params());
        let efficiency = Efficiency {
            trainable_params: params.num_trainable(),
            total_params: params.num_trainable() + self.model.tower().frozen_params(),
            seconds_per_epoch: st.timer.seconds_per_epoch(sched.full_steps)?,
            extrapolated: st.timer.timed < sched.full_steps * st.epochs_run,
            eval_seconds: if skip {
                0.0
            } else {
                st.eval_seconds / st.epochs_run as f64
            },
            peak_rss_mib: peak_rss_mib(),
            train_peak_rss_mib: st.train_peak,
            peak_device_mib: peak_device_mib(params.device()),
            train_peak_device_mib: st.train_peak_device,
            device: Some(self.plan.cfg().train.device.to_string()),
            threads: rayon::current_num_threads(),
            precision: Some(self.plan.cfg().train.precision.name().to_string()),
            skipped_steps: self.skipped_steps(),
        };
        Ok(Summary {
            method: self.plan.cfg().method_label(),
            dataset: DatasetInfo::of(self.data),
            selection_mask: self.plan.cfg().eval.mask.name().to_string(),
            select_metric: self.plan.select(),
            best_epoch: st.stop.best_epoch,
            epochs_run: st.epochs_run,
            stopped_early: st.stopped_early,
            valid: st.stop.best_valid,
            test,
            evaluated: !skip,
            efficiency,
            profile: self.profile.clone(),
            wall_seconds,
            seed: self.plan.cfg().train.seed,
            git_rev: GIT_REV.to_string(),
            run_dir: run.final_path().to_path_buf(),
        })
    }

    /// Test metrics with the best epoch's parameters (restored into the model), or, for runs
    /// that skip evaluation, none (the last parameters are saved instead).
    fn test_metrics(&mut self, run: &RunDir, stop: &EarlyStopping) -> Result<PerMask<Metrics>> {
        if self.plan.cfg().eval.skip {
            self.model
                .params()
                .save(&run.file("last.safetensors"), None)?;
            return Ok(PerMask::default());
        }
        self.model.params().restore(&stop.best_state)?;
        let test = self.evaluate(Split::Test)?;
        self.profile.merge(&test.phases);
        Ok(test.metrics)
    }
}
