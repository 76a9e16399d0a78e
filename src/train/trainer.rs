//! One training step: the loss (in-batch or full softmax) of a batch of users and the gradient
//! of every trainable parameter (docs/MODEL.md section 5), one graph and one backward pass
//! whichever engine runs the model's parts, then the grouped Adam update. Under mixed
//! precision the gradients reach the f32 masters unscaled ([`ParamStore::master_grads`]), an
//! f16 step whose gradients overflowed is skipped ([`LossScaler`]), and the masters are rounded
//! into the graph's copies after each update. The loop over epochs is
//! [`super::fit`]; the trainer borrows the [`TrainedModel`] it fits, which outlives it.

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::loss::{Full, InBatch};
use super::optim::GroupedAdam;
use crate::config::{Loss, Plan};
use crate::data::batch::{TrainBatch, dedup_slots};
use crate::data::{Dataset, Split};
use crate::efficiency::Profile;
use crate::error::{Error, Result};
use crate::eval::EvalResult;
use crate::model::TrainedModel;
use crate::model::sasrec::RowsLoss;
use crate::nn::loss_scale::LossScaler;
use crate::nn::{Ctx, ParamStore};
use crate::progress::Reporter;

/// Fits a [`TrainedModel`] on a dataset.
pub struct Trainer<'a> {
    pub(super) plan: &'a Plan,
    pub(super) data: &'a Dataset,
    pub(super) model: &'a TrainedModel,
    pub(super) opt: GroupedAdam,
    device: Device,
    pub(super) shuffle_rng: StdRng,
    pub(super) dropout_ctx: Ctx,
    pub(super) profile: Profile,
    pub(super) scaler: LossScaler,
    /// Where the epochs' steps, ends and notes are reported, and whether to stop.
    pub progress: Reporter,
}

impl<'a> Trainer<'a> {
    /// A trainer of `model` on `data` under `plan` (Adam state fresh, RNGs from the seed).
    pub fn new(plan: &'a Plan, data: &'a Dataset, model: &'a TrainedModel) -> Result<Self> {
        let seed = plan.cfg().train.seed;
        Ok(Trainer {
            plan,
            data,
            model,
            opt: GroupedAdam::new(model.params(), plan.cfg(), model.engine())?,
            device: model.params().device().clone(),
            shuffle_rng: StdRng::seed_from_u64(seed.wrapping_add(1)),
            dropout_ctx: Ctx::train(seed.wrapping_add(2)),
            profile: Profile::default(),
            scaler: LossScaler::new(plan.cfg().train.precision),
            progress: Reporter::silent(),
        })
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        self.model.params()
    }

    /// Seconds per phase so far (training steps and evaluations).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// One optimisation step on `users`; returns the loss (an f16 step whose gradients
    /// overflowed is skipped: see [`Trainer::skipped_steps`]).
    pub fn step(&mut self, users: &[usize]) -> Result<f32> {
        let mut prof = std::mem::take(&mut self.profile);
        let out = self.gradients(users, &mut prof).and_then(|(loss, grads)| {
            let params = self.model.params();
            let bad = first_non_finite(loss, &grads, params)?;
            if !self.scaler.update(bad.is_none())? {
                return Ok(loss);
            }
            // a non-finite or exploded loss or gradient never reaches the weights
            if let Some(why) = bad {
                return Err(Error::Diverged(why));
            }
            check_exploded(loss)?;
            prof.time("optimizer", || -> Result<()> {
                self.opt.step(&grads)?;
                params.sync()
            })?;
            Ok(loss)
        });
        self.profile = prof;
        out
    }

    /// Steps skipped so far because their f16 gradients overflowed (0 in f32 and bf16).
    pub fn skipped_steps(&self) -> u64 {
        self.scaler.skipped()
    }

