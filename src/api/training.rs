//! Training a configuration into a run directory, and resuming an interrupted one.

use std::path::{Path, PathBuf};

use super::{Run, on_compute_pool};
use crate::atomic::read_bounded;
use crate::config::{Config, Plan, check_run_name};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::config::Method;
use crate::progress::Reporter;
use crate::run::checkpoint;
use crate::run::depends::Started;
use crate::run::{DatasetInfo, Interrupted, RunDir, Summary};
use crate::train::{Start, Trainer};

/// How [`train`] runs.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Delete an interrupted run of the same name (`<run.dir>/.<name>.partial/`) and start
    /// again; without it such a run is an error saying how to resume it.
    pub restart: bool,
    /// Where the epochs' steps and ends are reported, and whether to stop.
    pub progress: Reporter,
}

/// Train `cfg` (checked first: every problem is reported before any work) into a new run
/// directory under `run.dir` on a pool of `train.threads` threads, and return the finished run.
///
/// A stop asked for through `opts.progress` ends the training at the next step with
/// [`Error::Interrupted`]; the run stays in its partial directory, and [`resume`] completes it
/// with the bits an uninterrupted run ends with.
///
/// ```
/// # fn main() -> iisan::Result<()> {
/// # let tmp = tempfile::tempdir().unwrap();
/// # let data = tmp.path().join("data");
/// # let cfg = iisan::data::synth::SynthConfig { users: 60, items: 40, ..Default::default() };
/// # iisan::data::synth::write(&cfg, &data, false)?;
/// use iisan::api::{self, TrainOptions};
/// use iisan::Config;
///
/// let sets = [
///     format!("data.dir={:?}", data.display().to_string()),
///     format!("run.dir={:?}", tmp.path().join("runs").display().to_string()),
///     "model.method=\"id\"".to_string(),
///     "train.epochs=2".to_string(),
/// ];
/// let run = api::train(Config::load(None, &sets)?, &TrainOptions::default())?;
/// let summary = run.summary().expect("a finished run has a summary");
/// assert_eq!(summary.epochs_run, 2);
/// assert_eq!(run.item_ids()?.len(), 40);
/// # Ok(())
/// # }
/// ```
pub fn train(cfg: Config, opts: &TrainOptions) -> Result<Run> {
    let plan = cfg.check()?;
    let interrupted = if opts.restart {
        Interrupted::Restart
    } else {
        Interrupted::Refuse
    };
    let threads = plan.cfg().train.threads;
    let summary = on_compute_pool(threads, || fresh(&plan, interrupted, &opts.progress))?;
    Run::open(&summary.run_dir)
}

/// Continue the interrupted run `run` from its last completed epoch, to the same result as an
/// uninterrupted run, with its own configuration; `run` is its partial directory
/// (`runs/.<name>.partial`) or its name under `runs/`.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// let run = iisan::api::resume("runs/.iisan-scientific.partial".as_ref(), &Default::default())?;
/// println!("{}", run.dir().display());
/// # Ok(())
/// # }
/// ```
pub fn resume(run: &Path, progress: &Reporter) -> Result<Run> {
    let partial = partial_dir(run)?;
    if partial.join("summary.json").is_file() {
        // the run finished and was cut short while moving into place: complete that
        let done = checkpoint::complete(RunDir::reopen(&partial)?)?;
        progress.note(&format!(
            "{} had finished; moved it into place",
            done.display()
        ));
        return Run::open(&done);
    }
    let config_path = partial.join("config.toml");
    let config = read_bounded(&config_path, 1 << 20)?;
    let plan = Config::from_text(&config, Some(&config_path), &[])?.check()?;
    let started = Started::read(&partial).map_err(|e| {
        Error::file(
            &partial,
            format!("{e}: a run without its start record cannot be resumed safely; start it again with --restart"),
        )
    })?;
    started.check(&partial, &config, plan.resolve()?.towers())?;
    let threads = plan.cfg().train.threads;
    let summary = on_compute_pool(threads, || resumed(&plan, &partial, progress))?;
    Run::open(&summary.run_dir)
}

/// The partial directory of `run`: the path itself if it is a directory, else the run named
/// `run` under `runs/` (`runs/.<run>.partial`).
pub(super) fn partial_dir(run: &Path) -> Result<PathBuf> {
    if run.is_dir() {
        return Ok(run.to_path_buf());
    }
    let name = run.to_string_lossy();
    check_run_name(&name).map_err(|e| Error::file(run, e.to_string()))?;
    let partial = Path::new("runs").join(format!(".{name}.partial"));
    if !partial.is_dir() {
        return Err(Error::file(
            run,
            format!(
                "no interrupted run of this name under runs/ (no {}): for a run under another \
                 run.dir, pass its directory, RUN_DIR/.{name}.partial",
                partial.display()
            ),
        ));
    }
    Ok(partial)
}

/// Resume the interrupted run in `partial` (its dataset must be the one it started on).
fn resumed(plan: &Plan, partial: &Path, progress: &Reporter) -> Result<Summary> {
    let cfg = &plan.cfg();
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    let path = partial.join("dataset.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let recorded: DatasetInfo = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a dataset description: {e}")))?;
    if recorded.fingerprint != data.fingerprint {
        return Err(Error::file(
            &cfg.data.dir,
            format!(
                "the dataset changed since {} started (fingerprint {})",
                partial.display(),
                data.fingerprint
            ),
        ));
    }
    let sched = plan.schedule(&data)?;
    let model = plan.build_model(&data)?;
    let run = RunDir::reopen(partial)?;
    let mut trainer = Trainer::new(plan, &data, &model)?;
    trainer.progress = progress.clone();
    progress.note(&format!("resuming {}", partial.display()));
    trainer.fit(run, sched, Start::Resume)
}

/// Train `plan` from the start.
fn fresh(plan: &Plan, interrupted: Interrupted, progress: &Reporter) -> Result<Summary> {
    let plan = &plan.resolve()?;
    let cfg = &plan.cfg();
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    let sched = plan.schedule(&data)?;
    let model = plan.build_model(&data)?;
    let run = RunDir::create(cfg, &data, interrupted)?;
    run.write_towers(plan.towers())?;
    let started = Started {
        config: cfg.to_toml(),
        towers: plan.towers().to_vec(),
    };
    started.write(run.dir())?;
    let mut trainer = Trainer::new(plan, &data, &model)?;
    trainer.progress = progress.clone();
    progress.note(&format!(
        "training {} on {} ({} users, {} items): {} trainable parameters, {} threads",
        cfg.model.method.name(),
        data.name,
        data.num_users(),
        data.num_items(),
        model.params().num_trainable(),
        rayon::current_num_threads()
    ));
    if matches!(cfg.model.method, Method::Iisan | Method::IisanUncached) {
        let t = cfg.model.iisan.tap_plan();
        let start = t.init.map_or("zeros".into(), |s| format!("state {s}"));
        progress.note(&format!(
            "IISAN taps: text {:?}, image {:?}; intra paths start from {start}",
            t.text, t.image
        ));
    }
    trainer.fit(run, sched, Start::Fresh)
}
