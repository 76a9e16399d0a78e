//! The forward-pass context: training or evaluation mode, and dropout, whose masks come from the
//! context's seeded RNG (candle's CPU RNG cannot be seeded) so that runs are reproducible.
//! candle's fused softmax has no backward pass (docs/STACK.md section 3): in training the
//! context's softmax is built from primitive ops.

use std::cell::RefCell;

use candle_core::{D, DType, Tensor};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

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

    /// Softmax over the last dimension: differentiable primitive ops in training mode (in f32
    /// for a half-precision `x`, whose result comes back in its dtype: mixed precision keeps the
    /// softmax's statistics in f32), candle's fused kernel (no gradient) in evaluation mode.
    pub fn softmax_last(&self, x: &Tensor) -> Result<Tensor> {
        if self.train {
            let dtype = x.dtype();
            let y = candle_nn::ops::softmax(&x.to_dtype(DType::F32)?, D::Minus1)?;
            Ok(y.to_dtype(dtype)?)
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
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