    /// The training loss of `users` and the gradient of every trainable parameter (of its f32
    /// master, unscaled): the batch's loss on the model's graph (its parts' kernels as nodes
    /// on the kernel engine), times the loss scale, then one backward pass
    /// ([`ParamStore::backward`]).
    pub fn gradients(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        let loss = self.forward(users, prof)?;
        let t0 = Instant::now();
        let scale = self.scaler.scale();
        let scaled = if scale == 1.0 {
            loss.clone()
        } else {
            (&loss * scale)?
        };
        let (grads, phases) = self.model.params().backward(&scaled)?;
        let grads = self.model.params().master_grads(grads, scale)?;
        let mut kernels = 0.0;
        for (phase, seconds) in &phases {
            prof.add(phase, *seconds);
            kernels += seconds;
        }
        // what candle's pass took besides the kernels' backward
        prof.add(
            "autograd backward",
            (t0.elapsed().as_secs_f64() - kernels).max(0.0),
        );
        Ok((loss.to_scalar::<f32>()?, grads))
    }

    /// [`Trainer::gradients`] for the device check: under f16 a batch whose gradients overflow
    /// is taken again at the halved scale (the dropout stream rewound) until they are finite,
    /// as the loss scaler would settle over the following steps, so that every batch compares
    /// a step the scaler takes.
    pub fn scaled_gradients(&mut self, users: &[usize]) -> Result<(f32, GradStore)> {
        let rng = self.dropout_ctx.rng_state();
        loop {
            let (loss, grads) = self.gradients(users, &mut Profile::default())?;
            let bad = first_non_finite(loss, &grads, self.model.params())?;
            if self.scaler.update(bad.is_none())? {
                return Ok((loss, grads));
            }
            self.dropout_ctx.set_rng_state(rng.clone());
        }
    }

    /// The training loss of `users` (training mode: dropout active), on the graph the
    /// backward differentiates.
    pub fn loss(&self, users: &[usize]) -> Result<Tensor> {
        self.forward(users, &mut Profile::default())
    }

    /// The batch of `users`, the items the loss needs embedded and each slot's entry in
    /// `[zero; those items]`: the batch's distinct items for the in-batch loss, every item of
    /// the catalogue (entry = item id) for the full softmax.
    fn batch(&self, users: &[usize], prof: &mut Profile) -> (TrainBatch, Vec<u32>, Vec<u32>) {
        prof.time("batch", || {
            let tb = TrainBatch::new(self.data, users);
            let (uniq, inv) = match self.plan.cfg().train.loss {
                Loss::InBatch => dedup_slots(&tb.slots),
                Loss::Full => {
                    let all = (1..self.data.item_keys.len() as u32).collect();
                    (all, tb.slots.clone())
                }
            };
            (tb, uniq, inv)
        })
    }

    /// The batch's loss: the item tower embeds the items the loss needs, the user encoder
    /// reads each user's inputs and the configured loss scores its outputs.
    fn forward(&self, users: &[usize], prof: &mut Profile) -> Result<Tensor> {
        let (tb, uniq, inv) = self.batch(users, prof);
        let ctx = &self.dropout_ctx;
        let emb = self.model.tower().embed_train(&uniq, ctx, prof)?;
        let (in_batch, full);
        let loss: &dyn RowsLoss = match self.plan.cfg().train.loss {
            Loss::InBatch => {
                in_batch = InBatch {
                    batch: &tb,
                    inv: &inv,
                    pop: &self.data.pop,
                    device: &self.device,
                };
                &in_batch
            }
            Loss::Full => {
                full = Full {
                    batch: &tb,
                    device: &self.device,
                };
                &full
            }
        };
        self.model
            .user()
            .train_loss(&emb, &tb, &inv, loss, (ctx, prof))
    }

    /// Full-ranking evaluation of every user on `split` through the plan's evaluator.
    pub fn evaluate(&self, split: Split) -> Result<EvalResult> {
        self.plan.evaluator().evaluate(self.model, self.data, split)
    }
}

/// A loss above this has exploded though it is finite: the in-batch softmax loss starts near
/// ln(candidates) (about 10 for any realistic batch) and a loss of 1e6 needs score gaps of a
/// million, which no model that is still learning produces.
const MAX_LOSS: f32 = 1e6;

