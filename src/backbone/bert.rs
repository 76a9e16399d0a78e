//! A BERT encoder (Hugging Face `BertModel` layout) returning the [CLS] state of every hidden
//! state. Loads MiniLM (`all-MiniLM-L6-v2`, no prefix) and `bert-base-uncased` (`bert.` prefix,
//! `LayerNorm.gamma/beta` or `.weight/.bias`). Post-LN, exact (erf) GELU, real dropout in
//! training mode. Token type ids are all 0 (single segment).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::peft::{Adapter, PeftBuilder};
use super::{
    SelfAttention, Taken, adapt, adapter, layer_norm, linear, open_weights, open_weights_trainable,
    read_config, stack_cls,
};
use crate::error::{Error, Result};
use crate::nn::mixed::{broadcast_add, embedding};
use crate::nn::{Ctx, frozen, frozen::Dense, gelu::gelu_erf, layer_norm::LayerNorm};

/// The fields of a Hugging Face BERT `config.json` this encoder uses.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width D.
    pub hidden_size: usize,
    /// Layers L.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// FFN width.
    pub intermediate_size: usize,
    /// Activation; only `gelu` (exact) is supported.
    #[serde(default = "gelu")]
    pub hidden_act: String,
    /// LayerNorm epsilon.
    #[serde(default = "bert_eps")]
    pub layer_norm_eps: f64,
    /// Learned positions.
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    /// Dropout on hidden states (training mode only).
    #[serde(default)]
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities (training mode only).
    #[serde(default)]
    pub attention_probs_dropout_prob: f32,
    /// `model_type` (must be `bert` when present).
    #[serde(default)]
    pub model_type: Option<String>,
}

fn gelu() -> String {
    "gelu".into()
}
fn bert_eps() -> f64 {
    1e-12
}
fn two() -> usize {
    2
}

impl BertConfig {
    /// bert-base-uncased's configuration (for shape tests without weights).
    pub fn bert_base() -> Self {
        BertConfig {
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: gelu(),
            layer_norm_eps: 1e-12,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            model_type: Some("bert".into()),
        }
    }
}

#[derive(Debug)]
struct BertLayer {
    attn: SelfAttention,
    attn_out: Dense,
    adapter_attn: Option<Adapter>,
    attn_ln: LayerNorm,
    inter: Dense,
    out: Dense,
    adapter_ffn: Option<Adapter>,
    out_ln: LayerNorm,
}

/// A loaded BERT encoder.
#[derive(Debug)]
pub struct Bert {
    /// Its configuration.
    pub config: BertConfig,
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    emb_ln: LayerNorm,
    layers: Vec<BertLayer>,
    device: Device,
}

impl Bert {
    /// Load a Hugging Face BERT folder (`config.json`, `model.safetensors`).
    pub fn load(dir: &Path, device: &Device) -> Result<Bert> {
        Self::load_as(dir, device, DType::F32)
    }

    /// [`Bert::load`] computing in `dtype` (weights converted as they load; the states it
    /// returns are f32).
    pub fn load_as(dir: &Path, device: &Device, dtype: DType) -> Result<Bert> {
        let (config, _): (BertConfig, PathBuf) = read_config(dir, &["bert"])?;
        let vb = open_weights(dir, device, dtype)?;
        Self::load_from(dir, config, vb, None)
    }

    /// Load a model folder for training under `peft.tuning`: pretrained tensors it trains
    /// become variables (returned with their safetensors keys), adapters / LoRA are added to
    /// `peft.store`.
    pub fn load_tuned(
        dir: &Path,
        device: &Device,
        peft: &mut PeftBuilder,
    ) -> Result<(Bert, Taken)> {
        let (config, _): (BertConfig, PathBuf) = read_config(dir, &["bert"])?;
        let tuning = peft.tuning;
        let dtype = peft.store.precision();
        let (vb, taken) =
            open_weights_trainable(dir, (device, dtype), move |n| tuning.trains_pretrained(n))?;
        Ok((Self::load_from(dir, config, vb, Some(peft))?, taken))
    }

