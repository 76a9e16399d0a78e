//! A ViT encoder for Hugging Face `ViTModel` (google/vit-base-patch16-224) and `Dinov2Model`
//! folders, returning the [CLS] state of every hidden state, taken before the final LayerNorm
//! (Hugging Face `hidden_states`). Pre-LN blocks, exact GELU, DINOv2's layer scale, and patch
//! position embeddings resized to the input grid ([`super::vit_positions`]).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::{Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::peft::{Adapter, PeftBuilder};
use super::vit_positions::{PositionGrid, position_embeddings};
use super::{
    SelfAttention, Taken, adapt, adapter, get, layer_norm, linear, open_weights,
    open_weights_trainable, read_config, stack_cls,
};
use crate::error::{Error, Result};
use crate::nn::{Ctx, frozen, frozen::Dense, gelu::gelu_erf, layer_norm::LayerNorm};

/// The fields of a ViT / DINOv2 `config.json` this encoder uses.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct VitConfig {
    /// `vit` or `dinov2`.
    pub model_type: String,
    /// Hidden width D.
    pub hidden_size: usize,
    /// Layers L.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN width (ViT); DINOv2 gives `mlp_ratio` instead.
    #[serde(default)]
    pub intermediate_size: Option<usize>,
    /// FFN width / hidden width (DINOv2).
    #[serde(default)]
    pub mlp_ratio: Option<f64>,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Pretraining image side (the position grid is image_size / patch_size, ViT).
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Input channels.
    #[serde(default = "three")]
    pub num_channels: usize,
    /// Activation; only `gelu` (exact) is supported.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// Dropout on hidden states (training mode only).
    #[serde(default)]
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities (training mode only).
    #[serde(default)]
    pub attention_probs_dropout_prob: f32,
    /// DINOv2 SwiGLU FFN (unsupported when true).
    #[serde(default)]
    pub use_swiglu_ffn: bool,
}

fn three() -> usize {
    3
}
fn gelu() -> String {
    "gelu".into()
}

impl VitConfig {
    /// google/vit-base-patch16-224's configuration (for shape tests without weights).
    pub fn vit_base() -> Self {
        VitConfig {
            model_type: "vit".into(),
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: Some(3072),
            mlp_ratio: None,
            layer_norm_eps: 1e-12,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            hidden_act: gelu(),
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            use_swiglu_ffn: false,
        }
    }

    pub(super) fn is_dinov2(&self) -> bool {
        self.model_type == "dinov2"
    }

    fn ffn(&self) -> usize {
        self.intermediate_size.unwrap_or_else(|| {
            (self.hidden_size as f64 * self.mlp_ratio.unwrap_or(4.0)).round() as usize
        })
    }
}

#[derive(Debug)]
struct VitLayer {
    norm1: LayerNorm,
    attn: SelfAttention,
    attn_out: Dense,
    adapter_attn: Option<Adapter>,
    scale1: Option<Tensor>,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
    adapter_ffn: Option<Adapter>,
    scale2: Option<Tensor>,
}

/// A loaded ViT / DINOv2 encoder.
#[derive(Debug)]
pub struct Vit {
    /// Its configuration.
    pub config: VitConfig,
    cls_token: Tensor,
    cls_pos: Tensor,
    grid_pos: Tensor,
    grid: usize,
    patch_w: Tensor,
    patch_b: Tensor,
    layers: Vec<VitLayer>,
    final_ln: LayerNorm,
    device: Device,
}

impl Vit {
    /// Load a ViT or DINOv2 folder (`config.json`, `model.safetensors`) for input images of
    /// `image_size` x `image_size` pixels (a multiple of the patch size).
    pub fn load(dir: &Path, image_size: usize, device: &Device) -> Result<Vit> {
        Self::load_as(dir, image_size, device, candle_core::DType::F32)
    }

    /// [`Vit::load`] computing in `dtype` (weights converted as they load; pixels are converted
    /// on input and the states it returns are f32).
    pub fn load_as(
        dir: &Path,
        image_size: usize,
        device: &Device,
        dtype: candle_core::DType,
    ) -> Result<Vit> {
        let (config, _): (VitConfig, PathBuf) = read_config(dir, &["vit", "dinov2"])?;
        let vb = open_weights(dir, device, dtype)?;
        Self::load_from(dir, config, vb, image_size, None)
    }

    /// Check, without loading weights, that the folder `dir` holds a ViT / DINOv2 this encoder
    /// runs at `image_size` (what [`Vit::load`] would refuse, found before any work).
    pub fn check(dir: &Path, image_size: usize) -> Result<()> {
        let (config, file): (VitConfig, PathBuf) = read_config(dir, &["vit", "dinov2"])?;
        check_supported(&config, image_size, &file)
    }

    /// Load for training under `peft.tuning` (see [`crate::backbone::bert::Bert::load_tuned`]).
    pub fn load_tuned(
        dir: &Path,
        image_size: usize,
        device: &Device,
        peft: &mut PeftBuilder,
    ) -> Result<(Vit, Taken)> {
        let (config, _): (VitConfig, PathBuf) = read_config(dir, &["vit", "dinov2"])?;
        let tuning = peft.tuning;
        let dtype = peft.store.precision();
        let (vb, taken) =
            open_weights_trainable(dir, (device, dtype), move |n| tuning.trains_pretrained(n))?;
        Ok((
            Self::load_from(dir, config, vb, image_size, Some(peft))?,
            taken,
        ))
    }

