//! The `iisan` command line: one call into the library per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::data::DataCmd;
use cli::encode::{CacheCmd, EncodeArgs, ModelsCmd};
use cli::eval::EvalArgs;
use cli::items::ItemsCmd;
use cli::recommend::RecommendArgs;
use cli::serve::ServeArgs;
use cli::train::TrainArgs;

/// mimalloc instead of glibc malloc: candle allocates a fresh buffer per tensor op, and glibc
/// serves the ~1 MiB ones with mmap, so every op paid page faults (measured: 9.6 s of system
/// time in a 31 s IISAN run).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Model folders: import DINOv2 from ONNX; random-weight folders of published layouts.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Run the frozen towers once over every item and write the hidden-state caches.
    Encode(EncodeArgs),
    /// Print the metrics table of finished runs side by side, or (--html) write their report:
    /// one HTML page of settings, metrics, training curves, efficiency and breakdowns.
    Report {
        /// Run directories (each holding summary.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Cut-offs K to show (must be among each run's eval.ks).
        #[arg(long, value_delimiter = ',', default_value = "10")]
        ks: Vec<usize>,
        /// Write the runs' report as one self-contained HTML page here instead of printing
        /// the table: settings, metrics, training curves, efficiency and breakdowns with charts.
        #[arg(long, value_name = "OUT.html")]
        html: Option<PathBuf>,
        #[command(flatten)]
        page: cli::report::PageArgs,
    },
    /// The efficiency comparison of finished runs (HR@10, NDCG@10, trainable parameters,
    /// s/epoch, peak memory, TPME) as Markdown, CSV, JSON and bar charts.
    Compare {
        /// Run directories (each holding summary.json).
        #[arg(long, num_args = 1.., required = true)]
        runs: Vec<PathBuf>,
        /// Where to write compare.{md,csv,json}, {time,memory,params,tpme}.svg and report.html.
        #[arg(long, default_value = "runs/compare")]
        out: PathBuf,
        #[command(flatten)]
        page: cli::report::PageArgs,
    },
    /// Re-evaluate a finished run's best checkpoint on the test split and print the report
    /// table (run from the directory the run was trained in: its config's paths are relative).
    Eval(EvalArgs),
    /// The top-K items for a history from a finished run (no tower runs: the run's item matrix).
    Recommend(RecommendArgs),
    /// Items of a trained run: add items it has never seen (no retraining).
    Items {
        #[command(subcommand)]
        cmd: ItemsCmd,
    },
    /// The item index of a run at scale: a clone with millions of generated items (`synth`).
    Index {
        #[command(subcommand)]
        cmd: cli::index::IndexCmd,
    },
    /// Serve a finished run over HTTP: recommend, add items, reload, health, info, metrics.
    Serve(ServeArgs),
    /// Check the device path (a GPU, or autograd on the CPU) against the CPU kernels: loss,
    /// gradients and Adam steps on a configuration's first batches, and the frozen towers.
    CheckDevice(cli::check_device::CheckDeviceArgs),
    /// Hidden-state caches: merge the shards of a sharded encode; print a file's header.
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
    /// Check a hidden-state cache file and print its header (the same as `cache info`).
    #[command(hide = true)]
    CacheInfo {
        /// The cache file (e.g. cache/text.hsc).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Data {
            cmd: DataCmd::Stats(a),
        } => cli::data::stats(a),
        Cmd::Data {
            cmd: DataCmd::Synth(a),
        } => cli::data::synth(a),
        Cmd::Data {
            cmd:
                DataCmd::Subset {
                    dataset,
                    users,
                    seed,
                    out,
                },
        } => cli::data::subset(dataset, users, seed, out),
        Cmd::Data {
            cmd:
                DataCmd::SplitCold {
                    dataset,
                    frac,
                    seed,
                    out,
                },
        } => cli::data::split_cold(dataset, frac, seed, out),
        Cmd::Data {
            cmd: DataCmd::Import { cmd },
        } => cli::import::import(cmd),
        Cmd::Data {
            cmd: DataCmd::Export { cmd },
        } => cli::import::export(cmd),
        Cmd::Train(a) => cli::train::train(a),
        Cmd::Models {
            cmd: ModelsCmd::ImportOnnx { onnx, out, heads },
        } => cli::encode::import_onnx(onnx, out, heads),
        Cmd::Models {
            cmd:
                ModelsCmd::Random {
                    layout,
                    out,
                    seed,
                    tokenizer_from,
                },
        } => cli::encode::random_tower(layout, out, seed, tokenizer_from),
        Cmd::Encode(a) => cli::encode::encode(a),
        Cmd::CacheInfo { file }
        | Cmd::Cache {
            cmd: CacheCmd::Info { file },
        } => cli::encode::cache_info(file),
        Cmd::Cache {
            cmd: CacheCmd::Merge { dir },
        } => cli::encode::cache_merge(dir),
        Cmd::Recommend(a) => cli::recommend::recommend(a),
        Cmd::Items { cmd } => cli::items::items(cmd),
        Cmd::Index { cmd } => cli::index::index(cmd),
        Cmd::Serve(a) => cli::serve::serve(a),
        Cmd::Report {
            runs,
            ks,
            html,
            page,
        } => cli::report::report(runs, ks, html, page),
        Cmd::Compare { runs, out, page } => cli::report::compare_runs(runs, out, page),
        Cmd::Eval(a) => cli::eval::eval(a),
        Cmd::CheckDevice(a) => cli::check_device::check_device(a),
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
