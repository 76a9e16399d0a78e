//! In-backbone parameter-efficient fine-tuning, the baselines IISAN is compared with (spec
//! section 7): Houlsby adapters, LoRA on query/value, BitFit and full fine-tuning, and the
//! [`TowerTuning`] that tells a tower which of them to build.
//!
//! - Adapter: `h + W_up relu(W_down h + b_down) + b_up` (D -> r -> D), weights N(0, 0.01),
//!   biases 0, after the attention-output dense and after the FFN-output dense of every layer.
//! - LoRA: `W x + b + (alpha / r) B A x` with the pretrained `W`, `b` KEPT (frozen), `A` `[r, in]`
//!   uniform(+-1/sqrt(in)) (PyTorch/PEFT's kaiming-uniform(a = sqrt 5)), `B` `[out, r]` zero, so
//!   training starts exactly at the pretrained function.
//! - BitFit: the towers' biases trainable, nothing added. Full: every tower weight trainable.

use candle_core::{Module, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::nn::frozen::{self, Dense};
use crate::nn::params::{Init, ParamStore};

/// Learning-rate group of adapters (spec: 4e-4).
pub const GROUP_ADAPTER: &str = "adapter";
/// Learning-rate group of LoRA matrices (spec: 4e-4).
pub const GROUP_LORA: &str = "lora";
/// Learning-rate group of the text tower's own weights under full fine-tuning (5e-5).
pub const GROUP_TEXT_TOWER: &str = "text_tower";
/// Learning-rate group of the image tower's own weights under full fine-tuning (1e-4).
pub const GROUP_IMAGE_TOWER: &str = "image_tower";

/// Which parameters of a pretrained tower train, and what is added to it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TowerTuning {
    /// Nothing trains (cached / uncached IISAN read the frozen states).
    Frozen,
    /// Every tower weight trains (FFT).
    Full,
    /// Houlsby adapters of bottleneck `r`; the tower stays frozen.
    Adapter {
        /// Bottleneck width.
        r: usize,
    },
    /// LoRA of rank `r` and scale `alpha / r` on query and value.
    Lora {
        /// Rank.
        r: usize,
        /// Alpha (scale = alpha / r).
        alpha: f64,
    },
    /// Only the towers' biases train.
    BitFit,
}

impl TowerTuning {
    /// Whether the pretrained tensor `name` (a safetensors key) trains under this tuning.
    pub fn trains_pretrained(&self, name: &str) -> bool {
        match self {
            TowerTuning::Full => true,
            TowerTuning::BitFit => name.ends_with(".bias") || name.ends_with(".beta"),
            _ => false,
        }
    }
}

/// What a tower constructor needs to add PEFT modules: the store, the tuning and the tower's
/// parameter-name prefix (`text` / `image`).
pub struct PeftBuilder<'a> {
    /// Where added parameters live.
    pub store: &'a mut ParamStore,
    /// The tuning.
    pub tuning: TowerTuning,
    /// Name prefix of this tower's added parameters.
    pub prefix: String,
}

impl PeftBuilder<'_> {
    /// The adapter of layer `layer` at `site` (`attn` / `ffn`), if the tuning adds adapters.
    pub fn adapter(&mut self, layer: usize, site: &str, dim: usize) -> Result<Option<Adapter>> {
        let TowerTuning::Adapter { r } = self.tuning else {
            return Ok(None);
        };
        let name = format!("{}.layer{layer}.adapter_{site}", self.prefix);
        Ok(Some(Adapter::new(self.store, &name, dim, r)?))
    }

    /// `base` wrapped with LoRA (if the tuning adds it) as layer `layer`'s `which` projection.
    pub fn project(&mut self, base: Dense, layer: usize, which: &str) -> Result<Proj> {
        let TowerTuning::Lora { r, alpha } = self.tuning else {
            return Ok(Proj::Plain(base));
        };
        let name = format!("{}.layer{layer}.lora_{which}", self.prefix);
        Ok(Proj::Lora(LoraLinear::new(
            self.store, &name, base, r, alpha,
        )?))
    }
}

/// A Houlsby adapter with its own skip connection.
#[derive(Debug, Clone)]
pub struct Adapter {
    down: Dense,
    up: Dense,
}

