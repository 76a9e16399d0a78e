//! The frozen towers as encoding and live states use them, whichever family a folder holds
//! (its `config.json`'s `model_type`): a text tower is a BERT-family encoder ([`Bert`], its
//! [CLS] per hidden state) or a decoder ([`Decoder`], pooled per [`Pooling`]); an image tower a
//! ViT / DINOv2 ([`Vit`]) or a CLIP / SigLIP vision tower ([`ClipVision`]). Each reports
//! `[B, L + 1, D]` f32 states, one per hidden state (docs/MODEL.md section 2).

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::bert::Bert;
use super::clip::{CLIP_TYPES, ClipConfig, ClipVision, read_clip_config};
use super::decoder::Decoder;
use super::decoder_config::{DECODER_TYPES, DecoderConfig};
use super::inputs::token_tensors;
use super::pooling::Pooling;
use super::vit::Vit;
use super::{open_weight_files, read_config};
use crate::data::text::TokenBatch;
use crate::error::{Error, Result};
use crate::nn::Ctx;

/// A frozen text tower.
#[derive(Debug)]
pub enum TextEncoder {
    /// A BERT-family encoder (pooling: [CLS]).
    Bert(Bert),
    /// A decoder with its pooling.
    Decoder(Decoder, Pooling),
}

/// What a text folder holds: `Some(config)` for a decoder, `None` for a BERT-family encoder.
fn text_kind(dir: &Path) -> Result<Option<DecoderConfig>> {
    let mut types = vec!["bert"];
    types.extend(DECODER_TYPES);
    let (v, file): (serde_json::Value, _) = read_config(dir, &types)?;
    match v.get("model_type").and_then(|t| t.as_str()) {
        Some(t) if DECODER_TYPES.contains(&t) => Ok(Some(DecoderConfig::from_json(v, &file)?)),
        _ => Ok(None),
    }
}

/// The pooling a text tower of folder `dir` (a decoder when `decoder`) uses when asked for
/// `pooling`; an encoder pools by `cls` only, a decoder by anything else.
fn resolve_pooling(dir: &Path, decoder: bool, pooling: Option<Pooling>) -> Result<Pooling> {
    match (decoder, pooling) {
        (false, None | Some(Pooling::Cls)) => Ok(Pooling::Cls),
        (false, Some(p)) => Err(Error::Config(format!(
            "{} is a BERT-family encoder: its items are pooled by cls, not {}",
            dir.display(),
            p.name()
        ))),
        (true, None) => Ok(Pooling::Mean),
        (true, Some(Pooling::Cls)) => Err(Error::Config(format!(
            "{} is a decoder: it has no [CLS] token (pooling mean, mean_unmasked or last)",
            dir.display()
        ))),
        (true, Some(p)) => Ok(p),
    }
}

/// Whether the text folder `dir` holds a decoder (else a BERT-family encoder).
pub fn is_decoder(dir: &Path) -> Result<bool> {
    Ok(text_kind(dir)?.is_some())
}

impl TextEncoder {
    /// The pooling a tower of folder `dir` uses when asked for `pooling` (`None`: the family's
    /// default, [CLS] for encoders and the masked mean for decoders); read from `config.json`
    /// alone, so a wrong choice is found before any work.
    pub fn check(dir: &Path, pooling: Option<Pooling>) -> Result<Pooling> {
        resolve_pooling(dir, text_kind(dir)?.is_some(), pooling)
    }

    /// Load the text tower of folder `dir` on `device`, computing in `dtype`.
    pub fn load(
        dir: &Path,
        pooling: Option<Pooling>,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let kind = text_kind(dir)?;
        let pooling = resolve_pooling(dir, kind.is_some(), pooling)?;
        match kind {
            None => Ok(TextEncoder::Bert(Bert::load_as(dir, device, dtype)?)),
            Some(c) => {
                let (vb, file) = open_weight_files(dir, device, dtype)?;
                Ok(TextEncoder::Decoder(Decoder::new(vb, c, &file)?, pooling))
            }
        }
    }

    /// Hidden states reported (layers + 1).
    pub fn num_states(&self) -> usize {
        match self {
            TextEncoder::Bert(b) => b.num_states(),
            TextEncoder::Decoder(d, _) => d.num_states(),
        }
    }

    /// The state width D.
    pub fn width(&self) -> usize {
        match self {
            TextEncoder::Bert(b) => b.config.hidden_size,
            TextEncoder::Decoder(d, _) => d.config.hidden_size,
        }
    }

    /// The pooling of its states.
    pub fn pooling(&self) -> Pooling {
        match self {
            TextEncoder::Bert(_) => Pooling::Cls,
            TextEncoder::Decoder(_, p) => *p,
        }
    }

    /// The device its weights live on.
    pub fn device(&self) -> &Device {
        match self {
            TextEncoder::Bert(b) => b.device(),
            TextEncoder::Decoder(d, _) => d.device(),
        }
    }

    /// One line for cache headers: family, depth, width (and pooling for decoders).
    pub fn describe(&self) -> String {
        match self {
            TextEncoder::Bert(b) => {
                let c = &b.config;
                format!("bert, {} layers x {}", c.num_hidden_layers, c.hidden_size)
            }
            TextEncoder::Decoder(d, p) => {
                let c = &d.config;
                let layers = c.num_hidden_layers;
                format!(
                    "{}, {layers} layers x {}, {} pooling",
                    c.model_type,
                    c.hidden_size,
                    p.name()
                )
            }
        }
    }

