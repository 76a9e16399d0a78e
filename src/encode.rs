//! `iisan encode`: run the frozen towers once over every item of a dataset and write the
//! per-layer [CLS] states to hidden-state cache files ([`crate::cache`]), batched, with a
//! progress bar, resumable.
//!
//! Text batches are formed from titles of similar token length (sorted within a window of
//! [`WINDOW_BATCHES`] batches) so little compute goes to padding; BERT's attention mask makes
//! each title's states independent of its batch. `--shard I/N` encodes one slice of whole
//! windows into a shard file ([`crate::cache::shard`]), forming the same batches a single run
//! forms there, so the merged shards equal a single run's cache byte for byte.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backbone::encoders::{ImageEncoder, TextEncoder};
use crate::backbone::pooling::Pooling;
use crate::cache::{
    CacheDtype, CacheHeader, CacheWriter, HiddenStateCache, Shard, ShardSpec, check_replaceable,
    items_fingerprint,
};
use crate::data::Dataset;
use crate::data::image::{Fit, ImagePrep, MissingImage, find_image};
use crate::data::text::TextPrep;
use crate::error::{Error, Result};
use crate::nn::{Ctx, TowerDType};
use crate::progress::{Reporter, Task, Unit};
use crate::provenance::TowerRecord;

/// Encoding options.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// Stored element type.
    pub dtype: CacheDtype,
    /// Items per forward pass.
    pub batch: usize,
    /// Tokens per title (paper: 30).
    pub max_tokens: usize,
    /// Image side fed to the image tower (paper: 224).
    pub image_size: usize,
    /// Missing / corrupt image policy.
    pub missing_images: MissingImage,
    /// Where the items encoded are counted, and whether to stop (between batches: the cache
    /// file resumes where it stopped).
    pub progress: Reporter,
    /// Where the towers run (docs/GPU.md), opened once for every modality of a command.
    pub device: Device,
    /// The towers' precision; the stored states are `dtype` whatever it is.
    pub tower_dtype: TowerDType,
    /// Encode only this slice of the items into a shard file (`None`: every item).
    pub shard: Option<ShardSpec>,
    /// How a text tower's token states become an item's (`None`: the family's default).
    pub pooling: Option<Pooling>,
}

/// Batches per text sorting window, and the unit shards are cut on (a window of `batch * 16`
/// items is also a whole number of image batches).
pub const WINDOW_BATCHES: usize = 16;

impl EncodeOptions {
    /// What the header's `preprocessing` adds for a tower run in half precision (nothing for
    /// f32, so caches written before the option stay up to date).
    fn precision_note(&self) -> String {
        match self.tower_dtype {
            TowerDType::F32 => String::new(),
            t => format!(", tower computed in {}", t.name()),
        }
    }

    /// The slice of `items` items this encode writes, when sharded.
    fn shard_of(&self, items: usize) -> Option<Shard> {
        self.shard
            .map(|s| Shard::plan(s, items, self.batch * WINDOW_BATCHES))
    }
}

/// The outcome of encoding one modality.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodeReport {
    /// `text` or `image`.
    pub modality: String,
    /// Items encoded in this call (resumed items excluded).
    pub encoded: usize,
    /// The slice written, when sharded.
    pub shard: Option<Shard>,
    /// Seconds spent.
    pub seconds: f64,
    /// Items per second.
    pub items_per_second: f64,
    /// Cache file size in bytes.
    pub bytes: u64,
    /// Items whose image was missing or undecodable and were zero-filled.
    pub zero_images: usize,
}

fn model_id(dir: &Path, what: String) -> String {
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{name} ({what})")
}

fn finish(
    w: CacheWriter,
    modality: &str,
    encoded: usize,
    t0: Instant,
    zero_images: usize,
) -> Result<EncodeReport> {
    let shard = w.header().shard;
    let path = w.finish()?;
    let seconds = t0.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(&path)
        .map_err(|e| Error::io(&path, e))?
        .len();
    Ok(EncodeReport {
        modality: modality.into(),
        encoded,
        shard,
        seconds,
        items_per_second: encoded as f64 / seconds.max(1e-9),
        bytes,
        zero_images,
    })
}