impl Adapter {
    /// `name.down` (D -> r) and `name.up` (r -> D), group `adapter`.
    pub fn new(store: &mut ParamStore, name: &str, dim: usize, r: usize) -> Result<Adapter> {
        let init = Init::Normal(0.01);
        let mut dense = |n: &str, i: usize, o: usize| -> Result<Dense> {
            let l = store.linear(&format!("{name}.{n}"), i, o, true, init, GROUP_ADAPTER)?;
            Ok(Dense::new(l.weight().clone(), l.bias().cloned()))
        };
        Ok(Adapter {
            down: dense("down", dim, r)?,
            up: dense("up", r, dim)?,
        })
    }

    /// `h + up(relu(down(h)))`.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let up = self.up.forward(&self.down.forward(h)?.relu()?)?;
        Ok(frozen::add(h, &up)?)
    }
}

/// A frozen pretrained Linear plus a trainable low-rank update.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    base: Dense,
    a: Tensor,
    b: Tensor,
    scale: f64,
}

impl LoraLinear {
    /// Wrap `base` (`[out, in]`) with `name.a` `[r, in]` and `name.b` `[out, r]` (zero).
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        base: Dense,
        r: usize,
        alpha: f64,
    ) -> Result<LoraLinear> {
        let (out, inp) = base.weight().dims2()?;
        let bound = 1.0 / (inp as f64).sqrt();
        let a = store.add(
            &format!("{name}.a"),
            &[r, inp],
            Init::Uniform(bound),
            GROUP_LORA,
        )?;
        let b = store.add(&format!("{name}.b"), &[out, r], Init::Zeros, GROUP_LORA)?;
        Ok(LoraLinear {
            base,
            a,
            b,
            scale: alpha / r as f64,
        })
    }
}

impl Module for LoraLinear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.base.forward(x)?;
        let low = Dense::new(self.a.clone(), None).forward(x)?;
        let up = (Dense::new(self.b.clone(), None).forward(&low)? * self.scale)?;
        frozen::add(&y, &up)
    }
}

/// A projection that may carry LoRA.
#[derive(Debug, Clone)]
pub enum Proj {
    /// The pretrained layer.
    Plain(Dense),
    /// The pretrained layer with a LoRA update.
    Lora(LoraLinear),
}

impl Module for Proj {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Proj::Plain(l) => l.forward(x),
            Proj::Lora(l) => l.forward(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// With B = 0 (its initial value) LoRA returns exactly the pretrained layer's output; with
    /// a zero up-projection an adapter returns exactly its input.
    #[test]
    fn zero_initialised_updates_are_exact_identities() {
        let dev = Device::Cpu;
        let mut s = ParamStore::new(1, dev.clone());
        let w = Tensor::randn(0f32, 1.0, (6, 5), &dev).unwrap();
        let bias = Tensor::randn(0f32, 1.0, 6, &dev).unwrap();
        let base = Dense::new(w, Some(bias));
        let lora = LoraLinear::new(&mut s, "l", base.clone(), 2, 1.0).unwrap();
        let x = Tensor::randn(0f32, 1.0, (3, 4, 5), &dev).unwrap();
        let want = base.forward(&x).unwrap().flatten_all().unwrap();
        let got = lora.forward(&x).unwrap().flatten_all().unwrap();
        assert_eq!(
            got.to_vec1::<f32>().unwrap(),
            want.to_vec1::<f32>().unwrap()
        );
        // the low-rank path is live: A is non-zero, B zero
        assert!(
            lora.a
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
                > 0.0
        );
        let ad = Adapter::new(&mut s, "ad", 5, 3).unwrap();
        let ad = Adapter {
            down: ad.down,
            up: Dense::new(
                Tensor::zeros((5, 3), candle_core::DType::F32, &dev).unwrap(),
                Some(Tensor::zeros(5, candle_core::DType::F32, &dev).unwrap()),
            ),
        };
        let h = Tensor::randn(0f32, 1.0, (2, 5), &dev).unwrap();
        assert_eq!(
            ad.forward(&h).unwrap().to_vec2::<f32>().unwrap(),
            h.to_vec2::<f32>().unwrap()
        );
        // 2 LoRA matrices: 2*5 + 6*2 = 22; adapter 5*3 + 3 + 3*5 + 5 = 38.
        assert_eq!(s.num_trainable(), 22 + 38);
        assert!(TowerTuning::BitFit.trains_pretrained("encoder.layer.0.output.dense.bias"));
        assert!(!TowerTuning::BitFit.trains_pretrained("encoder.layer.0.output.dense.weight"));
        assert!(TowerTuning::Full.trains_pretrained("embeddings.word_embeddings.weight"));
        assert!(!TowerTuning::Lora { r: 8, alpha: 1.0 }.trains_pretrained("x.bias"));
    }
}