    /// The states `[B, L + 1, D]` (f32) of titles' token rows `rows`: right-padded to the
    /// longest row, or, for `mean_unmasked`, every row to `max_tokens` (what it averages over).
    pub fn states(&self, rows: &[&[u32]], max_tokens: usize, ctx: &Ctx) -> Result<Tensor> {
        match self {
            TextEncoder::Bert(b) => {
                let (ids, mask) = token_tensors(TokenBatch::pad(rows), b.device())?;
                b.cls_states(&ids, &mask, ctx)
            }
            TextEncoder::Decoder(d, p) => {
                // pad_to pads to the longest row at least
                let len = if *p == Pooling::MeanUnmasked {
                    max_tokens
                } else {
                    0
                };
                let pad = d.config.pad_token_id.unwrap_or(0);
                let tb = TokenBatch::pad_to(rows, len, pad);
                let (ids, mask) = token_tensors(tb, d.device())?;
                d.pooled_states(&ids, &mask, *p, ctx)
            }
        }
    }
}

/// A frozen image tower.
#[derive(Debug)]
pub enum ImageEncoder {
    /// ViT or DINOv2 ([CLS] per hidden state).
    Vit(Vit),
    /// CLIP or SigLIP (class token, or mean over patches).
    Clip(ClipVision),
}

/// Whether the folder `dir` holds a CLIP-family tower (else ViT / DINOv2).
pub fn is_clip_family(dir: &Path) -> Result<bool> {
    let mut types = vec!["vit", "dinov2"];
    types.extend(CLIP_TYPES);
    let (v, _): (serde_json::Value, _) = read_config(dir, &types)?;
    let t = v.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
    Ok(CLIP_TYPES.contains(&t))
}

impl ImageEncoder {
    /// Check, without loading weights, that `dir` holds an image tower this code runs at
    /// `image_size`.
    pub fn check(dir: &Path, image_size: usize) -> Result<()> {
        if is_clip_family(dir)? {
            ClipVision::check(dir, image_size)
        } else {
            Vit::check(dir, image_size)
        }
    }

    /// Load the image tower of `dir` for `image_size` pixels on `device`, computing in `dtype`.
    pub fn load(dir: &Path, image_size: usize, device: &Device, dtype: DType) -> Result<Self> {
        if is_clip_family(dir)? {
            Ok(ImageEncoder::Clip(ClipVision::load_as(
                dir, image_size, device, dtype,
            )?))
        } else {
            Ok(ImageEncoder::Vit(Vit::load_as(
                dir, image_size, device, dtype,
            )?))
        }
    }

    /// Hidden states reported (layers + 1).
    pub fn num_states(&self) -> usize {
        match self {
            ImageEncoder::Vit(v) => v.num_states(),
            ImageEncoder::Clip(c) => c.num_states(),
        }
    }

    /// The state width D.
    pub fn width(&self) -> usize {
        match self {
            ImageEncoder::Vit(v) => v.config.hidden_size,
            ImageEncoder::Clip(c) => c.config.hidden_size,
        }
    }

    /// The device its weights live on.
    pub fn device(&self) -> &Device {
        match self {
            ImageEncoder::Vit(v) => v.device(),
            ImageEncoder::Clip(c) => c.device(),
        }
    }

    /// One line for cache headers: family, depth, width.
    pub fn describe(&self) -> String {
        let (family, layers, width) = match self {
            ImageEncoder::Vit(v) => (
                v.config.model_type.as_str(),
                v.config.num_hidden_layers,
                v.config.hidden_size,
            ),
            ImageEncoder::Clip(c) => (
                c.config.family(),
                c.config.num_hidden_layers,
                c.config.hidden_size,
            ),
        };
        format!("{family}, {layers} layers x {width}")
    }

    /// The states `[B, L + 1, D]` (f32) of pixels `[B, C, S, S]`.
    pub fn states(&self, pixels: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        match self {
            ImageEncoder::Vit(v) => v.cls_states(pixels, ctx),
            ImageEncoder::Clip(c) => c.states(pixels, ctx),
        }
    }
}

/// The hidden-state count of the image folder `dir` (`num_hidden_layers + 1`), from its config.
pub fn image_states(dir: &Path) -> Result<usize> {
    if is_clip_family(dir)? {
        let (c, _): (ClipConfig, _) = read_clip_config(dir)?;
        Ok(c.num_hidden_layers + 1)
    } else {
        let (c, _): (super::vit::VitConfig, _) = read_config(dir, &["vit", "dinov2"])?;
        Ok(c.num_hidden_layers + 1)
    }
}

/// The hidden-state count of the text folder `dir` (`num_hidden_layers + 1`), from its config.
pub fn text_states(dir: &Path) -> Result<usize> {
    match text_kind(dir)? {
        Some(c) => Ok(c.num_hidden_layers + 1),
        None => {
            let (c, _): (super::bert::BertConfig, _) = read_config(dir, &["bert"])?;
            Ok(c.num_hidden_layers + 1)
        }
    }
}