/// How an encode starts: nothing to do, or a writer (resumed or new) with its progress task.
enum Begin {
    UpToDate(EncodeReport),
    Write(Box<CacheWriter>, Task, Instant),
}

/// Start writing `header` to `out`, unless a finished matching cache is already there; a file
/// at `out` that is not an iisan cache is refused, not replaced.
fn begin(out: &Path, header: CacheHeader, progress: &Reporter) -> Result<Begin> {
    check_replaceable(out)?;
    if let Some(r) = up_to_date(out, &header)? {
        return Ok(Begin::UpToDate(r));
    }
    let label = header.modality.clone();
    let items = header.item_range();
    let w = CacheWriter::create_or_resume(out, header)?;
    let done = w.next_item().max(items.start) - items.start;
    let task = progress.task(&label, Unit::Items, items.len() as u64, done as u64);
    Ok(Begin::Write(Box::new(w), task, Instant::now()))
}

/// A finished cache at `out` with exactly `header`: nothing to do (reported as 0 encoded).
fn up_to_date(out: &Path, header: &CacheHeader) -> Result<Option<EncodeReport>> {
    if !out.exists() {
        return Ok(None);
    }
    match HiddenStateCache::open_file(out) {
        Ok(c) if c.header() == header => {
            let bytes = std::fs::metadata(out).map_err(|e| Error::io(out, e))?.len();
            Ok(Some(EncodeReport {
                modality: header.modality.clone(),
                encoded: 0,
                shard: header.shard,
                seconds: 0.0,
                items_per_second: 0.0,
                bytes,
                zero_images: 0,
            }))
        }
        _ => Ok(None),
    }
}

/// What an interrupted encode says: the partial file resumes.
fn stopped(out: &Path) -> String {
    format!(
        "encoding {} stopped; the same encode resumes it where it stopped",
        out.display()
    )
}

/// Encode every item's title with the text tower folder `model` into the cache file `out`.
pub fn encode_text(
    data: &Dataset,
    model: &Path,
    out: &Path,
    o: &EncodeOptions,
) -> Result<EncodeReport> {
    let dev = &o.device;
    let tower = TextEncoder::load(model, o.pooling, dev, o.tower_dtype.dtype())?;
    let prep = TextPrep::from_model_dir(model, o.max_tokens)?;
    let pooling = tower.pooling();
    let mut record = TowerRecord::of("text", model, Some(o.max_tokens), None)?;
    record.pooling = pooling.recorded();
    let header = CacheHeader {
        model: model_id(model, tower.describe()),
        modality: "text".into(),
        states: tower.num_states(),
        width: tower.width(),
        dtype: o.dtype,
        items: data.num_items(),
        items_fingerprint: items_fingerprint(data),
        preprocessing: format!(
            "{}title, max {} tokens{}{}",
            if prep.lower_cases() {
                "lower-cased "
            } else {
                ""
            },
            o.max_tokens,
            match pooling {
                Pooling::Cls => String::new(),
                p => format!(", {} pooling", p.name()),
            },
            o.precision_note()
        ),
        tower: Some(record),
        images_sha256: None,
        shard: o.shard_of(data.num_items()),
    };
    let ctx = Ctx::eval();
    let per = tower.num_states() * tower.width();
    let window = o.batch * WINDOW_BATCHES;
    let stop = header.item_range().end;
    let (mut w, pb, t0) = match begin(out, header, &o.progress)? {
        Begin::UpToDate(r) => return Ok(r),
        Begin::Write(w, pb, t0) => (*w, pb, t0),
    };
    let start = w.next_item();
    let mut id = start;
    while id < stop {
        o.progress.check(|| stopped(out))?;
        let end = (id + window).min(stop);
        let ids: Vec<usize> = (id..end).collect();
        let toks: Vec<Vec<u32>> = ids
            .iter()
            .map(|&i| prep.encode(&data.titles[i]))
            .collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&k| toks[k].len());
        let mut buf = vec![0f32; ids.len() * per];
        for chunk in order.chunks(o.batch) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&k| toks[k].as_slice()).collect();
            let states: Vec<f32> = tower
                .states(&rows, o.max_tokens, &ctx)?
                .flatten_all()?
                .to_vec1()?;
            for (r, &k) in chunk.iter().enumerate() {
                buf[k * per..(k + 1) * per].copy_from_slice(&states[r * per..(r + 1) * per]);
            }
            pb.advance(chunk.len() as u64);
        }
        w.append(&buf)?;
        id = end;
    }
    pb.finish();
    finish(w, "text", stop - start, t0, 0)
}

