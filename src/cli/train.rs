//! `iisan train`: [`iisan::api::train`] or [`iisan::api::resume`], with bars on stderr and the
//! run's metrics table on stdout.

use std::path::PathBuf;

use clap::Args;

use iisan::api::{self, Run, TrainOptions};
use iisan::config::Config;
use iisan::error::Result;
use iisan::eval::Mask;

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
    let progress = super::progress::reporter(a.quiet);
    let run = match &a.resume {
        Some(run) => api::resume(run, &progress)?,
        None => {
            let cfg = Config::load(a.config.as_deref(), &a.sets)?;
            let opts = TrainOptions {
                restart: a.restart,
                progress,
            };
            api::train(cfg, &opts)?
        }
    };
    print_finished(&run);
    Ok(())
}

/// The metrics table of a finished run and where it is.
fn print_finished(run: &Run) {
    let summary = run.summary().expect("a trained run is finished");
    print!(
        "{}",
        iisan::report::summary_table(
            std::slice::from_ref(summary),
            &run.config().eval.ks,
            &Mask::ALL
        )
    );
    println!("run directory: {}", summary.run_dir.display());
}
