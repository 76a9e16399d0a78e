//! Small differentiable building blocks shared by the models.
//!
//! candle's fused LayerNorm and softmax have no backward pass (docs/STACK.md section 3), so the
//! LayerNorm here is written with primitive ops, and dropout draws its masks from the forward
//! context's seeded RNG (candle's CPU RNG cannot be seeded) so that runs are reproducible.

use std::cell::RefCell;

use candle_core::{D, Tensor};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use super::params::{Init, ParamStore};
use crate::error::Result;

/// Forward-pass context: training or evaluation mode, and the dropout RNG.
#[derive(Debug)]
pub struct Ctx {
    /// True in training mode (dropout active).
    pub train: bool,
    rng: RefCell<Xoshiro256PlusPlus>,
}

impl Ctx {
    /// A training context whose dropout masks derive from `seed`.
    pub fn train(seed: u64) -> Ctx {
        Ctx {
            train: true,
            rng: RefCell::new(Xoshiro256PlusPlus::seed_from_u64(seed)),
        }
    }

    /// An evaluation context (no dropout).
    pub fn eval() -> Ctx {
        Ctx {
            train: false,
            rng: RefCell::new(Xoshiro256PlusPlus::seed_from_u64(0)),
        }
    }

    /// Softmax over the last dimension: differentiable primitive ops in training mode, candle's
    /// fused kernel (no gradient) in evaluation mode.
    pub fn softmax_last(&self, x: &Tensor) -> Result<Tensor> {
        if self.train {
            Ok(candle_nn::ops::softmax(x, D::Minus1)?)
        } else {
            Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
        }
    }

    /// Inverted dropout with drop probability `p`: in training, each element is zeroed with
    /// probability `p` and the survivors scaled by `1 / (1 - p)`; identity in evaluation.
    pub fn dropout(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        if !self.train || p <= 0.0 {
            return Ok(x.clone());
        }
        if !x.device().is_cpu() {
            return self.dropout_on_device(x, p);
        }
        let mask = self
            .dropout_mask(x.elem_count(), p)
            .expect("training with p > 0");
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
        Ok(super::frozen::mul(x, &mask)?)
    }

    /// [`Ctx::dropout`] on a GPU: the mask is drawn there by the device's generator, seeded from
    /// this context's stream (one draw per call), so a seed still fixes every mask, but they
    /// are not the CPU's masks (docs/GPU.md: the device check compares with dropout off).
    fn dropout_on_device(&self, x: &Tensor, p: f32) -> Result<Tensor> {
        let seed = self.rng.borrow_mut().next_u64();
        x.device().set_seed(seed)?;
        let keep = Tensor::rand(0f32, 1f32, x.shape(), x.device())?.ge(p as f64)?;
        let mask = (keep.to_dtype(x.dtype())? * (1.0 / (1.0 - p as f64)))?;
        Ok(super::frozen::mul(x, &mask)?)
    }

    /// The state of the dropout stream (to checkpoint a run and resume it exactly).
    pub fn rng_state(&self) -> Xoshiro256PlusPlus {
        self.rng.borrow().clone()
    }

    /// Continue the dropout stream from `state` (from [`Ctx::rng_state`]).
    pub fn set_rng_state(&self, state: Xoshiro256PlusPlus) {
        *self.rng.borrow_mut() = state;
    }

    /// The next inverted-dropout mask of `n` elements (0 with probability `p`, else
    /// `1 / (1 - p)`), drawn from the same stream as [`Ctx::dropout`]; `None` in evaluation
    /// mode or when `p <= 0`. Kernels that apply dropout themselves draw their masks here, in
    /// the order the tensor version applies them, so both see the same masks.
    pub fn dropout_mask(&self, n: usize, p: f32) -> Option<Vec<f32>> {
        if !self.train || p <= 0.0 {
            return None;
        }
        let scale = 1.0 / (1.0 - p);
        // Each 64-bit draw decides two elements: dropped when its 32-bit half < p * 2^32.
        let threshold = (p as f64 * 4_294_967_296.0) as u64;
        let pick = |half: u64| if half < threshold { 0.0 } else { scale };
        let mut rng = self.rng.borrow_mut();
        let mut mask = Vec::with_capacity(n + 1);
        for _ in 0..n.div_ceil(2) {
            let r = rng.next_u64();
            mask.push(pick(r & 0xffff_ffff));
            mask.push(pick(r >> 32));
        }
        mask.truncate(n);
        Some(mask)
    }
}

