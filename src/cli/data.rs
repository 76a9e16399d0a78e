//! `iisan data ...`: dataset statistics, the synthetic default, user subsets, the cold-start
//! split.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::prep::PrepArgs;
use iisan::api::data::{self, SynthConfig, Written};
use iisan::error::{Error, Result};

#[derive(Subcommand)]
pub(crate) enum DataCmd {
    /// Print users, items, interactions, average length and repeated targets after preprocessing.
    Stats(StatsArgs),
    /// Write the embedded synthetic multimodal default dataset.
    Synth(SynthArgs),
    /// Write a fixed random subset of a dataset's users (with their items and images).
    Subset {
        /// Source dataset directory.
        #[arg(long)]
        dataset: PathBuf,
        /// Users to keep.
        #[arg(long)]
        users: usize,
        /// Sampling seed.
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Read a dataset in a public format (RecBole atomic files) into IISAN's TSV directory, with
    /// a manifest.json of sources, counts and options.
    Import {
        #[command(subcommand)]
        cmd: super::import::ImportCmd,
    },
    /// Write a dataset in a public format (RecBole atomic files), preprocessed as IISAN uses it.
    Export {
        #[command(subcommand)]
        cmd: super::import::ExportCmd,
    },
    /// Write the cold-start version of a dataset: a random fraction of the items never appears
    /// in any training input or target (docs/COLD-START.md); evaluate with
    /// `iisan eval RUN --cold-items OUT/cold_items.txt`.
    SplitCold {
        /// Source dataset directory.
        #[arg(long)]
        dataset: PathBuf,
        /// Fraction of the interacted items made cold.
        #[arg(long, default_value_t = 0.1)]
        frac: f64,
        /// Seed of the draw.
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Output directory (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
pub(crate) struct StatsArgs {
    /// Dataset directory (items.tsv + users.tsv); or give --items and --users.
    #[arg(long, conflicts_with_all = ["items", "users"])]
    pub(crate) dataset: Option<PathBuf>,
    /// Items file (`ID<TAB>title`).
    #[arg(long, requires = "users")]
    pub(crate) items: Option<PathBuf>,
    /// Users file (`user<TAB>ID ID ...`).
    #[arg(long, requires = "items")]
    pub(crate) users: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) prep: PrepArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// RNG seed.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    pub(crate) seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = SynthConfig::default().users)]
    pub(crate) users: usize,
    /// Number of items.
    #[arg(long, default_value_t = SynthConfig::default().items)]
    pub(crate) items: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = SynthConfig::default().image_size)]
    pub(crate) image_size: u32,
    /// Replace an existing different dataset at --out.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn stats(a: StatsArgs) -> Result<()> {
    let opts = a.prep.options();
    let r = match (a.dataset, a.items, a.users) {
        (Some(dir), _, _) => data::stats(&dir, &opts)?,
        (None, Some(items), Some(users)) => data::stats_of_files(&items, &users, &opts)?,
        _ => {
            return Err(Error::Config(
                "give --dataset DIR, or --items FILE and --users FILE".into(),
            ));
        }
    };
    let s = r.stats;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).expect("serialisable")
        );
    } else {
        println!("users                  {}", s.users);
        println!("items                  {}", s.items);
        println!("interactions           {}", s.interactions);
        println!("average length         {:.3}", s.avg_len);
        println!(
            "repeated test targets  {} ({:.2}% of users)",
            s.repeated_test_targets,
            100.0 * s.repeated_test_targets as f64 / s.users as f64
        );
        println!("repeated valid targets {}", s.repeated_valid_targets);
        println!("fingerprint            {}", r.fingerprint);
    }
    Ok(())
}

pub(crate) fn synth(a: SynthArgs) -> Result<()> {
    let cfg = SynthConfig {
        seed: a.seed,
        users: a.users,
        items: a.items,
        image_size: a.image_size,
        ..Default::default()
    };
    match data::synth(&cfg, &a.out, a.force)? {
        Written::Created => println!(
            "wrote synthetic dataset to {} ({} users, {} items)",
            a.out.display(),
            cfg.users,
            cfg.items
        ),
        Written::AlreadyThere => {
            println!("{} already holds this synthetic dataset", a.out.display())
        }
    }
    Ok(())
}

/// `iisan data split-cold`.
pub(crate) fn split_cold(dataset: PathBuf, frac: f64, seed: u64, out: PathBuf) -> Result<()> {
    let r = data::split_cold(&dataset, &out, frac, seed)?;
    println!(
        "wrote {}: {} of {} items cold (seed {seed}), {} interactions removed from training \
         positions, {} user lines; cold ids in {}",
        out.display(),
        r.cold_items,
        r.items,
        r.removed,
        r.users,
        out.join("cold_items.txt").display()
    );
    Ok(())
}

/// `iisan data subset`.
pub(crate) fn subset(dataset: PathBuf, users: usize, seed: u64, out: PathBuf) -> Result<()> {
    let r = data::subset(&dataset, &out, users, seed)?;
    println!(
        "wrote {}: {} users, {} items (seed {seed})",
        out.display(),
        r.users,
        r.items
    );
    Ok(())
}
