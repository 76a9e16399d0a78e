//! The item tower of the in-backbone baselines (docs/MODEL.md section 7): the pretrained towers run with
//! gradients inside the training step under full fine-tuning, adapters, LoRA or BitFit, and
//! the baseline head `Linear(2d -> d)([GELU(P_img(CLS_img)) ; GELU(P_text(CLS_text))])` (the
//! image [CLS] after the ViT's final LayerNorm; text-only / image-only variants use one part
//! and `Linear(d -> d)`). The towers read item inputs through [`crate::backbone::inputs`]; items
//! repeated in a batch go through the towers once (the trainer de-duplicates).

use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::Linear;

use super::towers::TowersConfig;
use crate::backbone::Taken;
use crate::backbone::bert::Bert;
use crate::backbone::inputs::{ItemImages, ItemTokens};
use crate::backbone::peft::{GROUP_IMAGE_TOWER, GROUP_TEXT_TOWER, PeftBuilder, TowerTuning};
use crate::backbone::vit::Vit;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::method::Method;
use crate::model::tower::ItemTower;
use crate::nn::TowerDType;
use crate::nn::gelu::gelu_erf;
use crate::nn::layers::Ctx;
use crate::nn::mixed::linear;
use crate::nn::params::{GROUP_DEFAULT, Init, ParamStore};

/// Register the pretrained tensors a tuning made trainable, named `<prefix>.<key>`.
pub(crate) fn register_taken(
    store: &mut ParamStore,
    taken: &Taken,
    prefix: &str,
    group: &'static str,
) -> Result<usize> {
    let taken = taken.lock().expect("not poisoned");
    let mut n = 0;
    for (key, var, compute) in taken.iter() {
        n += var.elem_count();
        store.register(
            &format!("{prefix}.{key}"),
            var.clone(),
            compute.clone(),
            group,
        )?;
    }
    Ok(n)
}

/// Parameters stored in a model folder's weights (`model.safetensors` or its shards).
pub fn file_params(dir: &Path) -> Result<usize> {
    let paths = crate::backbone::weights_paths(dir)?;
    // SAFETY: read-only maps of model files nothing writes while loaded.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&paths) }
        .map_err(|e| Error::file(&paths[0], format!("cannot read weights: {e}")))?;
    Ok(st
        .tensors()
        .iter()
        .map(|(_, v)| v.shape().iter().product::<usize>())
        .sum())
}

/// The baseline item tower over trainable (or adapted) pretrained towers.
pub struct TunedTower {
    method: Method,
    text: Option<(Bert, ItemTokens, Linear)>,
    image: Option<(Vit, ItemImages, Linear)>,
    fuse: Linear,
    dim: usize,
    frozen: usize,
    eval_chunk: usize,
    device: Device,
}

impl TunedTower {
    /// Load the configured towers for `method`, registering what trains in `store`.
    pub fn new(
        store: &mut ParamStore,
        cfg: &TowersConfig,
        method: Method,
        data: &Dataset,
        dim: usize,
    ) -> Result<TunedTower> {
        cfg.validate(method, TowerDType::of(store.precision()))?;
        let tuning = cfg.tuning(method)?;
        let device = store.device().clone();
        let text = (cfg.text_model.as_ref())
            .map(|dir| load_text_part(store, cfg, tuning, data, (dir, dim)))
            .transpose()?;
        let image = (cfg.image_model.as_ref())
            .map(|dir| load_image_part(store, cfg, tuning, data, (dir, dim)))
            .transpose()?;
        // the towers' parameters that do not train
        let frozen = text.as_ref().map_or(0, |t| t.1) + image.as_ref().map_or(0, |i| i.1);
        let (text, image) = (text.map(|t| t.0), image.map(|i| i.0));
        let parts = text.is_some() as usize + image.is_some() as usize;
        let fuse = store.linear(
            "item.fuse",
            parts * dim,
            dim,
            true,
            Init::TorchLinear,
            GROUP_DEFAULT,
        )?;
        Ok(TunedTower {
            method,
            text,
            image,
            fuse,
            dim,
            frozen,
            eval_chunk: cfg.eval_chunk.max(1),
            device,
        })
    }
}

