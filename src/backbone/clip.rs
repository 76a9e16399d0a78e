//! CLIP-family image towers (docs/MODEL.md section 2, "CLIP-family towers"): the vision
//! transformers of CLIP and SigLIP, from a vision-model folder (`clip_vision_model`,
//! `siglip_vision_model`) or a whole two-tower folder (`clip`, `siglip`: its `vision_config`
//! and `vision_model.` tensors). Pre-norm layers (LayerNorm, attention, LayerNorm, MLP), as
//! Hugging Face writes them; one state per hidden state as the family defines its image state:
//! CLIP's class token (index 0 = the embeddings after `pre_layrnorm`, as its `hidden_states`
//! report them), SigLIP's mean over the patch tokens (it has no class token; its attention-pool
//! head reads the last layer only, so per layer the mean stands in). Position embeddings are
//! the pretrained grid: the tower runs at its own `image_size`.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder};
use serde::Deserialize;

use super::peft::Proj;
use super::{SelfAttention, get, layer_norm, linear, open_weight_files, stack_cls};
use crate::error::{Error, Result};
use crate::nn::{Ctx, frozen, frozen::Dense, gelu::gelu_erf, layer_norm::LayerNorm};

/// The `model_type`s of the CLIP-family folders.
pub const CLIP_TYPES: [&str; 4] = ["clip_vision_model", "clip", "siglip_vision_model", "siglip"];

/// A CLIP-family vision tower's configuration (the family's defaults for keys left out, as
/// `save_pretrained` leaves out values equal to them).
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// SigLIP (no class token, patch bias, mean-pooled states) rather than CLIP.
    pub siglip: bool,
    /// Hidden width D.
    pub hidden_size: usize,
    /// MLP width.
    pub intermediate_size: usize,
    /// Layers L.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Pretraining image side (the position grid is image_size / patch_size).
    pub image_size: usize,
    /// Patch side.
    pub patch_size: usize,
    /// Input channels.
    pub num_channels: usize,
    /// `quick_gelu`, `gelu` or `gelu_pytorch_tanh`.
    pub hidden_act: String,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
}

#[derive(Deserialize)]
struct Raw {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    image_size: Option<usize>,
    patch_size: Option<usize>,
    num_channels: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
}

impl ClipConfig {
    /// The vision configuration of the `config.json` value `v` (`file` names it in errors).
    pub fn from_json(v: &serde_json::Value, file: &Path) -> Result<ClipConfig> {
        let t = v.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
        if !CLIP_TYPES.contains(&t) {
            return Err(Error::file(
                file,
                format!("model_type {t:?} is not {}", CLIP_TYPES.join(" or ")),
            ));
        }
        let siglip = t.starts_with("siglip");
        let vision = if t.ends_with("_vision_model") {
            v
        } else {
            &v["vision_config"]
        };
        let r: Raw = serde_json::from_value(vision.clone())
            .map_err(|e| Error::file(file, format!("invalid vision config: {e}")))?;
        // transformers' CLIPVisionConfig / SiglipVisionConfig defaults
        let (patch, act, eps) = if siglip {
            (16, "gelu_pytorch_tanh", 1e-6)
        } else {
            (32, "quick_gelu", 1e-5)
        };
        let c = ClipConfig {
            siglip,
            hidden_size: r.hidden_size.unwrap_or(768),
            intermediate_size: r.intermediate_size.unwrap_or(3072),
            num_hidden_layers: r.num_hidden_layers.unwrap_or(12),
            num_attention_heads: r.num_attention_heads.unwrap_or(12),
            image_size: r.image_size.unwrap_or(224),
            patch_size: r.patch_size.unwrap_or(patch),
            num_channels: r.num_channels.unwrap_or(3),
            hidden_act: r.hidden_act.unwrap_or_else(|| act.into()),
            layer_norm_eps: r.layer_norm_eps.unwrap_or(eps),
        };
        if !["quick_gelu", "gelu", "gelu_pytorch_tanh"].contains(&c.hidden_act.as_str()) {
            return Err(Error::file(
                file,
                format!("hidden_act {:?} is not supported", c.hidden_act),
            ));
        }
        if c.patch_size == 0
            || !c.image_size.is_multiple_of(c.patch_size)
            || c.num_attention_heads == 0
        {
            return Err(Error::file(
                file,
                "image_size is not a multiple of patch_size",
            ));
        }
        Ok(c)
    }

