//! One training step: the loss (in-batch or full softmax) of a batch of users and the gradient
//! of every trainable parameter (docs/MODEL.md section 5), one graph and one backward pass
//! whichever engine runs the model's parts, then the grouped Adam update. The loop over epochs is
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

    /// One optimisation step on `users`; returns the loss.
    pub fn step(&mut self, users: &[usize]) -> Result<f32> {
        let mut prof = std::mem::take(&mut self.profile);
        let out = self.gradients(users, &mut prof).and_then(|(loss, grads)| {
            // a non-finite loss or gradient never reaches the weights
            check_finite(loss, &grads, self.model.params())?;
            prof.time("optimizer", || self.opt.step(&grads))?;
            Ok(loss)
        });
        self.profile = prof;
        out
    }

    /// The training loss of `users` and the gradient of every trainable parameter: the batch's
    /// loss on the model's graph (its parts' kernels as nodes on the kernel engine), then one
    /// backward pass ([`ParamStore::backward`]).
    pub fn gradients(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        let loss = self.forward(users, prof)?;
        let t0 = Instant::now();
        let (grads, phases) = self.model.params().backward(&loss)?;
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

/// Why a step must not update the weights: a non-finite or exploded loss, or the first parameter whose
/// gradient holds a non-finite value (found by its sum, which is finite exactly when every
/// element is, short of an overflow that is itself a divergence).
fn check_finite(loss: f32, grads: &GradStore, params: &ParamStore) -> Result<()> {
    if !loss.is_finite() {
        return Err(Error::Diverged(format!("the loss is {loss}")));
    }
    if loss > MAX_LOSS {
        return Err(Error::Diverged(format!(
            "the loss is {loss}, beyond {MAX_LOSS:e}: the scores have exploded"
        )));
    }
    for p in params.params() {
        if let Some(g) = grads.get(p.var.as_tensor()) {
            let s = g.sum_all()?.to_scalar::<f32>()?;
            if !s.is_finite() {
                return Err(Error::Diverged(format!(
                    "the gradient of {} is not finite",
                    p.name
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finite loss of 1e13 stops training as a divergence, like NaN; 10 passes.
    #[test]
    fn an_exploded_finite_loss_is_a_divergence() {
        let params = ParamStore::new(1, Device::Cpu);
        let v = candle_core::Var::new(1f32, &Device::Cpu).unwrap();
        let grads = v.as_tensor().backward().unwrap();
        for bad in [1e13f32, f32::NAN] {
            let e = check_finite(bad, &grads, &params).unwrap_err();
            assert!(matches!(e, Error::Diverged(_)), "{e}");
        }
        check_finite(10.0, &grads, &params).unwrap();
    }
}
