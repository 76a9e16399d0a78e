//! Which item-embedding method is trained, and how training computes (`train.kernels`): the two
//! choices every part of the model reads, in a file that imports nothing of the model.

use serde::{Deserialize, Serialize};

/// The item-embedding method being trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Item-ID embedding table: the classic SASRec baseline.
    Id,
    /// IISAN side network over the hidden-state cache.
    Iisan,
    /// IISAN with the frozen towers run in every step instead of read from the cache.
    #[serde(alias = "iisan-uncached")]
    IisanUncached,
    /// Full fine-tuning of the towers.
    Fft,
    /// Houlsby adapters in the towers.
    Adapter,
    /// LoRA on the towers' query and value.
    Lora,
    /// The towers' biases trainable.
    Bitfit,
}

impl Method {
    /// The method's config name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Id => "id",
            Method::Iisan => "iisan",
            Method::IisanUncached => "iisan_uncached",
            Method::Fft => "fft",
            Method::Adapter => "adapter",
            Method::Lora => "lora",
            Method::Bitfit => "bitfit",
        }
    }
}

/// How training computes the item tower (where it has kernels: IISAN), the SASRec user encoder
/// and the in-batch loss (`train.kernels`): hand-written CPU kernels with their own backward
/// (`cpu`, the default), or candle tensor ops differentiated by autograd (`autograd`: the
/// reference every kernel is tested against, and the path for devices other than the CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kernels {
    /// Hand-written kernels on the CPU (autograd on other devices).
    #[default]
    Cpu,
    /// candle ops and autograd.
    Autograd,
}