/// SHA-256 (hex) over every item's image file in item order: the key, then the file's bytes,
/// or a zero byte for an item without one.
fn images_fingerprint(data: &Dataset, root: &Path) -> Result<String> {
    let mut h = Sha256::new();
    for key in &data.item_keys[1..] {
        h.update(key.as_bytes());
        match find_image(root, key) {
            Some(p) => {
                h.update([1u8]);
                h.update(std::fs::read(&p).map_err(|e| Error::io(&p, e))?);
            }
            None => h.update([0u8]),
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Encode every item's image (`<dataset>/images/<key>.*`) with the image tower folder `model`
/// into the cache file `out`.
pub fn encode_images(
    data: &Dataset,
    model: &Path,
    out: &Path,
    o: &EncodeOptions,
) -> Result<EncodeReport> {
    let dev = &o.device;
    let root = data
        .root
        .clone()
        .ok_or_else(|| Error::Config("the dataset has no directory for images".into()))?;
    let tower = ImageEncoder::load(model, o.image_size, dev, o.tower_dtype.dtype())?;
    let prep = ImagePrep::from_model_dir(model, o.image_size as u32)?;
    let header = CacheHeader {
        model: model_id(model, tower.describe()),
        modality: "image".into(),
        states: tower.num_states(),
        width: tower.width(),
        dtype: o.dtype,
        items: data.num_items(),
        items_fingerprint: items_fingerprint(data),
        preprocessing: format!(
            "RGB, {} {s}x{s}, mean {:?}, std {:?}{}",
            match prep.fit {
                Fit::Bilinear => "bilinear",
                Fit::Bicubic => "bicubic",
                Fit::BicubicCrop => "bicubic shortest edge and centre crop",
            },
            prep.mean,
            prep.std,
            o.precision_note(),
            s = o.image_size
        ),
        tower: Some(TowerRecord::of("image", model, None, Some(o.image_size))?),
        images_sha256: Some(images_fingerprint(data, &root)?),
        shard: o.shard_of(data.num_items()),
    };
    let stop = header.item_range().end;
    let (mut w, pb, t0) = match begin(out, header, &o.progress)? {
        Begin::UpToDate(r) => return Ok(r),
        Begin::Write(w, pb, t0) => (*w, pb, t0),
    };
    let start = w.next_item();
    let ctx = Ctx::eval();
    let s = o.image_size;
    let mut zero = 0;
    let mut id = start;
    while id < stop {
        o.progress.check(|| stopped(out))?;
        let end = (id + o.batch).min(stop);
        let mut px = Vec::with_capacity((end - id) * 3 * s * s);
        for i in id..end {
            let key = &data.item_keys[i];
            let loaded = match find_image(&root, key) {
                Some(p) => prep.load(&p),
                None => Err(Error::file(
                    &root.join("images"),
                    format!("no image for item {key:?} (png, jpg, jpeg or webp)"),
                )),
            };
            match (loaded, o.missing_images) {
                (Ok(v), _) => px.extend(v),
                (Err(_), MissingImage::Zero) => {
                    zero += 1;
                    px.extend(std::iter::repeat_n(0f32, 3 * s * s));
                }
                (Err(e), MissingImage::Error) => return Err(e),
            }
        }
        let pixels = Tensor::from_vec(px, (end - id, 3, s, s), dev)?;
        let states: Vec<f32> = tower.states(&pixels, &ctx)?.flatten_all()?.to_vec1()?;
        w.append(&states)?;
        pb.advance((end - id) as u64);
        id = end;
    }
    pb.finish();
    finish(w, "image", stop - start, t0, zero)
}
