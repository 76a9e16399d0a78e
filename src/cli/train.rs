//! `iisan train`: load and check the configuration, the dataset and the model before a run
//! directory exists, then fit on an explicit compute thread pool.

use std::path::{Path, PathBuf};

use clap::Args;

use iisan::config::{Config, Plan};
use iisan::data::Dataset;
use iisan::error::{Error, Result};
use iisan::eval::Mask;
use iisan::model::config::Method;
use iisan::train::run_dir::Interrupted;
use iisan::train::summary::DatasetInfo;
use iisan::train::{RunDir, Start, Trainer};

/// `iisan train` arguments.
#[derive(Args)]
pub(crate) struct TrainArgs {
    /// TOML config file; omitted keys take the paper's defaults.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Override one key, e.g. `--set train.batch=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) sets: Vec<String>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Delete an interrupted run of the same name (`runs/.<name>.partial/`) and start again.
    #[arg(long, conflicts_with = "resume")]
    pub(crate) restart: bool,
    /// Continue an interrupted run from its last completed epoch, to the same result as an
    /// uninterrupted one: its partial directory (`runs/.<name>.partial`) or its name under
    /// `runs/`. Its own configuration is used (no --config or --set).
    #[arg(long, value_name = "RUN", conflicts_with_all = ["config", "sets"])]
    pub(crate) resume: Option<PathBuf>,
}

/// `iisan train`.
pub(crate) fn train(a: TrainArgs) -> Result<()> {
    if let Some(run) = &a.resume {
        let partial = partial_dir(run);
        let plan = Config::load(Some(&partial.join("config.toml")), &[])?.check()?;
        return on_compute_pool(plan.cfg.train.threads, move || {
            resume_with(&plan, &partial, a.quiet)
        });
    }
    let plan = Config::load(a.config.as_deref(), &a.sets)?.check()?;
    let interrupted = if a.restart {
        Interrupted::Restart
    } else {
        Interrupted::Refuse
    };
    on_compute_pool(plan.cfg.train.threads, move || {
        train_with(&plan, a.quiet, interrupted)
    })
}

/// Run `f` on a worker of an explicit compute thread pool of `threads` threads (0: one per
/// core), so the serial parts of a step and the parallel kernels share the same threads:
/// started from outside the pool, every parallel op would wake the pool while the calling
/// thread waited, and the pool's spinning workers would compete with the caller for the cores
/// (measured: 2 threads on 2 cores ran a training step slower than 1 thread).
pub(crate) fn on_compute_pool<T: Send>(
    threads: usize,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the compute threads: {e}")))?;
    pool.install(f)
}

/// The partial directory of `run`: the path itself if it is a directory, else
/// `runs/.<run>.partial`.
fn partial_dir(run: &Path) -> PathBuf {
    if run.is_dir() {
        return run.to_path_buf();
    }
    Path::new("runs").join(format!(".{}.partial", run.display()))
}

/// Resume the interrupted run in `partial` (its dataset must be the one it started on).
fn resume_with(plan: &Plan, partial: &Path, quiet: bool) -> Result<()> {
    let cfg = &plan.cfg;
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
    trainer.progress = !quiet;
    if !quiet {
        eprintln!("resuming {}", partial.display());
    }
    finish(trainer.fit(run, sched, Start::Resume)?, cfg)
}

fn finish(summary: iisan::train::Summary, cfg: &iisan::config::Config) -> Result<()> {
    print!(
        "{}",
        iisan::report::summary_table(std::slice::from_ref(&summary), &cfg.eval.ks, &Mask::ALL)
    );
    println!("run directory: {}", summary.run_dir.display());
    Ok(())
}

fn train_with(plan: &Plan, quiet: bool, interrupted: Interrupted) -> Result<()> {
    let plan = &plan.with_resolved_taps()?;
    let cfg = &plan.cfg;
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    let sched = plan.schedule(&data)?;
    let model = plan.build_model(&data)?;
    let towers = plan.tower_records()?;
    let run = RunDir::create(cfg, &data, interrupted)?;
    run.write_towers(&towers)?;
    let mut trainer = Trainer::new(plan, &data, &model)?;
    trainer.progress = !quiet;
    if !quiet {
        eprintln!(
            "training {} on {} ({} users, {} items): {} trainable parameters, {} threads",
            cfg.model.method.name(),
            data.name,
            data.num_users(),
            data.num_items(),
            model.params().num_trainable(),
            rayon::current_num_threads()
        );
        if matches!(cfg.model.method, Method::Iisan | Method::IisanUncached) {
            let t = cfg.model.iisan.tap_plan();
            let start = t.init.map_or("zeros".into(), |s| format!("state {s}"));
            eprintln!(
                "IISAN taps: text {:?}, image {:?}; intra paths start from {start}",
                t.text, t.image
            );
        }
    }
    finish(trainer.fit(run, sched, Start::Fresh)?, cfg)
}