    fn load_from(
        dir: &Path,
        config: VitConfig,
        vb: VarBuilder,
        image_size: usize,
        peft: Option<&mut PeftBuilder>,
    ) -> Result<Vit> {
        let file = dir.join("model.safetensors");
        let vb = ["vit", "dinov2"]
            .iter()
            .find(|p| vb.contains_tensor(&format!("{p}.embeddings.cls_token")))
            .map_or(vb.clone(), |p| vb.pp(*p));
        if !vb.contains_tensor("embeddings.cls_token") {
            return Err(Error::file(
                &file,
                "no ViT tensors (embeddings.cls_token, with or without a vit./dinov2. prefix)",
            ));
        }
        Self::build(vb, config, image_size, &file, peft)
    }

    /// Build from a `VarBuilder` and a config for `image_size` inputs; `file` names the weights.
    pub fn new(vb: VarBuilder, config: VitConfig, image_size: usize, file: &Path) -> Result<Vit> {
        Self::build(vb, config, image_size, file, None)
    }

    fn build(
        vb: VarBuilder,
        config: VitConfig,
        image_size: usize,
        file: &Path,
        mut peft: Option<&mut PeftBuilder>,
    ) -> Result<Vit> {
        let c = &config;
        check_supported(c, image_size, file)?;
        let (d, p) = (c.hidden_size, c.patch_size);
        let e = vb.pp("embeddings");
        let cls_token = get(&e, &[1, 1, d], "cls_token", file)?;
        let positions = PositionGrid {
            hidden: d,
            patch: p,
            stored_image: c.image_size,
            always_resize: c.is_dinov2(),
        };
        let (cls_pos, grid_pos, grid) =
            position_embeddings(&e, positions, image_size, file, vb.device())?;
        let proj = e.pp("patch_embeddings").pp("projection");
        let patch_w = get(&proj, &[d, c.num_channels, p, p], "weight", file)?;
        let patch_b = get(&proj, &[d], "bias", file)?.reshape((1, d, 1, 1))?;
        let ffn = c.ffn();
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            layers.push(load_layer(&vb, c, i, ffn, file, &mut peft)?);
        }
        super::check_no_extra_layer(&vb, c.num_hidden_layers, file)?;
        let final_ln = layer_norm(&vb, d, c.layer_norm_eps, "layernorm", file)?;
        Ok(Vit {
            device: vb.device().clone(),
            config,
            cls_token,
            cls_pos,
            grid_pos,
            grid,
            patch_w,
            patch_b,
            layers,
            final_ln,
        })
    }

    /// Number of hidden states reported (layers + 1).
    pub fn num_states(&self) -> usize {
        self.config.num_hidden_layers + 1
    }

    /// Input image side in pixels.
    pub fn image_size(&self) -> usize {
        self.grid * self.config.patch_size
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// `(cls per state [B, L + 1, D], the last layer's [CLS] [B, 1, D])` for pixels
    /// `[B, C, S, S]` (the last layer computes its [CLS] row only).
    fn run(&self, pixels: &Tensor, ctx: &Ctx) -> Result<(Tensor, Tensor)> {
        let (b, _, h, w) = pixels.dims4()?;
        let s = self.image_size();
        if h != s || w != s {
            return Err(Error::Internal(format!(
                "image tensor is {h}x{w}, the encoder was built for {s}x{s}"
            )));
        }
        let c = &self.config;
        let d = c.hidden_size;
        let x =
            pixels
                .to_dtype(self.patch_w.dtype())?
                .conv2d(&self.patch_w, 0, c.patch_size, 1, 1)?;
        let x = frozen::add(&x, &self.patch_b)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?; // [B, N, D]
        let cls = self
            .cls_token
            .broadcast_add(&self.cls_pos)?
            .broadcast_as((b, 1, d))?;
        let x = Tensor::cat(&[cls, frozen::add(&x, &self.grid_pos)?], 1)?;
        let p = c.hidden_dropout_prob;
        let mut x = ctx.dropout(&x, p)?;
        let mut states = vec![x.narrow(1, 0, 1)?.squeeze(1)?];
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            // the last layer's [CLS] alone (nothing reads its other rows)
            x = l.forward(&x, i == last, p, ctx)?;
            states.push(x.narrow(1, 0, 1)?.squeeze(1)?);
        }
        Ok((stack_cls(&states)?, x))
    }

    /// [CLS] states `[B, L + 1, D]` (before the final LayerNorm) of pixels `[B, C, S, S]`.
    pub fn cls_states(&self, pixels: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        Ok(self.run(pixels, ctx)?.0)
    }

    /// The last layer's [CLS] after the final LayerNorm `[B, D]` (the baselines' image feature).
    pub fn final_cls(&self, pixels: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (_, last) = self.run(pixels, ctx)?;
        Ok(self
            .final_ln
            .forward_t(&last.narrow(1, 0, 1)?.squeeze(1)?, ctx)?
            .to_dtype(candle_core::DType::F32)?)
    }
}

