//! Training a configuration into a run directory, and resuming an interrupted one.

use std::path::{Path, PathBuf};

use super::{Run, on_compute_pool};
use crate::config::{Config, Plan};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::config::Method;
use crate::progress::Reporter;
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
    let partial = partial_dir(run);
    let plan = Config::load(Some(&partial.join("config.toml")), &[])?.check()?;
    let threads = plan.cfg().train.threads;
    let summary = on_compute_pool(threads, || resumed(&plan, &partial, progress))?;
    Run::open(&summary.run_dir)
}

/// The partial directory of `run`: the path itself if it is a directory, else
/// `runs/.<run>.partial`.
pub(super) fn partial_dir(run: &Path) -> PathBuf {
    if run.is_dir() {
        return run.to_path_buf();
    }
    Path::new("runs").join(format!(".{}.partial", run.display()))
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
