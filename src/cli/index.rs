//! `iisan index ...`: the item index of a run at scale. `index synth` clones a run with a
//! catalogue grown by generated items ([`iisan::api::synth_items`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use iisan::error::Result;

/// `iisan index` subcommands.
#[derive(Subcommand)]
pub(crate) enum IndexCmd {
    /// Clone a finished run with N generated items after its real ones (drawn from a kernel
    /// density estimate of its item embeddings), to measure ranking and serving at scale.
    Synth(SynthArgs),
}

/// `iisan index synth` arguments.
#[derive(Args)]
pub(crate) struct SynthArgs {
    /// The finished run to clone.
    run: PathBuf,
    /// Items to generate.
    #[arg(long)]
    items: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 2024)]
    seed: u64,
    /// The clone's directory (new, or an earlier output of this command).
    #[arg(long)]
    out: PathBuf,
}

/// `iisan index`.
pub(crate) fn index(cmd: IndexCmd) -> Result<()> {
    match cmd {
        IndexCmd::Synth(a) => {
            let reporter = super::progress::reporter(false);
            let r = iisan::api::synth_items(&a.run, a.items, a.seed, &a.out, &reporter)?;
            println!(
                "wrote {}: {} real + {} generated items (bandwidth factor {:.4})",
                r.out.display(),
                r.real,
                r.generated,
                r.bandwidth
            );
            Ok(())
        }
    }
}
