//! The `iisan` command line: one call into the library per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use iisan::config::Config;
use iisan::data::synth::{self, SynthConfig, Written};
use iisan::data::{DataOptions, Dataset, MissingTitle};
use iisan::error::{Error, Result};
use iisan::train::{RunDir, Trainer};

/// IISAN: efficient adaptation of frozen multimodal foundation models to sequential recommendation.
#[derive(Parser)]
#[command(name = "iisan", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Dataset tools.
    Data {
        #[command(subcommand)]
        cmd: DataCmd,
    },
    /// Train a model from a TOML config (defaults = the paper's settings).
    Train(TrainArgs),
}

#[derive(Subcommand)]
enum DataCmd {
    /// Print users, items, interactions, average length and repeated targets after preprocessing.
    Stats(StatsArgs),
    /// Write the embedded synthetic multimodal default dataset.
    Synth(SynthArgs),
}

#[derive(Args)]
struct StatsArgs {
    /// Dataset directory (items.tsv + users.tsv); or give --items and --users.
    #[arg(long, conflicts_with_all = ["items", "users"])]
    dataset: Option<PathBuf>,
    /// Items file (`ID<TAB>title`).
    #[arg(long, requires = "users")]
    items: Option<PathBuf>,
    /// Users file (`user<TAB>ID ID ...`).
    #[arg(long, requires = "items")]
    users: Option<PathBuf>,
    /// Users with fewer interactions are dropped.
    #[arg(long, default_value_t = 5)]
    min_seq_len: usize,
    /// User-encoder positions; each user keeps its last max_seq_len + 3 interactions.
    #[arg(long, default_value_t = 10)]
    max_seq_len: usize,
    /// Keep items without a title (with an empty text) instead of failing.
    #[arg(long)]
    keep_missing_titles: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SynthArgs {
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// RNG seed.
    #[arg(long, default_value_t = SynthConfig::default().seed)]
    seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = SynthConfig::default().users)]
    users: usize,
    /// Number of items.
    #[arg(long, default_value_t = SynthConfig::default().items)]
    items: usize,
    /// Image side in pixels.
    #[arg(long, default_value_t = SynthConfig::default().image_size)]
    image_size: u32,
    /// Replace an existing different dataset at --out.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// TOML config file; omitted keys take the paper's defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. `--set train.batch=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// No progress bars or per-epoch lines.
    #[arg(long)]
    quiet: bool,
}

fn stats(a: StatsArgs) -> Result<()> {
    let opts = DataOptions {
        min_seq_len: a.min_seq_len,
        max_seq_len: a.max_seq_len,
        missing_title: if a.keep_missing_titles {
            MissingTitle::Empty
        } else {
            MissingTitle::Error
        },
    };
    let data = match (a.dataset, a.items, a.users) {
        (Some(dir), _, _) => Dataset::load(&dir, &opts)?,
        (None, Some(items), Some(users)) => Dataset::from_files(&items, &users, &opts)?,
        _ => {
            return Err(Error::Config(
                "give --dataset DIR, or --items FILE and --users FILE".into(),
            ));
        }
    };
    let s = data.stats();
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
        println!("fingerprint            {}", data.fingerprint);
    }
    Ok(())
}

fn synth_cmd(a: SynthArgs) -> Result<()> {
    let cfg = SynthConfig {
        seed: a.seed,
        users: a.users,
        items: a.items,
        image_size: a.image_size,
        ..Default::default()
    };
    if cfg.users == 0 || cfg.items < 2 || cfg.image_size < 8 {
        return Err(Error::Config(
            "synth needs --users >= 1, --items >= 2, --image-size >= 8".into(),
        ));
    }
    match synth::write(&cfg, &a.out, a.force)? {
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

fn train(a: TrainArgs) -> Result<()> {
    let cfg = Config::load(a.config.as_deref(), &a.sets)?;
    if cfg.train.threads > 0 {
        // SAFETY: set before any compute thread pool exists; nothing else reads the environment
        // concurrently at this point of a single-threaded start-up.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", cfg.train.threads.to_string()) };
    }
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    let run = RunDir::create(&cfg, &data)?;
    let mut trainer = Trainer::new(&cfg, &data)?;
    trainer.progress = !a.quiet;
    if !a.quiet {
        eprintln!(
            "training {} on {} ({} users, {} items): {} trainable parameters, {} threads",
            cfg.model.method.name(),
            data.name,
            data.num_users(),
            data.num_items(),
            trainer.params().num_trainable(),
            candle_core::utils::get_num_threads()
        );
    }
    let summary = trainer.fit(run)?;
    print!(
        "{}",
        iisan::report::summary_table(std::slice::from_ref(&summary), &cfg.eval.ks)
    );
    println!("run directory: {}", summary.run_dir.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Data {
            cmd: DataCmd::Stats(a),
        } => stats(a),
        Cmd::Data {
            cmd: DataCmd::Synth(a),
        } => synth_cmd(a),
        Cmd::Train(a) => train(a),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if std::env::var_os("IISAN_DEBUG").is_some() {
                eprintln!("{e:?}");
            }
            eprintln!("error: {}", e.one_line());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
