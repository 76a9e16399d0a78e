//! The factory: the item tower of a configured method, over a dataset and (for IISAN) its
//! hidden-state cache.

use std::path::{Path, PathBuf};

use super::baselines::{IdTower, TunedTower, file_params};
use super::config::{Method, ModelConfig, TowersConfig};
use super::iisan::IisanTower;
use super::iisan::states::{DeviceStates, HiddenStates};
use super::live::LiveTowers;
use super::modality::TextImage;
use super::tower::ItemTower;
use crate::backbone::encoders::{
    TextEncoder, image_states, is_clip_family, is_decoder, text_states,
};
use crate::cache::{CacheHeader, HiddenStateCache, items_fingerprint};
use crate::data::Dataset;
use crate::data::image::MissingImage;
use crate::error::{Error, Result};
use crate::nn::{Engine, ParamStore};
use crate::provenance::TowerRecord;

/// Build the item tower of `mc.method` for `data`, registering its parameters in `store`.
/// `cache` is the hidden-state cache directory (`iisan encode`'s output) that `method = "iisan"`
/// reads; `engine` whether the tower runs its hand-written CPU kernels.
pub fn build_tower(
    mc: &ModelConfig,
    cache: Option<&Path>,
    engine: Engine,
    data: &Dataset,
    store: &mut ParamStore,
) -> Result<Box<dyn ItemTower>> {
    let dim = mc.user.dim;
    match mc.method {
        Method::Id => Ok(Box::new(IdTower::new(store, data.num_items(), dim)?)),
        Method::Iisan => build_cached_iisan(mc, cache.ok_or_else(no_cache)?, engine, data, store),
        Method::IisanUncached => build_uncached_iisan(mc, engine, data, store),
        Method::Fft | Method::Adapter | Method::Lora | Method::Bitfit => Ok(Box::new(
            TunedTower::new(store, &mc.towers, mc.method, data, dim)?,
        )),
    }
}

/// The IISAN tower of `method = "iisan"`, reading the hidden-state caches in `cache` (checked
/// against `data`'s items) for the modalities it needs.
fn build_cached_iisan(
    mc: &ModelConfig,
    dir: &Path,
    engine: Engine,
    data: &Dataset,
    store: &mut ParamStore,
) -> Result<Box<dyn ItemTower>> {
    let ic = &mc.iisan;
    let fp = items_fingerprint(data);
    let open = |name: &str, needed: bool| -> Result<Option<Box<dyn HiddenStates>>> {
        if !needed {
            return Ok(None);
        }
        Ok(Some(Box::new(HiddenStateCache::open_for(
            &dir.join(name),
            data.num_items(),
            &fp,
        )?)))
    };
    let (text, image) = (
        open("text.hsc", ic.modality.needs_text())?,
        open("image.hsc", ic.modality.needs_image())?,
    );
    let states = |h: &Option<Box<dyn HiddenStates>>| h.as_ref().map(|h| h.states());
    let ic = &ic.with_depths(states(&text), states(&image));
    let taps = ic.tap_plan();
    let text = on_device(text, &taps.gathered(&taps.text), data, store)?;
    let image = on_device(image, &taps.gathered(&taps.image), data, store)?;
    Ok(Box::new(IisanTower::new(
        store,
        ic,
        engine,
        text,
        image,
        mc.user.dim,
    )?))
}

/// What a model of `mc` depends on in its frozen towers, each read once: the number of hidden
/// states of each tower an IISAN model reads (`None` for a tower it does not read, and for
/// other methods), and the towers' records.
#[derive(Debug, Clone)]
pub struct TowersOf {
    /// Hidden states per tower: from the caches' headers in `cache` for `iisan`, from the tower
    /// folders' `config.json` (`num_hidden_layers + 1`) for `iisan_uncached`.
    pub states: TextImage<Option<usize>>,
    /// The frozen towers as recorded now: for `iisan`, those its caches were encoded with
    /// (caches written before towers were recorded contribute none); for the methods that run
    /// towers in the step, `model.towers`' folders with their content hashes; none for `id`.
    pub records: Vec<TowerRecord>,
}

/// The error of `method = "iisan"` without a cache directory.
fn no_cache() -> Error {
    Error::Config("method iisan needs data.cache (the directory `iisan encode` wrote)".into())
}

/// [`TowersOf`] a model of `mc` whose caches are in `cache`.
pub fn towers_of(mc: &ModelConfig, cache: Option<&Path>) -> Result<TowersOf> {
    let m = mc.iisan.modality;
    let needs = TextImage {
        text: m.needs_text(),
        image: m.needs_image(),
    };
    let mut out = TowersOf {
        states: TextImage::default(),
        records: Vec::new(),
    };
    match mc.method {
        Method::Id => {}
        Method::Iisan => {
            let dir = cache.ok_or_else(no_cache)?;
            let header = |name: &str, needed: bool| -> Result<Option<CacheHeader>> {
                needed
                    .then(|| Ok(HiddenStateCache::open(&dir.join(name))?.header().clone()))
                    .transpose()
            };
            let headers = TextImage {
                text: header("text.hsc", needs.text)?,
                image: header("image.hsc", needs.image)?,
            };
            out.states = headers.as_ref().map(|h| h.as_ref().map(|h| h.states));
            let [t, i] = headers.named().map(|(_, h)| h.and_then(|h| h.tower));
            out.records = t.into_iter().chain(i).collect();
        }
        Method::IisanUncached => {
            // the towers' own config readers, with the loaders' checks and messages
            if let (true, Some(d)) = (needs.text, &mc.towers.text_model) {
                out.states.text = Some(text_states(d)?);
            }
            if let (true, Some(d)) = (needs.image, &mc.towers.image_model) {
                out.states.image = Some(image_states(d)?);
            }
            out.records = tuned_records(&mc.towers, needs)?;
        }
        Method::Fft | Method::Adapter | Method::Lora | Method::Bitfit => {
            refuse_new_families(&mc.towers, mc.method)?;
            let all = TextImage {
                text: true,
                image: true,
            };
            out.records = tuned_records(&mc.towers, all)?;
        }
    }
    Ok(out)
}

