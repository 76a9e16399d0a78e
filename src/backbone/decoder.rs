//! A decoder-only text tower (LLaMA 2/3, Mistral, Qwen2, Qwen3; docs/MODEL.md section 2,
//! "Decoder towers") returning one pooled state per hidden state: index 0 the token
//! embeddings, index k the output of layer k, the last one after the final RMSNorm (as Hugging
//! Face's `hidden_states` report it). Pre-norm blocks: RMSNorm, causal self-attention with
//! grouped key/value heads and rotary positions ([`super::rope`]), Qwen3's per-head RMSNorm of
//! queries and keys, SwiGLU. Titles are right-padded, so under the causal mask a real token
//! never sees padding; padding keys are masked as well (what `mean_unmasked` averages).
//! Weights are memory-mapped from `model.safetensors` or the shards its index names, in the
//! dtype the tower computes in.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};

use super::decoder_config::DecoderConfig;
use super::peft::{PeftBuilder, Proj};
use super::pooling::Pooling;
use super::rope;
use super::{get, stack_cls};
use crate::error::{Error, Result};
use crate::nn::{Ctx, frozen, frozen::Dense};

/// RMSNorm `x / sqrt(mean(x^2) + eps) * w`, computed in f32 (as transformers does) and
/// returned in `x`'s dtype.
#[derive(Debug)]
struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(vb: &VarBuilder, dim: usize, eps: f64, name: &str, file: &Path) -> Result<RmsNorm> {
        Ok(RmsNorm {
            weight: get(vb, &[dim], &format!("{name}.weight"), file)?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let r = (x.sqr()?.mean_keepdim(D::Minus1)? + self.eps)?.sqrt()?;
        let y = x.broadcast_div(&r)?.to_dtype(dt)?;
        Ok(y.broadcast_mul(&self.weight)?)
    }
}

#[derive(Debug)]
struct Layer {
    input_norm: RmsNorm,
    q: Proj,
    k: Dense,
    v: Proj,
    o: Dense,
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    post_norm: RmsNorm,
    gate: Dense,
    up: Dense,
    down: Dense,
}

/// A loaded decoder tower.
#[derive(Debug)]
pub struct Decoder {
    /// Its configuration.
    pub config: DecoderConfig,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: RmsNorm,
    inv_freq: Vec<f32>,
    device: Device,
}

/// A linear map `input -> output` named `name` in `vb`, with a bias when `bias`.
fn dense(
    vb: &VarBuilder,
    (input, output): (usize, usize),
    name: &str,
    bias: bool,
    file: &Path,
) -> Result<Dense> {
    let w = get(vb, &[output, input], &format!("{name}.weight"), file)?;
    let b = bias
        .then(|| get(vb, &[output], &format!("{name}.bias"), file))
        .transpose()?;
    Ok(Dense::new(w, b))
}

impl Decoder {
    /// Build from the weights `vb` (with or without the `model.` prefix of a causal-LM
    /// checkpoint) and a checked config; `file` names the weights in errors.
    pub fn new(vb: VarBuilder, config: DecoderConfig, file: &Path) -> Result<Decoder> {
        Self::with_peft(vb, config, file, None)
    }

    /// [`Decoder::new`] with LoRA on every layer's query and value projections when `peft`
    /// asks for it (the LoRA baseline's placement), its matrices registered in `peft.store`.
    pub fn with_peft(
        vb: VarBuilder,
        config: DecoderConfig,
        file: &Path,
        mut peft: Option<&mut PeftBuilder>,
    ) -> Result<Decoder> {
        let vb = if vb.contains_tensor("model.embed_tokens.weight") {
            vb.pp("model")
        } else {
            vb
        };
        if !vb.contains_tensor("embed_tokens.weight") {
            return Err(Error::file(
                file,
                "no decoder tensors (embed_tokens.weight, with or without a model. prefix)",
            ));
        }
        let c = &config;
        let d = c.hidden_size;
        let embed = Embedding::new(
            get(&vb, &[c.vocab_size, d], "embed_tokens.weight", file)?,
            d,
        );
        let layers = (0..c.num_hidden_layers)
            .map(|i| load_layer(&vb.pp(format!("layers.{i}")), (i, c), file, &mut peft))
            .collect::<Result<Vec<_>>>()?;
        let next = format!("layers.{}.input_layernorm.weight", c.num_hidden_layers);
        super::refuse_extra_layer(vb.contains_tensor(&next), c.num_hidden_layers, file)?;
        Ok(Decoder {
            norm: RmsNorm::load(&vb, d, c.rms_norm_eps, "norm", file)?,
            inv_freq: rope::inverse_frequencies(c.head_dim, c.rope_theta, c.rope_scaling),
            device: vb.device().clone(),
            embed,
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

    /// The pooled states `[B, L + 1, D]` (f32) of right-padded token ids `ids` `[B, T]` with
    /// attention mask `mask` `[B, T]` (f32, 1 real / 0 padding).
    pub fn pooled_states(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        pooling: Pooling,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (_, t) = ids.dims2()?;
        if let Some(w) = self.config.sliding_window.filter(|&w| w < t) {
            return Err(Error::Config(format!(
                "titles of {t} tokens exceed the tower's sliding window of {w}"
            )));
        }
        let mut x = self.embed.forward(ids)?;
        let dt = x.dtype();
        let (cos, sin) = rope::tables(&self.inv_freq, t, dt, &self.device)?;
        let bias = attention_bias(mask, dt)?;
        let mut states = vec![pooling.pool(&x, mask)?];
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x, (&cos, &sin), &bias, &self.config, ctx)?;
            let h = if i == last {
                self.norm.forward(&x)?
            } else {
                x.clone()
            };
            states.push(pooling.pool(&h, mask)?);
        }
        stack_cls(&states)
    }
}

/// The additive attention bias `[B, 1, T, T]`: query i sees key j when j <= i and j is a real
/// token; a large negative value elsewhere.
fn attention_bias(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    let m: Vec<Vec<f32>> = mask.to_dtype(DType::F32)?.to_vec2()?;
    let neg = f32::MIN / 2.0;
    let mut v = Vec::with_capacity(b * t * t);
    for row in &m {
        for i in 0..t {
            v.extend((0..t).map(|j| if j <= i && row[j] > 0.0 { 0.0 } else { neg }));
        }
    }
    let bias = Tensor::from_vec(v, (b, 1, t, t), mask.device())?;
    Ok(if dtype == DType::F32 {
        bias
    } else {
        bias.clamp(-1e4, 0.0)?.to_dtype(dtype)?
    })
}

impl Layer {
    fn forward(
        &self,
        x: &Tensor,
        (cos, sin): (&Tensor, &Tensor),
        bias: &Tensor,
        c: &DecoderConfig,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, kvh, hd) = (c.heads, c.kv_heads, c.head_dim);
        let n = self.input_norm.forward(x)?;
        let heads = |y: Tensor, k: usize, norm: &Option<RmsNorm>| -> Result<Tensor> {
            let y = y.reshape((b, t, k, hd))?;
            let y = match norm {
                Some(nm) => nm.forward(&y)?,
                None => y,
            };
            rope::apply(&y.transpose(1, 2)?.contiguous()?, cos, sin)
        };
        let q = heads(self.q.forward(&n)?, h, &self.q_norm)?;
        let k = heads(self.k.forward(&n)?, kvh, &self.k_norm)?;
        let v = self
            .v
            .forward(&n)?
            .reshape((b, t, kvh, hd))?
            .transpose(1, 2)?;
        let (k, v) = (
            repeat_kv(&k, h / kvh)?,
            repeat_kv(&v.contiguous()?, h / kvh)?,
        );
        let scale = 1.0 / (hd as f64).sqrt();
        let att = (frozen::matmul(&q, &k.t()?)? * scale)?;
        let att = frozen::add(&att, bias)?;
        let p = ctx
            .softmax_last(&att.to_dtype(DType::F32)?)?
            .to_dtype(q.dtype())?;
        let o = frozen::matmul(&p, &v)?
            .transpose(1, 2)?
            .reshape((b, t, h * hd))?;
        let x = frozen::add(&self.o.forward(&o)?, x)?;
        let n = self.post_norm.forward(&x)?;
        let g = candle_nn::ops::silu(&self.gate.forward(&n)?)?;
        let m = self.down.forward(&(g * self.up.forward(&n)?)?)?;
        Ok(frozen::add(&m, &x)?)
    }
}

/// Each key/value head `n` times in a row (`[B, KV, T, hd]` -> `[B, KV n, T, hd]`): query head
/// `i` reads key head `i / n`.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, kv, t, hd) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, kv, n, t, hd))?
        .reshape((b, kv * n, t, hd))?)
}