/// The parameter group a tower's own trained tensors go to: FFT's weights and BitFit's biases
/// train at the tower's own rate `own` (the authors': text 5e-5, image 1e-4); any other
/// tuning's at the default rate.
fn tower_group(tuning: TowerTuning, own: &'static str) -> &'static str {
    match tuning {
        TowerTuning::Full | TowerTuning::BitFit => own,
        _ => GROUP_DEFAULT,
    }
}

/// Load one modality's tower through `load` (which returns the tower, what it took to train
/// and its width), register what trains in `group` and add its head `item.head_<modality>`
/// (`width -> dim`); returns the tower and head, and the tower's parameters that do not train.
fn load_part<T>(
    store: &mut ParamStore,
    (tuning, modality, group): (TowerTuning, &str, &'static str),
    (dir, dim): (&Path, usize),
    load: impl FnOnce(&mut PeftBuilder) -> Result<(T, Taken, usize)>,
) -> Result<((T, Linear), usize)> {
    let mut pb = PeftBuilder {
        store: &mut *store,
        tuning,
        prefix: modality.into(),
    };
    let (tower, taken, width) = load(&mut pb)?;
    let trained = register_taken(store, &taken, modality, group)?;
    let frozen = file_params(dir)? - trained;
    let name = format!("item.head_{modality}");
    let head = store.linear(&name, width, dim, true, Init::TorchLinear, GROUP_DEFAULT)?;
    Ok(((tower, head), frozen))
}

/// Load the text tower in `dir` under `tuning` with its head `item.head_text` and the items'
/// tokens; returns them and the tower's parameters that do not train.
fn load_text_part(
    store: &mut ParamStore,
    cfg: &TowersConfig,
    tuning: TowerTuning,
    data: &Dataset,
    (dir, dim): (&Path, usize),
) -> Result<((Bert, ItemTokens, Linear), usize)> {
    let device = store.device().clone();
    let group = tower_group(tuning, GROUP_TEXT_TOWER);
    let ((bert, head), frozen) = load_part(store, (tuning, "text", group), (dir, dim), |pb| {
        let (bert, taken) = Bert::load_tuned(dir, &device, pb)?;
        let width = bert.config.hidden_size;
        Ok((bert, taken, width))
    })?;
    let tokens = ItemTokens::new(data, dir, cfg.max_tokens)?;
    Ok(((bert, tokens, head), frozen))
}

/// Load the image tower in `dir` under `tuning` with its head `item.head_image` and the
/// items' images; returns them and the tower's parameters that do not train.
fn load_image_part(
    store: &mut ParamStore,
    cfg: &TowersConfig,
    tuning: TowerTuning,
    data: &Dataset,
    (dir, dim): (&Path, usize),
) -> Result<((Vit, ItemImages, Linear), usize)> {
    let device = store.device().clone();
    let group = tower_group(tuning, GROUP_IMAGE_TOWER);
    let size = cfg.image_size;
    let ((vit, head), frozen) = load_part(store, (tuning, "image", group), (dir, dim), |pb| {
        Vit::load_tuned(dir, size, &device, pb).map(|(vit, taken)| {
            let width = vit.config.hidden_size;
            (vit, taken, width)
        })
    })?;
    let images = ItemImages::new(data, dir, size, cfg.missing_images)?;
    Ok(((vit, images, head), frozen))
}

/// A head over a tower's [CLS] state, which the tower hands on in f32: read in the head's
/// precision (the training precision).
fn head_of(head: &Linear, cls: &Tensor) -> Result<Tensor> {
    Ok(linear(head, &cls.to_dtype(head.weight().dtype())?)?)
}

impl ItemTower for TunedTower {
    fn method(&self) -> Method {
        self.method
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn frozen_params(&self) -> usize {
        self.frozen
    }

    fn embed(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor> {
        let mut parts = Vec::with_capacity(2);
        if let Some((vit, images, head)) = &self.image {
            let px = images.batch(ids, &self.device)?;
            let cls = vit.final_cls(&px, ctx)?;
            parts.push(gelu_erf(&head_of(head, &cls)?)?);
        }
        if let Some((bert, tokens, head)) = &self.text {
            let (tid, mask) = tokens.batch(ids, &self.device)?;
            let states = bert.cls_states(&tid, &mask, ctx)?;
            let last = states.narrow(1, states.dim(1)? - 1, 1)?.squeeze(1)?;
            parts.push(gelu_erf(&head_of(head, &last)?)?);
        }
        let x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        };
        Ok(linear(&self.fuse, &x)?)
    }

    fn eval_chunk(&self, _chunk: usize) -> usize {
        self.eval_chunk
    }

    fn device(&self) -> Device {
        self.device.clone()
    }
}