/// On a device other than the CPU, the cache's states of `taps` uploaded there once
/// ([`DeviceStates`]); when the device cannot hold them, the memory-mapped cache, each batch's
/// states copied to the device as it is embedded (docs/GPU.md). On the CPU the cache itself.
fn on_device(
    states: Option<Box<dyn HiddenStates>>,
    taps: &[usize],
    data: &Dataset,
    store: &ParamStore,
) -> Result<Option<Box<dyn HiddenStates>>> {
    let dev = store.device();
    match states {
        Some(s) if !dev.is_cpu() && !taps.is_empty() && taps.iter().all(|&t| t < s.states()) => {
            match DeviceStates::upload(s, data.num_items(), taps, dev) {
                Ok(up) => Ok(Some(Box::new(up))),
                Err((s, e)) => {
                    eprintln!(
                        "note: the hidden states do not fit on the device ({}); each batch's \
                         states are copied there as it is embedded",
                        e.one_line()
                    );
                    Ok(Some(s))
                }
            }
        }
        s => Ok(s),
    }
}

/// The IISAN tower of `method = "iisan_uncached"`: the frozen towers of `model.towers` run in
/// the step (live states), and their parameters count as frozen.
fn build_uncached_iisan(
    mc: &ModelConfig,
    engine: Engine,
    data: &Dataset,
    store: &mut ParamStore,
) -> Result<Box<dyn ItemTower>> {
    let (ic, tc) = (&mc.iisan, &mc.towers);
    let dev = store.device().clone();
    let missing = |what: &str| {
        Error::Config(format!(
            "iisan_uncached with modality {} needs model.towers.{what}",
            ic.modality.name()
        ))
    };
    let text = tower_folder(ic.modality.needs_text(), &tc.text_model, || {
        missing("text_model")
    })?;
    let image = tower_folder(ic.modality.needs_image(), &tc.image_model, || {
        missing("image_model")
    })?;
    let live = LiveTowers::load(
        text.map(|d| (d, tc.max_tokens, tc.pooling)),
        image.map(|d| (d, tc.image_size)),
        &dev,
        tc.dtype.dtype(),
    )?;
    let mut t = live_iisan(
        mc,
        &live,
        data,
        (tc.eval_chunk, tc.missing_images),
        engine,
        store,
    )?;
    let (text_dir, image_dir) = live.dirs();
    let frozen = [text_dir, image_dir]
        .into_iter()
        .flatten()
        .map(file_params)
        .sum::<Result<usize>>()?;
    t.set_uncached(frozen);
    Ok(Box::new(t))
}

/// The IISAN tower of `mc` over the live states of `towers` for `data`'s items (`chunk` items
/// per tower forward; items without an image per `missing`): uncached IISAN, and a run's new
/// items.
pub fn live_iisan(
    mc: &ModelConfig,
    towers: &LiveTowers,
    data: &Dataset,
    (chunk, missing): (usize, MissingImage),
    engine: Engine,
    store: &mut ParamStore,
) -> Result<IisanTower> {
    let states = towers.states(data, chunk, missing)?;
    let dim = mc.user.dim;
    IisanTower::new(store, &mc.iisan, engine, states.text, states.image, dim)
}

/// The tuned baselines tune BERT-family text towers and ViT / DINOv2 image towers: a decoder
/// or CLIP-family folder is refused before any work, naming it and what it serves.
fn refuse_new_families(tc: &TowersConfig, method: Method) -> Result<()> {
    let refuse = |dir: &Path, what: &str| {
        Error::Config(format!(
            "{}: method {} tunes {what} towers only; this tower serves iisan and iisan_uncached",
            dir.display(),
            method.name()
        ))
    };
    if let Some(d) = &tc.text_model
        && is_decoder(d)?
    {
        return Err(refuse(d, "BERT-family text"));
    }
    if let Some(d) = &tc.image_model
        && is_clip_family(d)?
    {
        return Err(refuse(d, "ViT / DINOv2 image"));
    }
    Ok(())
}

/// The records of the tower folders of `tc` the model reads (`used`).
fn tuned_records(tc: &TowersConfig, used: TextImage<bool>) -> Result<Vec<TowerRecord>> {
    let mut out = Vec::new();
    if let (true, Some(dir)) = (used.text, &tc.text_model) {
        let mut r = TowerRecord::of("text", dir, Some(tc.max_tokens), None)?;
        r.pooling = TextEncoder::check(dir, tc.pooling)?.recorded();
        out.push(r);
    }
    if let (true, Some(dir)) = (used.image, &tc.image_model) {
        out.push(TowerRecord::of("image", dir, None, Some(tc.image_size))?);
    }
    Ok(out)
}

/// The folder of a tower the modality reads (`needed`), which the config must name (else the
/// error `missing` makes); `None` for a tower it does not read.
fn tower_folder(
    needed: bool,
    dir: &Option<PathBuf>,
    missing: impl FnOnce() -> Error,
) -> Result<Option<&Path>> {
    needed
        .then(|| dir.as_deref().ok_or_else(missing))
        .transpose()
}
