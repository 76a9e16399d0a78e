//! The model's options: which item-embedding method, the user encoder's shape, the IISAN side
//! network's options, the pretrained towers of the baselines, and how training computes
//! ([`Kernels`]).

use serde::{Deserialize, Serialize};

pub use super::baselines::towers::TowersConfig;
pub use super::iisan::config::IisanConfig;
pub use super::method::{Kernels, Method};
pub use super::sasrec::config::UserEncoderConfig;

/// The model: which item tower, and the user encoder's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Item-embedding method.
    pub method: Method,
    /// User encoder shape (its `dim` is the item embedding width too).
    pub user: UserEncoderConfig,
    /// IISAN side-network options (`method = "iisan"` / `"iisan_uncached"`).
    pub iisan: IisanConfig,
    /// Pretrained towers of the methods that run them in the step.
    pub towers: TowersConfig,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            method: Method::Id,
            user: UserEncoderConfig::default(),
            iisan: IisanConfig::default(),
            towers: TowersConfig::default(),
        }
    }
}