    /// The family's name in cache headers.
    pub fn family(&self) -> &'static str {
        if self.siglip { "siglip" } else { "clip" }
    }
}

#[derive(Debug)]
struct Layer {
    norm1: LayerNorm,
    attn: SelfAttention,
    out: Dense,
    norm2: LayerNorm,
    fc1: Dense,
    fc2: Dense,
}

/// A loaded CLIP or SigLIP vision tower.
#[derive(Debug)]
pub struct ClipVision {
    /// Its configuration.
    pub config: ClipConfig,
    class: Option<Tensor>,
    patch_w: Tensor,
    patch_b: Option<Tensor>,
    positions: Tensor,
    pre_norm: Option<LayerNorm>,
    layers: Vec<Layer>,
    device: Device,
}

/// Read and check the folder's configuration.
pub fn read_clip_config(dir: &Path) -> Result<(ClipConfig, PathBuf)> {
    let (v, file): (serde_json::Value, PathBuf) = super::read_config(dir, &CLIP_TYPES)?;
    Ok((ClipConfig::from_json(&v, &file)?, file))
}

/// A CLIP-family tower runs at its pretrained size (its position grid is not resized): another
/// `image_size` is refused, naming the config `file`.
fn check_size(c: &ClipConfig, file: &Path, image_size: usize) -> Result<()> {
    if image_size != c.image_size {
        return Err(Error::Config(format!(
            "{} runs at its pretrained {} px (its position grid); set the image size to {} (it is {image_size})",
            file.display(),
            c.image_size,
            c.image_size
        )));
    }
    Ok(())
}

impl ClipVision {
    /// Load a CLIP / SigLIP folder for images of `image_size` pixels (its own size), computing
    /// in `dtype` (the states it returns are f32).
    pub fn load_as(
        dir: &Path,
        image_size: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<ClipVision> {
        let (config, file) = read_clip_config(dir)?;
        check_size(&config, &file, image_size)?;
        let (vb, weights) = open_weight_files(dir, device, dtype)?;
        Self::new(vb, config, &weights)
    }

    /// Check, without loading weights, that `dir` holds a tower this code runs at `image_size`.
    pub fn check(dir: &Path, image_size: usize) -> Result<()> {
        let (c, file) = read_clip_config(dir)?;
        check_size(&c, &file, image_size)
    }

    /// Build from weights `vb` (with or without the `vision_model.` prefix) and a config.
    pub fn new(vb: VarBuilder, config: ClipConfig, file: &Path) -> Result<ClipVision> {
        let key = "embeddings.patch_embedding.weight";
        let vb = if vb.contains_tensor(&format!("vision_model.{key}")) {
            vb.pp("vision_model")
        } else {
            vb
        };
        if !vb.contains_tensor(key) {
            return Err(Error::file(
                file,
                format!("no CLIP-family tensors ({key}, with or without a vision_model. prefix)"),
            ));
        }
        let c = &config;
        let (d, p) = (c.hidden_size, c.patch_size);
        let grid = c.image_size / p;
        let e = vb.pp("embeddings");
        let class = (!c.siglip)
            .then(|| get(&e, &[d], "class_embedding", file))
            .transpose()?;
        let tokens = grid * grid + usize::from(!c.siglip);
        let patch_b = c
            .siglip
            .then(|| -> Result<Tensor> {
                Ok(get(&e, &[d], "patch_embedding.bias", file)?.reshape((1, d, 1, 1))?)
            })
            .transpose()?;
        let pre_norm = (!c.siglip)
            .then(|| layer_norm(&vb, d, c.layer_norm_eps, "pre_layrnorm", file))
            .transpose()?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| load_layer(&vb.pp(format!("encoder.layers.{i}")), c, file))
            .collect::<Result<Vec<_>>>()?;
        let next = format!("encoder.layers.{}.layer_norm1.weight", c.num_hidden_layers);
        super::refuse_extra_layer(vb.contains_tensor(&next), c.num_hidden_layers, file)?;
        Ok(ClipVision {
            patch_w: get(
                &e,
                &[d, c.num_channels, p, p],
                "patch_embedding.weight",
                file,
            )?,
            positions: get(&e, &[tokens, d], "position_embedding.weight", file)?.unsqueeze(0)?,
            device: vb.device().clone(),
            class,
            patch_b,
            pre_norm,
            layers,
            config,
        })
    }

