//! A dataset's items through the frozen towers into the hidden-state caches (`text.hsc`,
//! `image.hsc`) that cached IISAN trains on.

use std::path::PathBuf;

use super::on_compute_pool;
use crate::backbone::encoders::{ImageEncoder, TextEncoder};
use crate::backbone::pooling::Pooling;
use crate::cache::shard::cache_file;
use crate::cache::{CacheDtype, ShardSpec};
use crate::data::image::MissingImage;
use crate::data::{DataOptions, Dataset};
use crate::encode::{EncodeOptions, EncodeReport, encode_images, encode_text};
use crate::error::{Error, Result};
use crate::nn::{DeviceSpec, TowerDType};
use crate::progress::Reporter;

/// What [`encode`] does; [`EncodeJob::new`] fills in the defaults of `iisan encode`.
#[derive(Debug, Clone)]
pub struct EncodeJob {
    /// Dataset directory (items.tsv, users.tsv, images/).
    pub dataset: PathBuf,
    /// Its preprocessing (it must match the training's `data.options`).
    pub data_options: DataOptions,
    /// Hugging Face BERT folder for titles (`None`: no text cache).
    pub text_model: Option<PathBuf>,
    /// Hugging Face ViT / DINOv2 folder for images (`None`: no image cache).
    pub image_model: Option<PathBuf>,
    /// Output directory of `text.hsc` / `image.hsc` (created if missing).
    pub out: PathBuf,
    /// Stored element type (default f32).
    pub dtype: CacheDtype,
    /// Items per forward pass (default 32).
    pub batch: usize,
    /// Tokens per title (default 30, the paper's).
    pub max_tokens: usize,
    /// Image side fed to the image tower (default 224, the paper's).
    pub image_size: usize,
    /// A missing or undecodable image: an error (default) or a zero image, counted.
    pub missing_images: MissingImage,
    /// Where the towers run (default the CPU).
    pub device: DeviceSpec,
    /// The towers' precision (default f32); the cache stores `dtype` whatever it is.
    pub tower_dtype: TowerDType,
    /// How a decoder text tower's token states become an item's (`None`: the family's
    /// default; docs/MODEL.md section 2).
    pub pooling: Option<Pooling>,
    /// Encode only this slice of the items into a shard file (docs/SHARDING.md).
    pub shard: Option<ShardSpec>,
    /// Where the items encoded are reported, and whether to stop (an interrupted encode
    /// resumes where it stopped).
    pub progress: Reporter,
}

impl EncodeJob {
    /// Encode `dataset` into `out` with the defaults; set the towers to use.
    pub fn new(dataset: impl Into<PathBuf>, out: impl Into<PathBuf>) -> EncodeJob {
        EncodeJob {
            dataset: dataset.into(),
            data_options: DataOptions::default(),
            text_model: None,
            image_model: None,
            out: out.into(),
            dtype: CacheDtype::F32,
            batch: 32,
            max_tokens: 30,
            image_size: 224,
            missing_images: MissingImage::Error,
            device: DeviceSpec::Cpu,
            tower_dtype: TowerDType::F32,
            pooling: None,
            shard: None,
            progress: Reporter::silent(),
        }
    }
}

/// Run the job's towers once over every item of its dataset (text, then images) and write the
/// caches; a finished cache that matches is left alone, an interrupted one is continued.
/// Returns one report per modality.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// let mut job = iisan::api::EncodeJob::new("data/synthetic", "cache/synthetic");
/// job.text_model = Some("models/minilm".into());
/// for r in iisan::api::encode(&job)? {
///     println!("{}: {} items in {:.1} s", r.modality, r.encoded, r.seconds);
/// }
/// # Ok(())
/// # }
/// ```
pub fn encode(job: &EncodeJob) -> Result<Vec<EncodeReport>> {
    if job.text_model.is_none() && job.image_model.is_none() {
        return Err(Error::Config(
            "give --text-model and/or --image-model".into(),
        ));
    }
    if job.batch == 0 || job.max_tokens < 2 {
        return Err(Error::Config(
            "--batch must be >= 1 and --max-tokens >= 2".into(),
        ));
    }
    job.device.check_built()?;
    if let Some(m) = &job.image_model {
        // refused now, not after the whole text encode
        ImageEncoder::check(m, job.image_size)?;
    }
    if let Some(m) = &job.text_model {
        TextEncoder::check(m, job.pooling)?;
    }
    let data = Dataset::load(&job.dataset, &job.data_options)?;
    std::fs::create_dir_all(&job.out).map_err(|e| Error::io(&job.out, e))?;
    let o = EncodeOptions {
        dtype: job.dtype,
        batch: job.batch,
        max_tokens: job.max_tokens,
        image_size: job.image_size,
        missing_images: job.missing_images,
        progress: job.progress.clone(),
        device: job.device.open()?,
        tower_dtype: job.tower_dtype,
        pooling: job.pooling,
        shard: job.shard,
    };
    let file = |m: &str| cache_file(&job.out, m, job.shard);
    // on a worker of the compute pool, as training: the serial parts between products run on
    // a pool thread instead of one more thread that wakes the pool for every product
    on_compute_pool(0, || {
        let mut reports = Vec::new();
        if let Some(m) = &job.text_model {
            reports.push(encode_text(&data, m, &file("text"), &o)?);
        }
        if let Some(m) = &job.image_model {
            reports.push(encode_images(&data, m, &file("image"), &o)?);
        }
        Ok(reports)
    })
}
