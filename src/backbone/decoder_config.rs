//! The `config.json` of a decoder text tower (docs/MODEL.md section 2, "Decoder towers"):
//! LLaMA 2/3, Mistral, Qwen2 and Qwen3 folders as Hugging Face writes them, including the
//! rotary settings under either `rope_theta` + `rope_scaling` (transformers 4) or
//! `rope_parameters` (transformers 5). What the decoder cannot run is refused here, with the
//! file named, before any weight is read.

use std::path::Path;

use serde::Deserialize;

use super::rope::RopeScaling;
use crate::error::{Error, Result};

/// The `model_type`s of the decoder families.
pub const DECODER_TYPES: [&str; 4] = ["llama", "mistral", "qwen2", "qwen3"];

/// A decoder tower's configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// `llama`, `mistral`, `qwen2` or `qwen3`.
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden width D.
    pub hidden_size: usize,
    /// SwiGLU width.
    pub intermediate_size: usize,
    /// Layers L.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Rotary base.
    pub rope_theta: f64,
    /// Rotary rescaling.
    pub rope_scaling: RopeScaling,
    /// Biases on the query, key and value projections (Qwen2; `attention_bias` in LLaMA).
    pub qkv_bias: bool,
    /// A bias on the output projection (`attention_bias` in LLaMA).
    pub o_bias: bool,
    /// Biases in the SwiGLU projections (`mlp_bias`).
    pub mlp_bias: bool,
    /// Per-head RMSNorm of queries and keys before the rotation (Qwen3).
    pub qk_norm: bool,
    /// Mistral's attention window (positions further back are not attended), if any.
    pub sliding_window: Option<usize>,
    /// The padding token, when the folder names one.
    pub pad_token_id: Option<u32>,
}

#[derive(Deserialize)]
struct Raw {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "eps")]
    rms_norm_eps: f64,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "silu")]
    hidden_act: String,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    pad_token_id: Option<u32>,
}

fn eps() -> f64 {
    1e-6
}
fn silu() -> String {
    "silu".into()
}

impl DecoderConfig {
    /// Parse and check the configuration `v` of the file `file`.
    pub fn from_json(v: serde_json::Value, file: &Path) -> Result<DecoderConfig> {
        let bad = |m: String| Error::file(file, m);
        let r: Raw = serde_json::from_value(v).map_err(|e| bad(format!("invalid config: {e}")))?;
        if !DECODER_TYPES.contains(&r.model_type.as_str()) {
            return Err(bad(format!(
                "model_type {:?} is not a decoder tower ({})",
                r.model_type,
                DECODER_TYPES.join(", ")
            )));
        }
        if r.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act {:?}: only silu (SwiGLU) is supported",
                r.hidden_act
            )));
        }
        if r.num_hidden_layers == 0 {
            return Err(bad("num_hidden_layers is 0".into()));
        }
        let heads = r.num_attention_heads;
        let kv_heads = r.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(bad(format!(
                "num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
            )));
        }
        let head_dim = r.head_dim.unwrap_or(r.hidden_size / heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {head_dim} is not a positive even number"
            )));
        }
        let (rope_theta, rope_scaling) = rope(&r, file)?;
        let qwen2 = r.model_type == "qwen2";
        let window = match (r.model_type.as_str(), r.use_sliding_window) {
            ("mistral", _) | (_, Some(true)) => r.sliding_window,
            _ => None,
        };
        Ok(DecoderConfig {
            qkv_bias: qwen2 || r.attention_bias,
            o_bias: r.attention_bias && !qwen2,
            mlp_bias: r.mlp_bias,
            qk_norm: r.model_type == "qwen3",
            model_type: r.model_type,
            vocab_size: r.vocab_size,
            hidden_size: r.hidden_size,
            intermediate_size: r.intermediate_size,
            num_hidden_layers: r.num_hidden_layers,
            heads,
            kv_heads,
            head_dim,
            rms_norm_eps: r.rms_norm_eps,
            rope_theta,
            rope_scaling,
            sliding_window: window,
            pad_token_id: r.pad_token_id,
        })
    }

    /// Parameters of the tower (embeddings, layers, final norm; no output head).
    pub fn parameters(&self) -> usize {
        let (d, f, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.heads * hd, self.kv_heads * hd);
        let attn = d * q + 2 * d * kv + q * d + usize::from(self.qkv_bias) * (q + 2 * kv);
        let attn = attn + usize::from(self.o_bias) * d + usize::from(self.qk_norm) * 2 * hd;
        let mlp = 3 * d * f + usize::from(self.mlp_bias) * (2 * f + d);
        self.vocab_size * d + self.num_hidden_layers * (attn + mlp + 2 * d) + d
    }
}