    fn load_from(
        dir: &Path,
        config: BertConfig,
        vb: VarBuilder,
        peft: Option<&mut PeftBuilder>,
    ) -> Result<Bert> {
        let file = dir.join("model.safetensors");
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        if !vb.contains_tensor("embeddings.word_embeddings.weight") {
            return Err(Error::file(
                &file,
                "no BERT tensors (embeddings.word_embeddings.weight, with or without a bert. prefix)",
            ));
        }
        Self::build(vb, config, &file, peft)
    }

    /// Build from a `VarBuilder` (weights or a variable map) and a config; `file` names the
    /// weights in errors.
    pub fn new(vb: VarBuilder, config: BertConfig, file: &Path) -> Result<Bert> {
        Self::build(vb, config, file, None)
    }

    fn build(
        vb: VarBuilder,
        config: BertConfig,
        file: &Path,
        mut peft: Option<&mut PeftBuilder>,
    ) -> Result<Bert> {
        let c = &config;
        let config_file = file.with_file_name("config.json");
        if c.hidden_act != "gelu" {
            return Err(Error::file(
                &config_file,
                format!("hidden_act {:?} is not supported (gelu only)", c.hidden_act),
            ));
        }
        if !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(Error::file(
                &config_file,
                "hidden_size is not a multiple of num_attention_heads",
            ));
        }
        let d = c.hidden_size;
        let e = vb.pp("embeddings");
        let emb = |n: usize, name: &str| -> Result<Embedding> {
            Ok(Embedding::new(
                super::get(&e, &[n, d], &format!("{name}.weight"), file)?,
                d,
            ))
        };
        let word = emb(c.vocab_size, "word_embeddings")?;
        let position = emb(c.max_position_embeddings, "position_embeddings")?;
        let token_type = emb(c.type_vocab_size, "token_type_embeddings")?;
        let emb_ln = layer_norm(&e, d, c.layer_norm_eps, "LayerNorm", file)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let heads = (c.num_attention_heads, c.attention_probs_dropout_prob);
            let attn = SelfAttention::load(&a, "self.", (i, d), heads, &mut peft, file)?;
            layers.push(BertLayer {
                attn,
                attn_out: linear(&a, d, d, "output.dense", file)?,
                adapter_attn: adapter(&mut peft, i, "attn", d)?,
                attn_ln: layer_norm(&a, d, c.layer_norm_eps, "output.LayerNorm", file)?,
                inter: linear(&l, d, c.intermediate_size, "intermediate.dense", file)?,
                out: linear(&l, c.intermediate_size, d, "output.dense", file)?,
                adapter_ffn: adapter(&mut peft, i, "ffn", d)?,
                out_ln: layer_norm(&l, d, c.layer_norm_eps, "output.LayerNorm", file)?,
            });
        }
        super::check_no_extra_layer(&vb, c.num_hidden_layers, file)?;
        Ok(Bert {
            device: vb.device().clone(),
            config,
            word,
            position,
            token_type,
            emb_ln,
            layers,
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

    /// [CLS] states `[B, L + 1, D]` of token ids `[B, T]` (u32) with attention mask `[B, T]`
    /// (1 = token, 0 = padding).
    pub fn cls_states(&self, ids: &Tensor, mask: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let c = &self.config;
        if t > c.max_position_embeddings {
            return Err(Error::Internal(format!(
                "{t} tokens exceed {} positions",
                c.max_position_embeddings
            )));
        }
        let pos = Tensor::arange(0u32, t as u32, &self.device)?;
        let types = Tensor::zeros((b, t), DType::U32, &self.device)?;
        let x = broadcast_add(
            &embedding(&self.word, ids)?,
            &embedding(&self.position, &pos)?,
        )?
        .add(&embedding(&self.token_type, &types)?)?;
        let mut x = ctx.dropout(&self.emb_ln.forward_t(&x, ctx)?, c.hidden_dropout_prob)?;
        // additive mask [B, 1, 1, T]: 0 for tokens, -1e9 for padding
        let add_mask = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?
            .reshape((b, 1, 1, t))?
            .to_dtype(x.dtype())?; // -1e9 is -inf in f16: a padded key still gets weight 0
        let mut cls = vec![x.narrow(1, 0, 1)?.squeeze(1)?];
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            // the last layer's [CLS] reads every key and value but no other query: its other
            // rows are never computed (encoding 14 % fewer products for MiniLM's 6 layers)
            x = l.forward(&x, i == last, &add_mask, c.hidden_dropout_prob, ctx)?;
            cls.push(x.narrow(1, 0, 1)?.squeeze(1)?);
        }
        stack_cls(&cls)
    }
}