/// A finite loss beyond [`MAX_LOSS`] is a divergence.
fn check_exploded(loss: f32) -> Result<()> {
    if loss > MAX_LOSS {
        return Err(Error::Diverged(format!(
            "the loss is {loss}, beyond {MAX_LOSS:e}: the scores have exploded"
        )));
    }
    Ok(())
}

/// Why a step's values are not finite, if they are not: the loss, or the first parameter whose
/// gradient holds a non-finite value. Each gradient's sum is finite exactly when every element
/// is (short of an overflow, itself a divergence); the sums are added on the device and read
/// back once, and searched one by one only when their total is not finite.
fn first_non_finite(loss: f32, grads: &GradStore, params: &ParamStore) -> Result<Option<String>> {
    if !loss.is_finite() {
        return Ok(Some(format!("the loss is {loss}")));
    }
    let sums: Vec<(&str, Tensor)> = params
        .params()
        .iter()
        .filter_map(|p| Some((p.name.as_str(), grads.get(p.var.as_tensor())?)))
        .map(|(n, g)| Ok((n, g.sum_all()?)))
        .collect::<Result<_>>()?;
    if sums.is_empty() {
        return Ok(None);
    }
    let all: Vec<Tensor> = sums.iter().map(|(_, s)| s.clone()).collect();
    if Tensor::stack(&all, 0)?
        .sum_all()?
        .to_scalar::<f32>()?
        .is_finite()
    {
        return Ok(None);
    }
    for (name, s) in sums {
        if !s.to_scalar::<f32>()?.is_finite() {
            return Ok(Some(format!("the gradient of {name} is not finite")));
        }
    }
    // finite parts whose total overflowed
    Ok(Some("the gradients' sum overflows".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finite loss of 1e13 stops training as a divergence; NaN is not finite; 10 passes.
    #[test]
    fn an_exploded_finite_loss_is_a_divergence() {
        let params = ParamStore::new(1, Device::Cpu);
        let v = candle_core::Var::new(1f32, &Device::Cpu).unwrap();
        let grads = v.as_tensor().backward().unwrap();
        let e = check_exploded(1e13).unwrap_err();
        assert!(matches!(e, Error::Diverged(_)), "{e}");
        check_exploded(10.0).unwrap();
        let why = first_non_finite(f32::NAN, &grads, &params).unwrap();
        assert_eq!(why.as_deref(), Some("the loss is NaN"));
        assert_eq!(first_non_finite(10.0, &grads, &params).unwrap(), None);
    }

    /// Gradients [1, 2] and [inf, 0] (by hand: sums 3 and inf, total inf) name the second
    /// parameter; [1, 2] and [0, 5] are finite.
    #[test]
    fn the_first_non_finite_gradient_is_named() {
        let mut params = ParamStore::new(1, Device::Cpu);
        let a = params
            .add("a", &[2], crate::nn::Init::Zeros, "default")
            .unwrap();
        let b = params
            .add("b", &[2], crate::nn::Init::Zeros, "default")
            .unwrap();
        let dev = Device::Cpu;
        let loss = |wa: [f32; 2], wb: [f32; 2]| {
            let wa = Tensor::new(&wa, &dev).unwrap();
            let wb = Tensor::new(&wb, &dev).unwrap();
            (a.mul(&wa).unwrap().sum_all().unwrap() + b.mul(&wb).unwrap().sum_all().unwrap())
                .unwrap()
                .backward()
                .unwrap()
        };
        let g = loss([1.0, 2.0], [f32::INFINITY, 0.0]);
        let why = first_non_finite(1.0, &g, &params).unwrap();
        assert_eq!(why.as_deref(), Some("the gradient of b is not finite"));
        let g = loss([1.0, 2.0], [0.0, 5.0]);
        assert_eq!(first_non_finite(1.0, &g, &params).unwrap(), None);
    }
}
