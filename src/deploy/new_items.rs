//! Items a trained run has never seen, embedded without retraining, by the run's item tower
//! built through the model's factory over the towers the run recorded (`towers.json`, content
//! hashes checked): IISAN runs those frozen towers (loaded once, [`LiveTowers`]) on the new
//! titles and images and the trained side network on their states; the tuned baselines (FFT,
//! Adapter, LoRA, BitFit) run their tuned towers. An ID model has nothing to compute a new item's embedding from and is
//! refused. The embeddings are appended to the run's catalogue ([`Catalogue::append`]: its
//! append-only segment), so `recommend` and the server rank the new items at once.
//!
//! Cached IISAN read its training states from the hidden-state cache; new items' states come
//! from the same tower folder computed in f32, so with an f16 cache an added copy of an
//! existing item differs from it by the cache's rounding (about 1e-3 relative).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::backbone::pooling::Pooling;
use crate::catalogue::{Catalogue, check_keys};
use crate::config::Plan;
use crate::data::image::{MissingImage, decode_bytes};
use crate::data::{Dataset, MissingTitle};
use crate::error::{Error, Result};
use crate::model::factory::{build_tower, live_iisan};
use crate::model::live::LiveTowers;
use crate::model::{ItemTower, Kernels, Method};
use crate::nn::{Ctx, Engine, ParamStore};
use crate::provenance::TowerRecord;
use crate::run::finished::{best_checkpoint, read_plan, read_towers};

/// One item to add: its id, its title, and its image file's bytes (PNG, JPEG or WebP).
#[derive(Debug, Clone)]
pub struct NewItem {
    /// External id (unique in the catalogue, no white space).
    pub key: String,
    /// Title.
    pub title: String,
    /// Encoded image, if the item has one.
    pub image: Option<Vec<u8>>,
}

/// A run's item side ready to embed new items: configuration, checkpoint, and (for IISAN) the
/// frozen towers loaded once.
pub struct ItemEmbedder {
    plan: Plan,
    checkpoint: PathBuf,
    text: Option<TowerRecord>,
    image: Option<TowerRecord>,
    /// IISAN's frozen towers, loaded once.
    live: Option<LiveTowers>,
    /// Items without an image (when the towers read images): an error, or a zero image.
    pub missing_images: MissingImage,
}

/// Items per tower forward.
const CHUNK: usize = 32;

impl ItemEmbedder {
    /// Open run directory `run`: refuse the ID method, check that every tower the model reads
    /// is recorded and unchanged, and load IISAN's frozen towers.
    pub fn open(run: &Path) -> Result<ItemEmbedder> {
        let plan = read_plan(run)?;
        let mc = &plan.cfg().model;
        let (need_text, need_image) = match mc.method {
            Method::Id => {
                return Err(Error::file(
                    run,
                    "the id method cannot embed new items: its item embeddings are rows \
                     learnt for the training items, with nothing to compute a new item's from \
                     (IISAN and the tuned baselines embed an item from its title and image)",
                ));
            }
            Method::Iisan | Method::IisanUncached => (
                mc.iisan.modality.needs_text(),
                mc.iisan.modality.needs_image(),
            ),
            _ => (
                mc.towers.text_model.is_some(),
                mc.towers.image_model.is_some(),
            ),
        };
        let towers = read_towers(run)?;
        let find = |modality: &str, needed: bool| -> Result<Option<TowerRecord>> {
            if !needed {
                return Ok(None);
            }
            let rec = towers.iter().find(|t| t.modality == modality).ok_or_else(|| {
                Error::file(
                    &run.join("towers.json"),
                    format!(
                        "no {modality} tower recorded (its cache was encoded before towers were \
                         recorded: encode again and retrain)"
                    ),
                )
            })?;
            rec.verify(&format!("the run {}", run.display()))?;
            Ok(Some(rec.clone()))
        };
        let text = find("text", need_text)?;
        let image = find("image", need_image)?;
        let iisan = matches!(mc.method, Method::Iisan | Method::IisanUncached);
        let pooling = text
            .as_ref()
            .and_then(|t| t.pooling.as_deref())
            .map(Pooling::parse)
            .transpose()?;
        let live = iisan
            .then(|| {
                LiveTowers::load(
                    text.as_ref()
                        .map(|t| (t.path.as_path(), t.max_tokens.unwrap_or(30), pooling)),
                    image.as_ref().map(|t| (t.path.as_path(), image_size(t))),
                    &Device::Cpu,
                    DType::F32,
                )
            })
            .transpose()?;
        let missing_images = plan.cfg().model.towers.missing_images;
        Ok(ItemEmbedder {
            checkpoint: run.join(best_checkpoint(run)?),
            plan,
            text,
            image,
            live,
            missing_images,
        })
    }

    /// The run's method.
    pub fn method(&self) -> Method {
        self.plan.cfg().model.method
    }

    /// The towers the new items go through.
    pub fn towers(&self) -> Vec<&TowerRecord> {
        self.text.iter().chain(&self.image).collect()
    }

