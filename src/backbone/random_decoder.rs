//! Random-weight decoder folders of published layouts (`iisan models random --layout
//! qwen2.5-7b` and the smaller ones): `config.json` and `model.safetensors` (f32, or bf16 for
//! the sizes that would not fit otherwise), each tensor drawn from a uniform distribution of
//! standard deviation 0.02 as it is written, so a 7 B folder never sits in memory (the
//! `safetensors` crate asks each tensor for its bytes in turn). The layouts are the published
//! configurations of SmolLM2-135M, Qwen2.5-0.5B / 1.5B / 7B and Qwen3-0.6B: the cost of a tower
//! depends on its shapes, not its values (docs/GPU.md).

use std::borrow::Cow;
use std::path::Path;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Uniform};
use safetensors::{Dtype, View};
use serde_json::json;

use super::decoder_config::DecoderConfig;
use crate::error::{Error, Result};

/// A published decoder layout: `(model_type, vocab, hidden, intermediate, layers, heads,
/// kv heads, head_dim, rope_theta)`.
pub type DecoderShape = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    f64,
);

/// SmolLM2-135M (LLaMA architecture).
pub const SMOLLM2_135M: DecoderShape = ("llama", 49_152, 576, 1536, 30, 9, 3, 64, 100_000.0);
/// Qwen2.5-0.5B.
pub const QWEN25_0_5B: DecoderShape = ("qwen2", 151_936, 896, 4864, 24, 14, 2, 64, 1e6);
/// Qwen3-0.6B (1,024 wide).
pub const QWEN3_0_6B: DecoderShape = ("qwen3", 151_936, 1024, 3072, 28, 16, 8, 128, 1e6);
/// Qwen2.5-1.5B.
pub const QWEN25_1_5B: DecoderShape = ("qwen2", 151_936, 1536, 8960, 28, 12, 2, 128, 1e6);
/// Qwen2.5-7B.
pub const QWEN25_7B: DecoderShape = ("qwen2", 152_064, 3584, 18_944, 28, 28, 4, 128, 1e6);

/// The `config.json` of a layout.
pub fn config_json(s: DecoderShape) -> serde_json::Value {
    let (t, vocab, hidden, inter, layers, heads, kv, head_dim, theta) = s;
    json!({
        "model_type": t, "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim,
        "rms_norm_eps": 1e-6, "rope_theta": theta, "hidden_act": "silu",
        "max_position_embeddings": 32768, "tie_word_embeddings": true
    })
}

/// The tensors of a decoder of configuration `c`: name and shape, in file order.
pub fn tensor_shapes(c: &DecoderConfig) -> Vec<(String, Vec<usize>)> {
    let (d, f, hd) = (c.hidden_size, c.intermediate_size, c.head_dim);
    let (q, kv) = (c.heads * hd, c.kv_heads * hd);
    let mut out = vec![("embed_tokens.weight".to_string(), vec![c.vocab_size, d])];
    for i in 0..c.num_hidden_layers {
        let p = |n: &str| format!("layers.{i}.{n}");
        let mut add = |n: &str, s: Vec<usize>| out.push((p(n), s));
        add("input_layernorm.weight", vec![d]);
        add("post_attention_layernorm.weight", vec![d]);
        for (n, rows) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            add(&format!("self_attn.{n}.weight"), vec![rows, d]);
            if c.qkv_bias {
                add(&format!("self_attn.{n}.bias"), vec![rows]);
            }
        }
        add("self_attn.o_proj.weight", vec![d, q]);
        if c.qk_norm {
            add("self_attn.q_norm.weight", vec![hd]);
            add("self_attn.k_norm.weight", vec![hd]);
        }
        add("mlp.gate_proj.weight", vec![f, d]);
        add("mlp.up_proj.weight", vec![f, d]);
        add("mlp.down_proj.weight", vec![d, f]);
    }
    out.push(("norm.weight".to_string(), vec![d]));
    out
}

/// One tensor drawn when its bytes are asked for.
struct Drawn {
    shape: Vec<usize>,
    seed: u64,
    norm: bool,
    bf16: bool,
}

impl View for Drawn {
    fn dtype(&self) -> Dtype {
        if self.bf16 { Dtype::BF16 } else { Dtype::F32 }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let n: usize = self.shape.iter().product();
        let mut rng = StdRng::seed_from_u64(self.seed);
        // uniform on [-a, a] has standard deviation a / sqrt(3): 0.02 for a = 0.02 sqrt(3)
        let a = 0.02 * 3f32.sqrt();
        let u = Uniform::new(-a, a).expect("a > 0");
        let value = |rng: &mut StdRng| {
            if self.norm {
                1.0 + u.sample(rng)
            } else {
                u.sample(rng)
            }
        };
        let mut bytes = Vec::with_capacity(self.data_len());
        for _ in 0..n {
            let v = value(&mut rng);
            if self.bf16 {
                bytes.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * if self.bf16 { 2 } else { 4 }
    }
}

/// Write `config.json` and `model.safetensors` of layout `s` into the folder `dir` (which
/// exists), values from `seed`, in bf16 when `bf16`. Returns the parameter count.
pub fn fill_decoder(s: DecoderShape, dir: &Path, seed: u64, bf16: bool) -> Result<usize> {
    let v = config_json(s);
    let cfg = dir.join("config.json");
    let c = DecoderConfig::from_json(v.clone(), &cfg)?;
    let text = serde_json::to_string_pretty(&v).expect("a JSON value");
    std::fs::write(&cfg, text).map_err(|e| Error::io(&cfg, e))?;
    let shapes = tensor_shapes(&c);
    let n = shapes
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let tensors = shapes.into_iter().enumerate().map(|(i, (name, shape))| {
        let norm = name.ends_with("norm.weight");
        (
            name,
            Drawn {
                shape,
                seed: seed.wrapping_add(i as u64),
                norm,
                bf16,
            },
        )
    });
    let file = dir.join("model.safetensors");
    safetensors::serialize_to_file(tensors, None, &file)
        .map_err(|e| Error::file(&file, format!("cannot write: {e}")))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_their_published_sizes() {
        // without the (tied) output head: Qwen2.5-0.5B 494,032,768 (counted by hand in
        // decoder_config.rs); SmolLM2-135M: 49152 x 576 + 30 x (2 x 576 + 576 x 576 x 2 +
        // 2 x 576 x 192 + 3 x 576 x 1536) + 576 = 28,311,552 + 30 x 3,540,096 + 576 = 134,515,008
        let count = |s| {
            DecoderConfig::from_json(config_json(s), Path::new("c"))
                .unwrap()
                .parameters()
        };
        assert_eq!(count(QWEN25_0_5B), 494_032_768);
        assert_eq!(count(SMOLLM2_135M), 134_515_008);
        let c = DecoderConfig::from_json(config_json(SMOLLM2_135M), Path::new("c")).unwrap();
        let listed: usize = tensor_shapes(&c)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(listed, c.parameters());
    }
}