impl VitLayer {
    /// One pre-LN layer on `x` `[B, T, D]`: all rows, or the [CLS] row alone (`[B, 1, D]`)
    /// when `cls_only`.
    fn forward(&self, x: &Tensor, cls_only: bool, p: f32, ctx: &Ctx) -> Result<Tensor> {
        let n = self.norm1.forward_t(x, ctx)?;
        let (rows, queries) = if cls_only {
            (x.narrow(1, 0, 1)?, n.narrow(1, 0, 1)?)
        } else {
            (x.clone(), n.clone())
        };
        let a = self
            .attn_out
            .forward(&self.attn.forward(&queries, &n, None, ctx)?)?;
        // dense -> dropout -> adapter -> (layer scale) -> residual (the authors' order;
        // dropout commutes with the per-channel scale)
        let a = adapt(&self.adapter_attn, ctx.dropout(&a, p)?)?;
        let a = match &self.scale1 {
            Some(g) => frozen::mul(&a, g)?,
            None => a,
        };
        let x = frozen::add(&a, &rows)?;
        let m = self.fc2.forward(&gelu_erf(
            &self.fc1.forward(&self.norm2.forward_t(&x, ctx)?)?,
        )?)?;
        let m = adapt(&self.adapter_ffn, ctx.dropout(&m, p)?)?;
        let m = match &self.scale2 {
            Some(g) => frozen::mul(&m, g)?,
            None => m,
        };
        Ok(frozen::add(&m, &x)?)
    }
}

/// Reject what this encoder cannot run: an MLP other than exact GELU (or a SwiGLU one), or an
/// `image_size` that is not a positive multiple of the patch size.
fn check_supported(c: &VitConfig, image_size: usize, file: &Path) -> Result<()> {
    if c.hidden_act != "gelu" || c.use_swiglu_ffn {
        return Err(Error::file(
            file,
            "only exact-GELU MLP blocks are supported",
        ));
    }
    let p = c.patch_size;
    if image_size == 0 || !image_size.is_multiple_of(p) {
        return Err(Error::Config(format!(
            "image size {image_size} is not a positive multiple of the patch size {p}"
        )));
    }
    Ok(())
}

/// Load transformer layer `i` (FFN width `ffn`) from `vb`, with its PEFT projections and
/// adapters when `peft` is given.
fn load_layer(
    vb: &VarBuilder,
    c: &VitConfig,
    i: usize,
    ffn: usize,
    file: &Path,
    peft: &mut Option<&mut PeftBuilder>,
) -> Result<VitLayer> {
    let d = c.hidden_size;
    let l = vb.pp(format!("encoder.layer.{i}"));
    let a = l.pp("attention");
    let (n1, n2, fc1, fc2) = if c.is_dinov2() {
        (
            "norm1",
            "norm2",
            linear(&l, d, ffn, "mlp.fc1", file)?,
            linear(&l, ffn, d, "mlp.fc2", file)?,
        )
    } else {
        (
            "layernorm_before",
            "layernorm_after",
            linear(&l, d, ffn, "intermediate.dense", file)?,
            linear(&l, ffn, d, "output.dense", file)?,
        )
    };
    let scale = |n: &str| -> Result<Option<Tensor>> {
        if c.is_dinov2() {
            Ok(Some(get(&l, &[d], &format!("{n}.lambda1"), file)?))
        } else {
            Ok(None)
        }
    };
    let heads = (c.num_attention_heads, c.attention_probs_dropout_prob);
    let attn = SelfAttention::load(&a, "attention.", (i, d), heads, peft, file)?;
    Ok(VitLayer {
        norm1: layer_norm(&l, d, c.layer_norm_eps, n1, file)?,
        attn,
        attn_out: linear(&a, d, d, "output.dense", file)?,
        adapter_attn: adapter(peft, i, "attn", d)?,
        scale1: scale("layer_scale1")?,
        norm2: layer_norm(&l, d, c.layer_norm_eps, n2, file)?,
        fc1,
        fc2,
        adapter_ffn: adapter(peft, i, "ffn", d)?,
        scale2: scale("layer_scale2")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;
    use candle_nn::VarMap;

    #[test]
    fn vit_base_shapes_and_parameter_count() {
        // ViT-B/16 without pooler/classifier: embeddings 768 + 197*768 + 768*3*16*16 + 768
        // = 742,656; per layer 4*(768*768+768) + 2*2*768 + 768*3072+3072 + 3072*768+768
        // = 7,087,872, x 12 = 85,054,464; final LayerNorm 1,536; total 85,798,656
        // (the spec's 85.8 M).
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let vit = Vit::new(vb, VitConfig::vit_base(), 224, Path::new("random")).unwrap();
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, 85_798_656);
        let px = Tensor::zeros((1, 3, 224, 224), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            vit.cls_states(&px, &Ctx::eval()).unwrap().dims(),
            [1, 13, 768]
        );
    }
}