    /// Embeddings `[items.len(), d]` of `items`, in evaluation mode with the run's best
    /// parameters. An empty title (unless the run's data allowed them) or a missing or
    /// undecodable image (unless `missing_images` is zero) is an error naming the item.
    pub fn embed(&self, items: &[NewItem]) -> Result<Tensor> {
        self.check(items)?;
        let scratch = tempfile::tempdir().map_err(|e| Error::io(&std::env::temp_dir(), e))?;
        let data = self.scratch_dataset(items, scratch.path())?;
        let mut store = ParamStore::new(0, Device::Cpu);
        let tower = self.tower(&data, &mut store)?;
        store.load(&self.checkpoint)?;
        let all = tower.embed_all(items.len(), CHUNK, &Ctx::eval())?;
        Ok(all.narrow(0, 1, items.len())?)
    }

    /// Refuse items this run cannot embed (ids, empty titles, images missing or present
    /// where the run's towers want otherwise) before any tower runs.
    pub fn check(&self, items: &[NewItem]) -> Result<()> {
        let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
        check_keys(&keys, |_| false)?;
        let titles_allowed = self.plan.cfg().data.options.missing_title == MissingTitle::Empty;
        for it in items {
            if self.text.is_some() && it.title.trim().is_empty() && !titles_allowed {
                return Err(Error::Input(format!("item {}: empty title", it.key)));
            }
            if self.image.is_none() {
                continue;
            }
            match &it.image {
                None if self.missing_images == MissingImage::Error => {
                    return Err(Error::Input(format!(
                        "item {}: no image (the run's model reads images; a zero image is used \
                         only with missing images = zero)",
                        it.key
                    )));
                }
                Some(b) if decode_bytes(b).is_err() => {
                    return Err(Error::Input(format!(
                        "item {}: the image is not a decodable PNG, JPEG or WebP of at most 40 million pixels",
                        it.key
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// A catalogue-only dataset of `items` under `dir` (keys `1..=n`, images written to
    /// `dir/images/<row>.<ext>`), which the towers' input readers take.
    fn scratch_dataset(&self, items: &[NewItem], dir: &Path) -> Result<Dataset> {
        let images = dir.join("images");
        std::fs::create_dir_all(&images).map_err(|e| Error::io(&images, e))?;
        let mut keys = vec!["<pad>".to_string()];
        for (i, it) in items.iter().enumerate() {
            let key = (i + 1).to_string();
            if let (Some(b), Some(_)) = (&it.image, &self.image) {
                let ext = image::guess_format(b)
                    .ok()
                    .and_then(|f| f.extensions_str().first().copied())
                    .unwrap_or("png");
                let ext = if ext == "jpeg" { "jpg" } else { ext };
                let p = images.join(format!("{key}.{ext}"));
                std::fs::write(&p, b).map_err(|e| Error::io(&p, e))?;
            }
            keys.push(key);
        }
        let n = items.len();
        Ok(Dataset {
            name: "new items".into(),
            item_keys: keys,
            titles: std::iter::once(String::new())
                .chain(items.iter().map(|i| i.title.clone()))
                .collect(),
            user_keys: Vec::new(),
            sequences: Vec::new(),
            max_seq_len: self.plan.cfg().data.options.max_seq_len,
            pop: vec![1.0; n + 1],
            fingerprint: String::new(),
            root: Some(dir.to_path_buf()),
        })
    }

    /// The run's item tower over `data`, its parameters registered in `store`: through the
    /// model's factory, over the recorded towers (IISAN: the frozen towers loaded at open).
    fn tower(&self, data: &Dataset, store: &mut ParamStore) -> Result<Box<dyn ItemTower>> {
        let cfg = &self.plan.cfg();
        let engine = Engine::choose(cfg.train.kernels == Kernels::Cpu, store.device());
        let mut mc = cfg.model.clone();
        match &self.live {
            Some(live) => {
                let chunk = (CHUNK, self.missing_images);
                Ok(Box::new(live_iisan(&mc, live, data, chunk, engine, store)?))
            }
            None => {
                mc.towers.text_model = self.text.as_ref().map(|t| t.path.clone());
                mc.towers.image_model = self.image.as_ref().map(|t| t.path.clone());
                build_tower(&mc, None, engine, data, store)
            }
        }
    }
}

fn image_size(rec: &TowerRecord) -> usize {
    rec.image_size.unwrap_or(224)
}

/// The items of an items file (`ID<TAB>title` per line, the dataset format) with their
/// images from `images` (`<ID>.png|jpg|jpeg|webp`), if given.
pub fn read_new_items(items: &Path, images: Option<&Path>) -> Result<Vec<NewItem>> {
    let raw = crate::data::tsv::read_items(items)?;
    let mut out = Vec::with_capacity(raw.items.len());
    for r in &raw.items {
        let image = match images.and_then(|d| crate::data::image::find_image_in(d, &r.key)) {
            Some(p) => Some(std::fs::read(&p).map_err(|e| Error::io(&p, e))?),
            None => None,
        };
        out.push(NewItem {
            key: r.key.clone(),
            title: r.title.clone(),
            image,
        });
    }
    Ok(out)
}

/// Embed `items` with the run `run`'s model and append them to its catalogue `catalogue`;
/// returns the catalogue with them.
pub fn add_items(
    run: &Path,
    catalogue: &Catalogue,
    embedder: &ItemEmbedder,
    items: &[NewItem],
) -> Result<Catalogue> {
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    // refuse known ids before the towers run (the append checks again, under its lock)
    catalogue.check_new_keys(&keys)?;
    let rows = embedder.embed(items)?.flatten_all()?.to_vec1::<f32>()?;
    catalogue.append(run, &keys, &rows)
}