impl BertLayer {
    /// One post-LN layer on `x` `[B, T, D]`: all rows, or the [CLS] row alone (`[B, 1, D]`)
    /// when `cls_only`.
    fn forward(
        &self,
        x: &Tensor,
        cls_only: bool,
        add_mask: &Tensor,
        p: f32,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let rows = if cls_only {
            x.narrow(1, 0, 1)?
        } else {
            x.clone()
        };
        let a = self
            .attn_out
            .forward(&self.attn.forward(&rows, x, Some(add_mask), ctx)?)?;
        // dense -> dropout -> adapter -> residual + LayerNorm (the authors' order)
        let a = adapt(&self.adapter_attn, ctx.dropout(&a, p)?)?;
        let x = self.attn_ln.forward_t(&frozen::add(&a, &rows)?, ctx)?;
        let h = gelu_erf(&self.inter.forward(&x)?)?;
        let o = adapt(&self.adapter_ffn, ctx.dropout(&self.out.forward(&h)?, p)?)?;
        self.out_ln.forward_t(&frozen::add(&o, &x)?, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::peft::TowerTuning;
    use crate::nn::params::ParamStore;
    use candle_nn::VarMap;
    use std::collections::HashMap;

    fn tiny() -> BertConfig {
        BertConfig {
            vocab_size: 40,
            hidden_size: 16,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 24,
            max_position_embeddings: 8,
            ..BertConfig::bert_base()
        }
    }

    fn max_abs(t: &Tensor) -> f32 {
        t.abs().unwrap().max_all().unwrap().to_scalar().unwrap()
    }

    /// Values uniform in [-0.1, 0.1) from a seeded stream (candle's CPU RNG cannot be seeded).
    fn seeded(shape: &[usize], seed: u64) -> Tensor {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
        let v: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.random_range(-0.1..0.1))
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The tiny tower's weights as variables, seeded by sorted name (candle's CPU RNG cannot be
    /// seeded), and the same values as plain (frozen) tensors.
    fn seeded_weights(dev: &Device) -> (VarMap, HashMap<String, Tensor>) {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, dev);
        Bert::new(vb, tiny(), Path::new("random")).unwrap(); // registers the weights (zeros)
        {
            let data = vm.data().lock().unwrap();
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            for (i, n) in names.into_iter().enumerate() {
                let v = &data[n];
                let t = (seeded(v.shape().dims(), 100 + i as u64) * 5.0).unwrap();
                v.set(&t).unwrap();
            }
        }
        let frozen = vm
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().detach()))
            .collect();
        (vm, frozen)
    }

    /// Two sequences, the second with two padded keys.
    fn ids_and_mask(dev: &Device) -> (Tensor, Tensor) {
        let ids = Tensor::new(&[[1u32, 5, 7, 2], [1, 9, 0, 0]], dev).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 0., 0.]], dev).unwrap();
        (ids, mask)
    }

    /// Inference with frozen weights takes the fused attention (nn::attention). With the weights
    /// as variables, in training mode without dropout (the same function), the projections
    /// track them and the graph path runs. Same [CLS] states.
    #[test]
    fn fused_and_graph_attention_give_the_same_states() {
        let dev = Device::Cpu;
        let (vm, frozen) = seeded_weights(&dev);
        let (ids, mask) = ids_and_mask(&dev);
        let config = BertConfig {
            hidden_dropout_prob: 0.0,
            attention_probs_dropout_prob: 0.0,
            ..tiny()
        };
        let file = Path::new("random");
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &dev);
        let graph = Bert::new(vb, config.clone(), file).unwrap();
        let graph = graph.cls_states(&ids, &mask, &Ctx::train(1)).unwrap();
        assert!(
            graph.track_op(),
            "the variables' run must take the graph path"
        );
        let vb = VarBuilder::from_tensors(frozen, DType::F32, &dev);
        let fused = Bert::new(vb, config, file).unwrap();
        let fused = fused.cls_states(&ids, &mask, &Ctx::eval()).unwrap();
        assert!(!fused.track_op());
        let (scale, d) = (max_abs(&graph), max_abs(&(&graph - &fused).unwrap()));
        assert!(scale > 0.1 && d <= 1e-5 * scale, "{d} vs {scale}");
    }

    /// The gradients of a tuned tower's added parameters (adapters, LoRA) with the pretrained
    /// weights frozen (graft path: no gradient for them, docs/STACK.md section 14) equal candle's
    /// autograd with the same weights made variables (every operand differentiated), dropout
    /// on, padding masked. Also: the frozen run stores no gradient for a pretrained weight.
    #[test]
    fn frozen_tower_gradients_equal_full_autograd() {
        let dev = Device::Cpu;
        let (vm, frozen) = seeded_weights(&dev);
        let (ids, mask) = ids_and_mask(&dev);
        for tuning in [
            TowerTuning::Adapter { r: 3 },
            TowerTuning::Lora { r: 2, alpha: 4.0 },
        ] {
            let run = |vb: VarBuilder| {
                let mut store = ParamStore::new(7, dev.clone());
                let mut peft = PeftBuilder {
                    store: &mut store,
                    tuning,
                    prefix: "text".into(),
                };
                let bert = Bert::build(vb, tiny(), Path::new("random"), Some(&mut peft)).unwrap();
                // LoRA's B starts at zero, which would leave A without a gradient
                for (i, p) in store.params().iter().enumerate() {
                    p.var.set(&seeded(p.var.shape().dims(), i as u64)).unwrap();
                }
                let states = bert.cls_states(&ids, &mask, &Ctx::train(3)).unwrap();
                // squares, not a weighted sum: no operand that would keep a gradient of its own
                let loss = states.sqr().unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                let g: Vec<Tensor> = store
                    .params()
                    .iter()
                    .map(|p| grads.get(p.var.as_tensor()).unwrap().clone())
                    .collect();
                (g, grads)
            };
            let (full, _) = run(VarBuilder::from_varmap(&vm, DType::F32, &dev));
            let (grafted, store) = run(VarBuilder::from_tensors(frozen.clone(), DType::F32, &dev));
            assert_eq!(full.len(), grafted.len());
            for (i, (a, b)) in full.iter().zip(&grafted).enumerate() {
                let (scale, d) = (max_abs(a), max_abs(&(a - b).unwrap()));
                assert!(
                    scale > 0.0 && d <= 1e-4 * scale.max(1.0),
                    "{tuning:?} parameter {i}: {d} vs {scale}"
                );
            }
            // the grafted run keeps the added parameters' gradients and, at most, the one of
            // the embeddings' [CLS] (an untracked operand of the final stack, [B, D])
            let n = grafted.len();
            let kept = crate::nn::graft::grad_entries(&store);
            assert!(
                (n..=n + 1).contains(&kept),
                "{tuning:?}: {kept} entries for {n} parameters"
            );
        }
    }

    #[test]
    fn bert_base_shapes_and_parameter_count() {
        // bert-base-uncased without pooler: embeddings 30522*768 + 512*768 + 2*768 + 2*768
        // = 23,837,184; per layer 4*(768*768+768) + 2*2*768 + 768*3072+3072 + 3072*768+768
        // = 7,087,872; x 12 = 85,054,464; total 108,891,648 (HF reports 109.5 M with the pooler's
        // 590,592).
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let bert = Bert::new(vb, BertConfig::bert_base(), Path::new("random")).unwrap();
        let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
        assert_eq!(n, 108_891_648);
        assert_eq!(bert.num_states(), 13);
        let ids = Tensor::new(&[[101u32, 2000, 102, 0]], &Device::Cpu).unwrap();
        let mask = Tensor::new(&[[1f32, 1., 1., 0.]], &Device::Cpu).unwrap();
        let s = bert.cls_states(&ids, &mask, &Ctx::eval()).unwrap();
        assert_eq!(s.dims(), [1, 13, 768]);
    }
}
