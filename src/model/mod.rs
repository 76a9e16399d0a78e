//! Models: item towers (one per method) and the SASRec user encoder they share.
//!
//! The trainer knows only [`ItemTower`] ("embed these items"); methods differ only in the tower.

pub mod affine_chain;
pub mod causal_attention;
pub mod gelu;
pub mod id_tower;
pub mod iisan;
pub mod kernels;
pub mod layers;
pub mod params;
pub mod peft;
pub mod san;
pub mod san_kernel;
pub mod states;
pub mod tower_inputs;
pub mod tuned_tower;
pub mod user_encoder;
pub mod user_kernel;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

pub use id_tower::IdTower;
pub use layers::Ctx;
pub use params::{Init, Param, ParamStore};
pub use user_encoder::{UserEncoder, UserEncoderConfig};

use crate::cache::HiddenStateCache;
use crate::config::Config;
use crate::data::Dataset;
use crate::efficiency::Profile;
use crate::encode::items_fingerprint;
use crate::error::{Error, Result};
pub use iisan::{IisanConfig, IisanTower};
use states::HiddenStates;

/// The item-embedding method being trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Item-ID embedding table: the classic SASRec baseline.
    Id,
    /// IISAN side network over the hidden-state cache.
    Iisan,
    /// IISAN with the frozen towers run in every step instead of read from the cache.
    #[serde(alias = "iisan-uncached")]
    IisanUncached,
    /// Full fine-tuning of the towers.
    Fft,
    /// Houlsby adapters in the towers.
    Adapter,
    /// LoRA on the towers' query and value.
    Lora,
    /// The towers' biases trainable.
    Bitfit,
}

impl Method {
    /// The method's config name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Id => "id",
            Method::Iisan => "iisan",
            Method::IisanUncached => "iisan_uncached",
            Method::Fft => "fft",
            Method::Adapter => "adapter",
            Method::Lora => "lora",
            Method::Bitfit => "bitfit",
        }
    }
}

/// The hand-written backward of a [`FusedEmbedding`]: given d loss / d embeddings, insert every
/// tower parameter's gradient into the store.
pub type TowerBackward = Box<dyn FnOnce(&Tensor, &mut GradStore, &mut Profile) -> Result<()>>;

/// Training-mode embeddings computed outside candle's autograd, with their own backward.
pub struct FusedEmbedding {
    /// `[ids.len(), d]`, not attached to any graph.
    pub emb: Tensor,
    /// Gradients of the tower's parameters from the embeddings' gradient.
    pub backward: TowerBackward,
}

/// Something that turns item ids into item embeddings of width `dim()`.
pub trait ItemTower {
    /// The method this tower implements.
    fn method(&self) -> Method;

    /// Embedding width d.
    fn dim(&self) -> usize;

    /// Embeddings `[ids.len(), d]` of real items (`ids` non-empty, each in `1..=N`, no repeats
    /// needed: the trainer de-duplicates).
    fn embed(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor>;

    /// Training-mode embeddings with a hand-written backward, for towers that have one
    /// (`None`: the trainer differentiates [`ItemTower::embed`] with autograd). Time spent is
    /// charged to `prof`.
    fn embed_fused(&self, ids: &[u32], prof: &mut Profile) -> Result<Option<FusedEmbedding>> {
        let _ = (ids, prof);
        Ok(None)
    }

    /// Embeddings `[N + 1, d]` of every item, row 0 (padding) zero, computed `chunk` items at a
    /// time in evaluation mode.
    fn embed_all(&self, num_items: usize, chunk: usize, ctx: &Ctx) -> Result<Tensor> {
        let dev = self.device();
        let mut parts = vec![Tensor::zeros((1, self.dim()), DType::F32, &dev)?];
        let ids: Vec<u32> = (1..=num_items as u32).collect();
        for c in ids.chunks(self.eval_chunk(chunk).max(1)) {
            parts.push(self.embed_eval(c, ctx)?);
        }
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Evaluation-mode embeddings of `ids`, attached to no graph; towers with a faster
    /// inference path override it.
    fn embed_eval(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor> {
        Ok(self.embed(ids, ctx)?.detach())
    }

    /// Items per evaluation chunk, given the configured `chunk` (`eval.item_chunk`); towers
    /// whose per-item activations are large bound it.
    fn eval_chunk(&self, chunk: usize) -> usize {
        chunk
    }

    /// The device the tower computes on.
    fn device(&self) -> candle_core::Device;

    /// Frozen (pretrained, not trained) parameters the tower computes with.
    fn frozen_params(&self) -> usize {
        0
    }
}

/// Build the item tower of `cfg.model.method` for `data`, registering its parameters in `store`.
pub fn build_tower(
    cfg: &Config,
    data: &Dataset,
    store: &mut ParamStore,
) -> Result<Box<dyn ItemTower>> {
    let dim = cfg.model.user.dim;
    match cfg.model.method {
        Method::Id => Ok(Box::new(IdTower::new(store, data.num_items(), dim)?)),
        Method::Iisan => {
            let ic = &cfg.model.iisan;
            let dir = cfg.data.cache.as_ref().ok_or_else(|| {
                Error::Config(
                    "method iisan needs data.cache (the directory `iisan encode` wrote)".into(),
                )
            })?;
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
            let text = open("text.hsc", ic.modality.needs_text())?;
            let image = open("image.hsc", ic.modality.needs_image())?;
            Ok(Box::new(IisanTower::new(store, ic, text, image, dim)?))
        }
        Method::IisanUncached => {
            let (ic, tc) = (&cfg.model.iisan, &cfg.model.towers);
            let dev = store.device().clone();
            let missing = |what: &str| {
                Error::Config(format!(
                    "iisan_uncached with modality {} needs model.towers.{what}",
                    ic.modality.name()
                ))
            };
            let text: Option<Box<dyn HiddenStates>> = if ic.modality.needs_text() {
                let dir = tc
                    .text_model
                    .as_ref()
                    .ok_or_else(|| missing("text_model"))?;
                Some(Box::new(states::LiveText {
                    bert: crate::backbone::bert::Bert::load(dir, &dev)?,
                    tokens: tower_inputs::ItemTokens::new(data, dir, tc.max_tokens)?,
                    chunk: tc.eval_chunk,
                }))
            } else {
                None
            };
            let image: Option<Box<dyn HiddenStates>> = if ic.modality.needs_image() {
                let dir = tc
                    .image_model
                    .as_ref()
                    .ok_or_else(|| missing("image_model"))?;
                Some(Box::new(states::LiveImage {
                    vit: crate::backbone::vit::Vit::load(dir, tc.image_size, &dev)?,
                    images: tower_inputs::ItemImages::new(
                        data,
                        dir,
                        tc.image_size,
                        tc.missing_images,
                    )?,
                    chunk: tc.eval_chunk,
                }))
            } else {
                None
            };
            let frozen = [&text, &image]
                .iter()
                .zip([&tc.text_model, &tc.image_model])
                .filter(|(s, _)| s.is_some())
                .map(|(_, d)| d.as_ref().map_or(Ok(0), |d| tuned_tower::file_params(d)))
                .sum::<Result<usize>>()?;
            let mut t = IisanTower::new(store, ic, text, image, dim)?;
            t.set_uncached(frozen);
            Ok(Box::new(t))
        }
        Method::Fft | Method::Adapter | Method::Lora | Method::Bitfit => Ok(Box::new(
            tuned_tower::TunedTower::new(store, &cfg.model.towers, cfg.model.method, data, dim)?,
        )),
    }
}