/// The rotary base and rescaling: `rope_parameters` (transformers 5) or `rope_theta` +
/// `rope_scaling` (transformers 4).
fn rope(r: &Raw, file: &Path) -> Result<(f64, RopeScaling)> {
    let params = r.rope_parameters.as_ref().or(r.rope_scaling.as_ref());
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let theta = params
        .and_then(|p| num(p, "rope_theta"))
        .or(r.rope_theta)
        .unwrap_or(10_000.0);
    let Some(p) = params.filter(|p| !p.is_null()) else {
        return Ok((theta, RopeScaling::None));
    };
    let kind = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("default");
    let need = |k: &str| {
        num(p, k).ok_or_else(|| Error::file(file, format!("rope scaling {kind:?} needs {k}")))
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low: need("low_freq_factor")?,
            high: need("high_freq_factor")?,
            original: need("original_max_position_embeddings")?,
        },
        other => {
            return Err(Error::file(
                file,
                format!("rope scaling {other:?} is not supported (default, linear or llama3)"),
            ));
        }
    };
    Ok((theta, scaling))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<DecoderConfig> {
        DecoderConfig::from_json(v, Path::new("config.json"))
    }

    fn qwen2_0_5b() -> serde_json::Value {
        json!({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
               "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
               "num_key_value_heads": 2, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
               "sliding_window": 32768, "use_sliding_window": false})
    }

    #[test]
    fn qwen2_has_qkv_biases_no_window_and_its_published_size() {
        let c = parse(qwen2_0_5b()).unwrap();
        assert!(c.qkv_bias && !c.o_bias && !c.qk_norm);
        assert_eq!((c.head_dim, c.kv_heads, c.sliding_window), (64, 2, None));
        // embeddings 151936 x 896 = 136,134,656; per layer: q 896x896 + 896, k and v
        // 896x128 + 128 each, o 896x896, MLP 3 x 896 x 4864, two norms 2 x 896
        // = 1,605,632 + 896 + 2 x 114,816 + 13,074,432 + 1,792 = 14,912,384; x 24 =
        // 357,897,216; final norm 896: 494,032,768 (Qwen2-0.5B's 494 M without its tied head)
        assert_eq!(c.parameters(), 494_032_768);
    }

    #[test]
    fn rope_from_either_transformers_generation() {
        let mut v = qwen2_0_5b();
        v["model_type"] = json!("llama");
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = parse(v.clone()).unwrap();
        assert_eq!(c.rope_theta, 1e6);
        assert!(matches!(
            c.rope_scaling,
            RopeScaling::Llama3 { factor: 8.0, .. }
        ));
        let mut v5 = v.clone();
        v5.as_object_mut().unwrap().remove("rope_scaling");
        v5.as_object_mut().unwrap().remove("rope_theta");
        v5["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 5e5});
        let c = parse(v5).unwrap();
        assert_eq!((c.rope_theta, c.rope_scaling), (5e5, RopeScaling::None));
        v["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0});
        let e = parse(v).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("yarn"), "{e}");
    }

    #[test]
    fn refuses_what_it_cannot_run() {
        let mut v = qwen2_0_5b();
        v["num_key_value_heads"] = json!(3);
        assert!(parse(v).unwrap_err().to_string().contains("multiple"));
        let mut v = qwen2_0_5b();
        v["hidden_act"] = json!("gelu");
        assert!(parse(v).unwrap_err().to_string().contains("silu"));
        let mut v = qwen2_0_5b();
        v["model_type"] = json!("gemma");
        assert!(parse(v).unwrap_err().to_string().contains("not a decoder"));
    }
}