/// LayerNorm over the last dimension, built from differentiable primitive ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A LayerNorm of width `dim` (weight 1, bias 0) registered as `name.weight` / `name.bias`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        eps: f64,
        group: &'static str,
    ) -> Result<Self> {
        let weight = store.add(&format!("{name}.weight"), &[dim], Init::Ones, group)?;
        let bias = store.add(&format!("{name}.bias"), &[dim], Init::Zeros, group)?;
        Ok(LayerNorm { weight, bias, eps })
    }

    /// A LayerNorm over given `weight` and `bias` tensors (e.g. loaded, frozen weights).
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        LayerNorm { weight, bias, eps }
    }

    /// [`LayerNorm::forward`] in training mode when the scale trains; with a frozen scale
    /// (a tower under Adapter, LoRA, BitFit) [`super::frozen::layer_norm`], which computes no
    /// gradient for it; in evaluation mode candle's fused kernel, which is faster but passes no
    /// gradient (only for frozen inference).
    pub fn forward_t(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        if ctx.train && self.weight.track_op() {
            self.forward(x)
        } else if ctx.train {
            Ok(super::frozen::layer_norm(
                x,
                &self.weight,
                &self.bias,
                self.eps,
            )?)
        } else {
            Ok(candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?)
        }
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias`, biased variance, over the last dim.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(xn.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)?)
    }

    /// The scale (gamma) tensor.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift (beta) tensor.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::params::GROUP_DEFAULT;
    use candle_core::{Device, Var};

    #[test]
    fn layer_norm_values_and_gradients() {
        // x = [1, 2, 3, 6]: mean 3, deviations [-2,-1,0,3], var = (4+1+0+9)/4 = 3.5,
        // normalised = dev / sqrt(3.5) = [-1.0690, -0.5345, 0, 1.6036].
        let mut s = ParamStore::new(0, Device::Cpu);
        let ln = LayerNorm::new(&mut s, "ln", 4, 0.0, GROUP_DEFAULT).unwrap();
        let x = Var::new(&[1f32, 2., 3., 6.], &Device::Cpu).unwrap();
        let y = ln.forward(x.as_tensor()).unwrap();
        let v: Vec<f32> = y.to_vec1().unwrap();
        let want = [-1.069_045, -0.534_522_5, 0.0, 1.603_567_5];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
        // Every parameter and the input receive a gradient (the fused op would give none).
        let loss = y
            .mul(&Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        for p in s.params() {
            let gp = g.get(&p.var).expect("gradient");
            assert!(
                gp.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0,
                "{}",
                p.name
            );
        }
        assert!(g.get(&x).is_some());
    }

    #[test]
    fn dropout_scales_survivors_and_is_seeded() {
        let x = Tensor::ones(1000, candle_core::DType::F32, &Device::Cpu).unwrap();
        let a: Vec<f32> = Ctx::train(5).dropout(&x, 0.25).unwrap().to_vec1().unwrap();
        let b: Vec<f32> = Ctx::train(5).dropout(&x, 0.25).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        assert!(a.iter().all(|&v| v == 0.0 || (v - 4.0 / 3.0).abs() < 1e-6));
        let zeros = a.iter().filter(|&&v| v == 0.0).count();
        assert!((200..300).contains(&zeros), "{zeros}");
        let e: Vec<f32> = Ctx::eval().dropout(&x, 0.25).unwrap().to_vec1().unwrap();
        assert!(e.iter().all(|&v| v == 1.0));
    }
}
