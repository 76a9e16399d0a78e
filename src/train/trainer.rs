//! One training step: the in-batch loss of a batch of users and the gradient of every
//! trainable parameter (docs/MODEL.md section 5), on the CPU kernels or by autograd
//! (`train.kernels`), then the grouped Adam update. The loop over epochs is [`super::fit`]; the
//! trainer borrows the [`TrainedModel`] it fits, which outlives it.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::loss::{InBatchLoss, LossInput, LossPlan};
use super::optim::GroupedAdam;
use crate::config::Plan;
use crate::data::batch::{TrainBatch, dedup_slots, input_rows};
use crate::data::{Dataset, Split};
use crate::efficiency::Profile;
use crate::error::{Error, Result};
use crate::eval::EvalResult;
use crate::model::sasrec::kernel::{UserInput, UserKernel};
use crate::model::{Kernels, TowerBackward, TrainedModel, UserEncoder};
use crate::nn::{Ctx, GradSink, Kernel, ParamStore};
use crate::progress::Reporter;

/// One forward pass of the training loss; with an item tower that has its own backward, the
/// embeddings' leaf variable and that backward.
struct LossPass {
    loss: Tensor,
    kernel: Option<(Var, TowerBackward)>,
}

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
        let seed = plan.cfg.train.seed;
        Ok(Trainer {
            plan,
            data,
            model,
            opt: GroupedAdam::new(model.params(), &plan.cfg)?,
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

    /// The training loss of `users` and the gradient of every trainable parameter: the user
    /// encoder and loss on their hand-written kernels (`train.kernels = "cpu"`) or
    /// by autograd; the item tower's own backward when it has one, autograd otherwise.
    pub fn gradients(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        if self.plan.cfg.train.kernels == Kernels::Cpu && self.device.is_cpu() {
            return self.gradients_cpu(users, prof);
        }
        let pass = self.forward(users, prof)?;
        let mut grads = prof.time("autograd backward", || pass.loss.backward())?;
        if let Some((emb, backward)) = pass.kernel {
            let g = grads
                .remove(emb.as_tensor())
                .ok_or_else(|| Error::Internal("no gradient reached the item embeddings".into()))?;
            backward(&g, &mut grads, prof)?;
        }
        Ok((pass.loss.to_scalar::<f32>()?, grads))
    }

    /// The training loss of `users` (training mode: dropout active). With an item tower that has its own backward
    /// the value is the same but the tower's parameters are not in its graph: use
    /// [`Trainer::gradients`] for gradients.
    pub fn loss(&self, users: &[usize]) -> Result<Tensor> {
        Ok(self.forward(users, &mut Profile::default())?.loss)
    }

    /// The batch of `users`, its distinct items and each slot's entry in `[zero; distinct]`.
    fn batch(&self, users: &[usize], prof: &mut Profile) -> (TrainBatch, Vec<u32>, Vec<u32>) {
        prof.time("batch", || {
            let tb = TrainBatch::new(self.data, users);
            let (uniq, inv) = dedup_slots(&tb.slots);
            (tb, uniq, inv)
        })
    }

    /// Training-mode embeddings of `uniq` `[U, d]`, and the tower's own backward when it has one
    /// (otherwise the embeddings carry the autograd graph).
    fn embed(&self, uniq: &[u32], prof: &mut Profile) -> Result<(Tensor, Option<TowerBackward>)> {
        Ok(match self.model.tower().embed_kernel(uniq, prof)? {
            Some(f) => (f.emb, Some(f.backward)),
            None => {
                let e = prof.time("item tower forward", || {
                    self.model.tower().embed(uniq, &self.dropout_ctx)
                })?;
                (e, None)
            }
        })
    }

    /// [`Trainer::gradients`] with the user encoder and loss on their CPU kernels.
    fn gradients_cpu(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        let d = self.plan.cfg.model.user.dim;
        let (tb, uniq, inv) = self.batch(users, prof);
        let (emb, tower_backward) = self.embed(&uniq, prof)?;
        let (_, rows, in_rows) = input_rows(&tb, &inv);
        let mut table = vec![0f32; d];
        table.extend(emb.flatten_all()?.to_vec1::<f32>()?);
        let kernel = UserKernel::read(self.model.user())?;
        let e: Vec<f32> = in_rows
            .iter()
            .flat_map(|&i| table[i as usize * d..(i as usize + 1) * d].iter().copied())
            .collect();
        let input = UserInput {
            e: &e,
            rows: &rows,
            ctx: &self.dropout_ctx,
        };
        let run = prof.time("user encoder forward", || kernel.forward(input));
        let lg = prof.time("loss", || {
            let loss = InBatchLoss::new(&tb, &inv, uniq.len() + 1, &rows, &self.data.pop);
            let input = LossInput {
                p: run.output(),
                table: &table,
                d,
            };
            loss.backward(input, loss.forward(input), &[1.0])
        });
        let ug = prof.time("user encoder backward", || {
            kernel.backward(input, run, &lg.d_rows)
        });
        let de = ug.d_input;
        let mut d_table = lg.d_table;
        for (&i, g) in in_rows.iter().zip(de.chunks_exact(d)) {
            let row = &mut d_table[i as usize * d..(i as usize + 1) * d];
            row.iter_mut().zip(g).for_each(|(a, b)| *a += b);
        }
        let d_emb = Tensor::from_vec(d_table[d..].to_vec(), (uniq.len(), d), &self.device)?;
        // The tower's gradients: its own backward, or autograd from sum(emb * d_emb), whose
        // gradient with respect to every tower parameter is J^T d_emb.
        let mut grads = prof.time("autograd backward", || {
            emb.mul(&d_emb.detach())?.sum_all()?.backward()
        })?;
        if let Some(backward) = tower_backward {
            backward(&d_emb, &mut grads, prof)?;
        }
        let mut sink = GradSink::default();
        self.model.user().put_grads(ug.params, &mut sink);
        sink.insert_into(&mut grads)?;
        Ok((lg.loss, grads))
    }

    fn forward(&self, users: &[usize], prof: &mut Profile) -> Result<LossPass> {
        let d = self.plan.cfg.model.user.dim;
        let (tb, uniq, inv) = self.batch(users, prof);
        let b = tb.batch;
        let l = tb.width - 1;
        let (emb, kernel) = match self.embed(&uniq, prof)? {
            (e, Some(backward)) => {
                let v = Var::from_tensor(&e)?;
                (v.as_tensor().clone(), Some((v, backward)))
            }
            (e, None) => (e, None),
        };
        let (p, e) = prof.time("user encoder forward", || -> Result<_> {
            let zero = Tensor::zeros((1, d), DType::F32, &self.device)?;
            let table = Tensor::cat(&[&zero, &emb], 0)?;
            let (in_ids, rows, in_rows) = input_rows(&tb, &inv);
            let inputs =
                table.index_select(&Tensor::from_vec(in_rows, rows.count(), &self.device)?, 0)?;
            let inv = Tensor::from_vec(inv, tb.slots.len(), &self.device)?;
            let e = table.index_select(&inv, 0)?; // [B * W, d]
            let mask = UserEncoder::attention_mask(&in_ids, b, l, &self.device)?;
            let p = self
                .model
                .user()
                .forward_rows(&inputs, &rows, &mask, &self.dropout_ctx)?;
            Ok((p, e))
        })?;
        let loss = prof.time("loss forward", || -> Result<_> {
            let plan = LossPlan::new(&tb, &self.data.pop, &self.device)?;
            plan.loss_rows(&p, &e)
        })?;
        Ok(LossPass { loss, kernel })
    }

    /// Full-ranking evaluation of every user on `split` through the plan's evaluator.
    pub fn evaluate(&self, split: Split) -> Result<EvalResult> {
        self.plan.evaluator.evaluate(self.model, self.data, split)
    }
}

/// Why a step must not update the weights: a non-finite loss, or the first parameter whose
/// gradient holds a non-finite value (found by its sum, which is finite exactly when every
/// element is, short of an overflow that is itself a divergence).
fn check_finite(loss: f32, grads: &GradStore, params: &ParamStore) -> Result<()> {
    if !loss.is_finite() {
        return Err(Error::Diverged(format!("the loss is {loss}")));
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