    /// Number of hidden states reported (layers + 1).
    pub fn num_states(&self) -> usize {
        self.config.num_hidden_layers + 1
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The per-layer states `[B, L + 1, D]` (f32) of pixels `[B, C, S, S]`.
    pub fn states(&self, pixels: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let c = &self.config;
        let (b, _, h, w) = pixels.dims4()?;
        if h != c.image_size || w != c.image_size {
            return Err(Error::Internal(format!(
                "image tensor is {h}x{w}, the tower runs at {0}x{0}",
                c.image_size
            )));
        }
        let x =
            pixels
                .to_dtype(self.patch_w.dtype())?
                .conv2d(&self.patch_w, 0, c.patch_size, 1, 1)?;
        let x = match &self.patch_b {
            Some(bias) => frozen::add(&x, bias)?,
            None => x,
        };
        let x = x.flatten_from(2)?.transpose(1, 2)?; // [B, N, D]
        let x = match &self.class {
            Some(cls) => Tensor::cat(
                &[
                    &cls.reshape((1, 1, c.hidden_size))?
                        .broadcast_as((b, 1, c.hidden_size))?
                        .contiguous()?,
                    &x,
                ],
                1,
            )?,
            None => x,
        };
        let mut x = frozen::add(&x.contiguous()?, &self.positions)?;
        if let Some(n) = &self.pre_norm {
            x = n.forward_t(&x, ctx)?;
        }
        let pool = |x: &Tensor| -> Result<Tensor> {
            Ok(if c.siglip {
                x.mean(1)?
            } else {
                x.narrow(1, 0, 1)?.squeeze(1)?
            })
        };
        let mut states = vec![pool(&x)?];
        for l in &self.layers {
            x = l.forward(&x, &c.hidden_act, ctx)?;
            states.push(pool(&x)?);
        }
        stack_cls(&states)
    }
}

impl Layer {
    fn forward(&self, x: &Tensor, act: &str, ctx: &Ctx) -> Result<Tensor> {
        let n = self.norm1.forward_t(x, ctx)?;
        let a = self.out.forward(&self.attn.forward(&n, &n, None, ctx)?)?;
        let x = frozen::add(&a, x)?;
        let h = self.fc1.forward(&self.norm2.forward_t(&x, ctx)?)?;
        let h = match act {
            "quick_gelu" => (&h * candle_nn::ops::sigmoid(&(&h * 1.702)?)?)?,
            "gelu" => gelu_erf(&h)?,
            _ => h.gelu()?, // gelu_pytorch_tanh: the tanh approximation
        };
        Ok(frozen::add(&self.fc2.forward(&h)?, &x)?)
    }
}

/// Load layer `vb` (`encoder.layers.i`).
fn load_layer(vb: &VarBuilder, c: &ClipConfig, file: &Path) -> Result<Layer> {
    let (d, f) = (c.hidden_size, c.intermediate_size);
    let a = vb.pp("self_attn");
    let proj = |n: &str| linear(&a, d, d, n, file);
    Ok(Layer {
        norm1: layer_norm(vb, d, c.layer_norm_eps, "layer_norm1", file)?,
        attn: SelfAttention {
            query: Proj::Plain(proj("q_proj")?),
            key: proj("k_proj")?,
            value: Proj::Plain(proj("v_proj")?),
            heads: c.num_attention_heads,
            dropout: 0.0,
        },
        out: proj("out_proj")?,
        norm2: layer_norm(vb, d, c.layer_norm_eps, "layer_norm2", file)?,
        fc1: linear(vb, d, f, "mlp.fc1", file)?,
        fc2: linear(vb, f, d, "mlp.fc2", file)?,
    })
}
