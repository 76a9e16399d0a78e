//! Frozen foundation towers that report the [CLS] state of every hidden state (spec section 2):
//! index 0 = embedding output, index k = output of layer k, shape `[B, L + 1, D]`.
//!
//! [`bert`] loads Hugging Face BERT folders (MiniLM, bert-base-uncased); [`vit`] loads ViT
//! (google/vit-base-patch16-224) and DINOv2 folders; [`onnx_import`] turns the DINOv2 backbone
//! of an ONNX file into such a folder. Weights are memory-mapped from `model.safetensors`.

pub mod bert;
pub mod onnx_import;
pub mod vit;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Linear, Module, VarBuilder};

use crate::error::{Error, Result};
use crate::model::{Ctx, layers::LayerNorm};

/// Open `dir/model.safetensors` memory-mapped; errors name the folder.
pub fn open_weights(dir: &Path, device: &Device) -> Result<VarBuilder<'static>> {
    let path = dir.join("model.safetensors");
    if !path.exists() {
        return Err(Error::file(
            dir,
            "not a model folder: model.safetensors is missing",
        ));
    }
    // SAFETY: the file is mapped read-only; the project never writes to model files while
    // they are loaded.
    unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, device) }
        .map_err(|e| Error::file(&path, format!("cannot read weights: {e}")))
}

/// Read `dir/config.json`, check that its `model_type` is one of `types` (when it has one), and
/// parse it into `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    types: &[&str],
) -> Result<(T, PathBuf)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Error::file(dir, "not a model folder: config.json is missing"))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("invalid model config: {e}")))?;
    if let Some(t) = v.get("model_type").and_then(|t| t.as_str()) {
        if !types.contains(&t) {
            return Err(Error::file(
                &path,
                format!("model_type {t:?} is not {}", types.join(" or ")),
            ));
        }
    }
    let cfg = serde_json::from_value(v)
        .map_err(|e| Error::file(&path, format!("invalid model config: {e}")))?;
    Ok((cfg, path))
}

/// Fetch a tensor, turning candle's shape/name errors into one line naming the file.
fn get(vb: &VarBuilder, shape: &[usize], name: &str, file: &Path) -> Result<Tensor> {
    vb.get(shape, name).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("");
        Error::file(file, format!("tensor {}{name}: {first}", prefix_of(vb)))
    })
}

fn prefix_of(vb: &VarBuilder) -> String {
    let p = vb.prefix();
    if p.is_empty() { p } else { format!("{p}.") }
}

/// A `Linear(input -> output)` with bias `name.weight` / `name.bias` from `vb`.
pub(crate) fn linear(
    vb: &VarBuilder,
    input: usize,
    output: usize,
    name: &str,
    file: &Path,
) -> Result<Linear> {
    let w = get(vb, &[output, input], &format!("{name}.weight"), file)?;
    let b = get(vb, &[output], &format!("{name}.bias"), file)?;
    Ok(Linear::new(w, Some(b)))
}

/// A LayerNorm `name.weight`/`name.bias` (or the older `name.gamma`/`name.beta`) from `vb`.
pub(crate) fn layer_norm(
    vb: &VarBuilder,
    dim: usize,
    eps: f64,
    name: &str,
    file: &Path,
) -> Result<LayerNorm> {
    let (w, b) = if vb.contains_tensor(&format!("{name}.gamma")) {
        ("gamma", "beta")
    } else {
        ("weight", "bias")
    };
    let weight = get(vb, &[dim], &format!("{name}.{w}"), file)?;
    let bias = get(vb, &[dim], &format!("{name}.{b}"), file)?;
    Ok(LayerNorm::from_tensors(weight, bias, eps))
}

/// Multi-head self-attention with biased Q/K/V projections (BERT and ViT layouts).
#[derive(Debug)]
pub(crate) struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub heads: usize,
    pub dropout: f32,
}

impl SelfAttention {
    /// `x` `[B, T, D]`, optional additive mask broadcastable to `[B, H, T, T]`; returns the
    /// per-head context `[B, T, D]` (before the output projection).
    pub fn forward(&self, x: &Tensor, mask: Option<&Tensor>, ctx: &Ctx) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let dh = d / self.heads;
        let split = |l: &Linear| -> Result<Tensor> {
            Ok(l.forward(x)?
                .reshape((b, t, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(&self.query)?, split(&self.key)?, split(&self.value)?);
        let mut att = (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?;
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = ctx.dropout(&ctx.softmax_last(&att)?, self.dropout)?;
        Ok(att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?)
    }
}

/// Stack per-layer [CLS] states (`[B, D]` each) into `[B, L + 1, D]`.
pub(crate) fn stack_cls(states: &[Tensor]) -> Result<Tensor> {
    Ok(Tensor::stack(states, 1)?)
}
