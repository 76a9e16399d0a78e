//! The user encoder's shape and its checks; defaults are the paper's (docs/MODEL.md section 4).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Shape of the user encoder; defaults are the paper's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UserEncoderConfig {
    /// Embedding width d (also the item embedding width).
    pub dim: usize,
    /// Transformer blocks.
    pub blocks: usize,
    /// Attention heads (must divide `dim`).
    pub heads: usize,
    /// FFN hidden width.
    pub ffn: usize,
    /// Dropout probability.
    pub dropout: f32,
    /// LayerNorm epsilon.
    pub ln_eps: f64,
}

impl Default for UserEncoderConfig {
    fn default() -> Self {
        UserEncoderConfig {
            dim: 64,
            blocks: 2,
            heads: 2,
            ffn: 256,
            dropout: 0.1,
            ln_eps: 1e-6,
        }
    }
}

impl UserEncoderConfig {
    /// Check widths and probabilities.
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(Error::Config(format!(
                "model.user.dim = {} must be a positive multiple of model.user.heads = {}",
                self.dim, self.heads
            )));
        }
        if self.blocks == 0 || self.ffn == 0 {
            return Err(Error::Config(
                "model.user.blocks and model.user.ffn must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "model.user.dropout = {} must be in [0, 1)",
                self.dropout
            )));
        }
        Ok(())
    }
}
