//! The pretrained towers of the methods that run them in the step (the tuned baselines and
//! `iisan_uncached`): which folders, their inputs, and each method's tuning of them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backbone::peft::TowerTuning;
use crate::backbone::pooling::Pooling;
use crate::data::image::MissingImage;
use crate::error::{Error, Result};
use crate::model::method::Method;
use crate::nn::TowerDType;

/// The pretrained towers that methods running them in the step load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TowersConfig {
    /// BERT-family model folder (text tower), e.g. `models/minilm`; none = no text tower.
    pub text_model: Option<PathBuf>,
    /// ViT / DINOv2 model folder (image tower), e.g. `models/dinov2-small`; none = no image
    /// tower.
    pub image_model: Option<PathBuf>,
    /// Image side in pixels (a multiple of the patch size).
    pub image_size: usize,
    /// Title tokens kept (docs/MODEL.md section 2: 30).
    pub max_tokens: usize,
    /// How a decoder text tower's token states become an item's (`mean`, `mean_unmasked`,
    /// `last`; none: the family's default, docs/MODEL.md section 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<Pooling>,
    /// Missing or undecodable item images: error (default) or zero input.
    pub missing_images: MissingImage,
    /// Adapter bottleneck (spec: 64).
    pub adapter_bottleneck: usize,
    /// LoRA rank (spec: 8).
    pub lora_rank: usize,
    /// LoRA alpha (spec: 1; scale alpha / rank).
    pub lora_alpha: f64,
    /// Items per tower forward during evaluation (bounds activation memory).
    pub eval_chunk: usize,
    /// Precision of frozen towers (`iisan_uncached`; `iisan encode` has `--dtype`): `f32`,
    /// `bf16` or `f16`. The towers' outputs are handed on as f32; what trains stays f32.
    pub dtype: TowerDType,
}

impl Default for TowersConfig {
    fn default() -> Self {
        TowersConfig {
            text_model: None,
            image_model: None,
            image_size: 224,
            max_tokens: 30,
            pooling: None,
            missing_images: MissingImage::Error,
            adapter_bottleneck: 64,
            lora_rank: 8,
            lora_alpha: 1.0,
            eval_chunk: 128,
            dtype: TowerDType::F32,
        }
    }
}

impl TowersConfig {
    /// The tuning a method applies to its towers.
    pub fn tuning(&self, method: Method) -> Result<TowerTuning> {
        Ok(match method {
            Method::Fft => TowerTuning::Full,
            Method::Adapter => TowerTuning::Adapter {
                r: self.adapter_bottleneck,
            },
            Method::Lora => TowerTuning::Lora {
                r: self.lora_rank,
                alpha: self.lora_alpha,
            },
            Method::Bitfit => TowerTuning::BitFit,
            Method::IisanUncached => TowerTuning::Frozen,
            m => {
                return Err(Error::Internal(format!(
                    "method {} does not run the towers",
                    m.name()
                )));
            }
        })
    }

    /// Check that at least one tower is configured, and that a half-precision `dtype` is asked
    /// only of towers that stay frozen, or is the training `precision` (mixed precision).
    pub fn validate(&self, method: Method, precision: TowerDType) -> Result<()> {
        let half = self.dtype != TowerDType::F32;
        if half && method != Method::IisanUncached && self.dtype != precision {
            return Err(Error::Config(format!(
                "model.towers.dtype = {:?} applies to frozen towers (iisan_uncached; `iisan \
                 encode --dtype` for the cache); method {} trains its towers in the training \
                 precision (train.precision = \"bf16\" or \"f16\" on a GPU)",
                self.dtype.name(),
                method.name()
            )));
        }
        if self.text_model.is_none() && self.image_model.is_none() {
            return Err(Error::Config(format!(
                "method {} runs the towers: set model.towers.text_model and/or \
                 model.towers.image_model (e.g. \"models/minilm\")",
                method.name()
            )));
        }
        Ok(())
    }
}