/// Load decoder layer `i` (`vb` at `layers.i`), its query and value with LoRA when `peft` asks.
fn load_layer(
    vb: &VarBuilder,
    (i, c): (usize, &DecoderConfig),
    file: &Path,
    peft: &mut Option<&mut PeftBuilder>,
) -> Result<Layer> {
    let (d, f, hd) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let (q, kv) = (c.heads * hd, c.kv_heads * hd);
    let a = vb.pp("self_attn");
    let m = vb.pp("mlp");
    let qk_norm = |name: &str| -> Result<Option<RmsNorm>> {
        c.qk_norm
            .then(|| RmsNorm::load(&a, hd, c.rms_norm_eps, name, file))
            .transpose()
    };
    let mut proj = |base: Dense, which: &str| match peft {
        Some(p) => p.project(base, i, which),
        None => Ok(Proj::Plain(base)),
    };
    Ok(Layer {
        input_norm: RmsNorm::load(vb, d, c.rms_norm_eps, "input_layernorm", file)?,
        q: proj(dense(&a, (d, q), "q_proj", c.qkv_bias, file)?, "query")?,
        k: dense(&a, (d, kv), "k_proj", c.qkv_bias, file)?,
        v: proj(dense(&a, (d, kv), "v_proj", c.qkv_bias, file)?, "value")?,
        o: dense(&a, (q, d), "o_proj", c.o_bias, file)?,
        q_norm: qk_norm("q_norm")?,
        k_norm: qk_norm("k_norm")?,
        post_norm: RmsNorm::load(vb, d, c.rms_norm_eps, "post_attention_layernorm", file)?,
        gate: dense(&m, (d, f), "gate_proj", c.mlp_bias, file)?,
        up: dense(&m, (d, f), "up_proj", c.mlp_bias, file)?,
        down: dense(&m, (f, d), "down_proj", c.mlp_bias, file)?,
    })
}
