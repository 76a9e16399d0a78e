//! `iisan index ...`: a run's catalogue at scale. `index build` builds its ANN index
//! ([`iisan::api::build_index`]), `index compact` folds the items added since into its base
//! ([`iisan::api::compact_items`]), `index synth` clones a run with a catalogue grown by
//! generated items ([`iisan::api::synth_items`]).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use iisan::api::{AnnParams, Storage};
use iisan::error::Result;

/// `iisan index` subcommands.
#[derive(Subcommand)]
pub(crate) enum IndexCmd {
    /// Build the run's approximate nearest-neighbour index over every item, so that
    /// recommend, eval and serve rank millions of items in about a millisecond (--exact
    /// still ranks every item).
    Build(BuildArgs),
    /// Fold the items added since the catalogue was written into its memory-mapped base, and
    /// insert them into the ANN index.
    Compact(CompactArgs),
    /// Clone a finished run with N generated items after its real ones (drawn from a kernel
    /// density estimate of its item embeddings), to measure ranking and serving at scale.
    Synth(SynthArgs),
}

/// `iisan index build` arguments (defaults measured in BENCHMARKS.md, "The ANN index").
#[derive(Args)]
pub(crate) struct BuildArgs {
    /// The finished run.
    run: PathBuf,
    /// Lists the items are partitioned into (0: the power of two nearest 4 sqrt(items),
    /// 4,096 at a million items).
    #[arg(long, default_value_t = AnnParams::default().lists)]
    lists: usize,
    /// Lists scanned per query by default: more find more of the exact top items, slower.
    #[arg(long, default_value_t = AnnParams::default().probes)]
    probes: usize,
    /// Candidates per query re-scored exactly (at least k are).
    #[arg(long, default_value_t = AnnParams::default().candidates)]
    candidates: usize,
    /// Vector storage in the index (candidates are re-scored from the f32 rows either way).
    #[arg(long, value_enum, default_value_t = Storage::F16)]
    storage: Storage,
    /// Threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

/// `iisan index compact` arguments.
#[derive(Args)]
pub(crate) struct CompactArgs {
    /// The finished run.
    run: PathBuf,
    /// Threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
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
        IndexCmd::Build(a) => {
            let params = AnnParams {
                lists: a.lists,
                probes: a.probes,
                candidates: a.candidates,
                storage: a.storage,
            };
            let reporter = super::progress::reporter(false);
            let r = iisan::api::build_index(&a.run, &params, a.threads, &reporter)?;
            println!(
                "indexed {} items in {} lists in {:.1} s ({:.1} MiB)",
                r.items,
                r.lists,
                r.seconds,
                r.bytes as f64 / (1 << 20) as f64
            );
            Ok(())
        }
        IndexCmd::Compact(a) => {
            let reporter = super::progress::reporter(false);
            let r = iisan::api::compact_items(&a.run, a.threads, &reporter)?;
            println!(
                "{} items: {} folded into the base, {} added to the ANN index",
                r.items, r.folded, r.indexed
            );
            Ok(())
        }
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
