//! Dynamic loss scaling for f16 training (docs/GPU.md, "Mixed precision for training"), as
//! PyTorch's `torch.cuda.amp.GradScaler` with its defaults, which the authors' training runs
//! under: the loss is multiplied by the scale before the backward pass so that small gradients
//! survive f16's range, and the gradients are divided by it before Adam. A step whose gradients
//! hold an infinity or a NaN is skipped and the scale halved; after 2,000 good steps in a row
//! it doubles. bf16 (f32's range) and f32 train without a scale.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::TowerDType;

/// The first scale (GradScaler's `init_scale`, 2^16).
pub const INITIAL: f64 = 65_536.0;
/// Good steps in a row after which the scale doubles (GradScaler's `growth_interval`).
pub const GROWTH_INTERVAL: u32 = 2_000;
/// Below this scale (2^-24, f16's smallest subnormal) every step has overflowed from 2^16
/// forty times in a row: the gradients are not finite at any scale, and training stops as
/// diverged instead of skipping steps forever.
pub const FLOOR: f64 = 5.960_464_477_539_063e-8;

/// The scaler's state: checkpointed with the run so that a resumed run scales as the
/// uninterrupted one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    /// The current scale.
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good: u32,
    /// Steps skipped for non-finite gradients, over the whole run.
    pub skipped: u64,
}

/// The loss scale of a run: dynamic under f16, none otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct LossScaler {
    state: Option<LossScale>,
}

impl LossScaler {
    /// The scaler training in `precision` needs.
    pub fn new(precision: TowerDType) -> LossScaler {
        LossScaler {
            state: (precision == TowerDType::F16).then_some(LossScale {
                scale: INITIAL,
                good: 0,
                skipped: 0,
            }),
        }
    }

    /// The factor the loss is multiplied by before the backward pass (1 without scaling).
    pub fn scale(&self) -> f64 {
        self.state.map_or(1.0, |s| s.scale)
    }

    /// After a backward pass whose unscaled gradients were all `finite` or not: whether the
    /// step is taken. Without scaling every step is taken (a non-finite gradient there is a
    /// divergence, for the trainer to report). With it, an overflow skips the step and halves
    /// the scale, and a run of [`GROWTH_INTERVAL`] good steps doubles it; a scale below
    /// [`FLOOR`] is an error.
    pub fn update(&mut self, finite: bool) -> Result<bool> {
        let Some(s) = &mut self.state else {
            return Ok(true);
        };
        if finite {
            s.good += 1;
            if s.good == GROWTH_INTERVAL {
                (s.scale, s.good) = (s.scale * 2.0, 0);
            }
            return Ok(true);
        }
        (s.scale, s.good, s.skipped) = (s.scale * 0.5, 0, s.skipped + 1);
        if s.scale < FLOOR {
            return Err(Error::Diverged(format!(
                "the f16 gradients overflowed at every loss scale down to {:e} ({} steps \
                 skipped)",
                s.scale, s.skipped
            )));
        }
        Ok(false)
    }

    /// Steps skipped so far (0 without scaling).
    pub fn skipped(&self) -> u64 {
        self.state.map_or(0, |s| s.skipped)
    }

    /// The state to checkpoint (`None` without scaling).
    pub fn state(&self) -> Option<LossScale> {
        self.state
    }

    /// Continue from a checkpointed state; a checkpoint without one (written before loss
    /// scaling existed, or by a run in f32 / bf16) leaves the scaler as it is.
    pub fn restore(&mut self, state: Option<LossScale>) {
        if let (Some(s), Some(saved)) = (&mut self.state, state) {
            *s = saved;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand from GradScaler's rules: 2^16 to start; 1,999 good steps leave it, the 2,000th
    /// doubles it to 2^17 and restarts the count; an overflow halves it back to 2^16, counts a
    /// skip and restarts the count, so 1,999 more good steps leave it at 2^16.
    #[test]
    fn f16_grows_after_a_run_of_good_steps_and_halves_on_overflow() {
        let mut s = LossScaler::new(TowerDType::F16);
        assert_eq!(s.scale(), 65_536.0);
        for _ in 0..1_999 {
            assert!(s.update(true).unwrap());
        }
        assert_eq!(s.scale(), 65_536.0);
        assert!(s.update(true).unwrap());
        assert_eq!(s.scale(), 131_072.0);
        assert!(!s.update(false).unwrap());
        assert_eq!((s.scale(), s.skipped()), (65_536.0, 1));
        for _ in 0..1_999 {
            s.update(true).unwrap();
        }
        assert_eq!(s.scale(), 65_536.0);
        let saved = s.state();
        let mut t = LossScaler::new(TowerDType::F16);
        t.restore(saved);
        assert_eq!(t, s);
    }

    /// 2^16 halved 40 times is 2^-24, still allowed; the 41st overflow goes below it.
    #[test]
    fn overflowing_at_every_scale_is_a_divergence() {
        let mut s = LossScaler::new(TowerDType::F16);
        for _ in 0..40 {
            assert!(!s.update(false).unwrap());
        }
        assert_eq!(s.scale(), FLOOR);
        let e = s.update(false).unwrap_err();
        assert!(matches!(e, Error::Diverged(_)), "{e}");
        assert!(e.to_string().contains("41 steps skipped"), "{e}");
    }

    #[test]
    fn f32_and_bf16_take_every_step_unscaled() {
        for p in [TowerDType::F32, TowerDType::Bf16] {
            let mut s = LossScaler::new(p);
            assert_eq!(s.scale(), 1.0);
            assert!(s.update(false).unwrap());
            assert_eq!((s.skipped(), s.state()), (0, None));
        }
    }
}
