//! The training loop: shuffled user batches, Adam with parameter groups, validation after every
//! epoch, early stopping on the validation selection metric, and test metrics with the best
//! epoch's parameters (spec section 5). It knows item towers only through [`ItemTower`].

use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::loss::{InBatchLoss, LossPlan};
use super::optim::GroupedAdam;
use super::run_dir::{DatasetInfo, EpochRecord, GIT_REV, MaskedMetrics, RunDir, Summary};
use crate::config::Config;
use crate::data::batch::{PackedRows, TrainBatch, dedup_slots, eval_inputs, input_rows};
use crate::data::{Dataset, Split};
use crate::efficiency::{Efficiency, Profile, peak_rss_mib};
use crate::error::{Error, Result};
use crate::eval::{Mask, Metrics, ranking::rank_chunked};
use crate::model::sasrec::UserKernel;
use crate::model::{ItemTower, Kernels, TowerBackward, UserEncoder, build_tower};
use crate::nn::{Ctx, ParamStore};

/// Validation or test metrics under both masks, and the seconds they took.
#[derive(Debug, Clone)]
pub struct EvalResult {
    /// Metrics under both conventions.
    pub metrics: MaskedMetrics,
    /// Seconds.
    pub seconds: f64,
}

impl EvalResult {
    /// Metrics under `mask`.
    pub fn get(&self, mask: Mask) -> &Metrics {
        match mask {
            Mask::History => &self.metrics.history,
            Mask::None => &self.metrics.none,
        }
    }
}

/// One forward pass of the training loss; with a fused item tower, the embeddings' leaf
/// variable and the tower's backward.
struct LossPass {
    loss: Tensor,
    fused: Option<(Var, TowerBackward)>,
}

/// A model being trained on a dataset.
pub struct Trainer<'a> {
    cfg: Config,
    data: &'a Dataset,
    store: ParamStore,
    tower: Box<dyn ItemTower>,
    user: UserEncoder,
    opt: GroupedAdam,
    device: Device,
    shuffle_rng: StdRng,
    dropout_ctx: Ctx,
    profile: Profile,
    /// Whether to draw progress bars.
    pub progress: bool,
}

impl<'a> Trainer<'a> {
    /// Build the model of `cfg.model` for `data` on the CPU.
    pub fn new(cfg: &Config, data: &'a Dataset) -> Result<Self> {
        let device = Device::Cpu;
        let mut store = ParamStore::new(cfg.train.seed, device.clone());
        let tower = build_tower(
            &cfg.model,
            cfg.data.cache.as_deref(),
            cfg.train.kernels,
            data,
            &mut store,
        )?;
        let user = UserEncoder::new(&mut store, &cfg.model.user, data.max_seq_len)?;
        let opt = GroupedAdam::new(&store, cfg)?;
        Ok(Trainer {
            cfg: cfg.clone(),
            data,
            store,
            tower,
            user,
            opt,
            device,
            shuffle_rng: StdRng::seed_from_u64(cfg.train.seed.wrapping_add(1)),
            dropout_ctx: Ctx::train(cfg.train.seed.wrapping_add(2)),
            profile: Profile::default(),
            progress: true,
        })
    }

    /// The trainable parameters.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// Seconds per phase so far (training steps and evaluations).
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// One optimisation step on `users`; returns the loss.
    pub fn step(&mut self, users: &[usize]) -> Result<f32> {
        let mut prof = std::mem::take(&mut self.profile);
        let out = self.gradients(users, &mut prof).and_then(|(loss, grads)| {
            prof.time("optimizer", || self.opt.step(&grads))?;
            Ok(loss)
        });
        self.profile = prof;
        out
    }

    /// The training loss of `users` and the gradient of every trainable parameter: the user
    /// encoder and loss on their hand-written kernels (`model.user.kernels = "fused"`, CPU) or
    /// by autograd; the item tower's own backward when it has one, autograd otherwise.
    pub fn gradients(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        if self.cfg.train.kernels == Kernels::Cpu && self.device.is_cpu() {
            return self.gradients_fused(users, prof);
        }
        let pass = self.forward(users, prof)?;
        let mut grads = prof.time("autograd backward", || pass.loss.backward())?;
        if let Some((emb, backward)) = pass.fused {
            let g = grads
                .remove(emb.as_tensor())
                .ok_or_else(|| Error::Internal("no gradient reached the item embeddings".into()))?;
            backward(&g, &mut grads, prof)?;
        }
        Ok((pass.loss.to_scalar::<f32>()?, grads))
    }

    /// The training loss of `users` (training mode: dropout active). With a fused item tower
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
        Ok(match self.tower.embed_kernel(uniq, prof)? {
            Some(f) => (f.emb, Some(f.backward)),
            None => {
                let e = prof.time("item tower forward", || {
                    self.tower.embed(uniq, &self.dropout_ctx)
                })?;
                (e, None)
            }
        })
    }

    /// [`Trainer::gradients`] with the user encoder and loss on their CPU kernels.
    fn gradients_fused(&self, users: &[usize], prof: &mut Profile) -> Result<(f32, GradStore)> {
        let d = self.cfg.model.user.dim;
        let (tb, uniq, inv) = self.batch(users, prof);
        let (emb, tower_backward) = self.embed(&uniq, prof)?;
        let (_, rows, in_rows) = input_rows(&tb, &inv);
        let mut table = vec![0f32; d];
        table.extend(emb.flatten_all()?.to_vec1::<f32>()?);
        let kernel = UserKernel::read(&self.user)?;
        let run = prof.time("user encoder forward", || {
            let e: Vec<f32> = in_rows
                .iter()
                .flat_map(|&i| table[i as usize * d..(i as usize + 1) * d].iter().copied())
                .collect();
            kernel.forward(&e, &rows, &self.dropout_ctx)
        });
        let lg = prof.time("loss", || {
            InBatchLoss::new(&tb, &inv, uniq.len() + 1, &rows, &self.data.pop).forward_backward(
                run.output(),
                &table,
                d,
            )
        });
        let (de, user_grads) = prof.time("user encoder backward", || {
            kernel.backward(&run, &lg.d_rows)
        });
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
        for (t, g) in self.user.parameters().into_iter().zip(user_grads) {
            grads.insert(t, Tensor::from_vec(g, t.shape(), &self.device)?);
        }
        Ok((lg.loss, grads))
    }

    fn forward(&self, users: &[usize], prof: &mut Profile) -> Result<LossPass> {
        let d = self.cfg.model.user.dim;
        let (tb, uniq, inv) = self.batch(users, prof);
        let b = tb.batch;
        let l = tb.width - 1;
        let (emb, fused) = match self.embed(&uniq, prof)? {
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
                .user
                .forward_rows(&inputs, &rows, &mask, &self.dropout_ctx)?;
            Ok((p, e))
        })?;
        let loss = prof.time("loss forward", || -> Result<_> {
            let plan = LossPlan::new(&tb, &self.data.pop, &self.device)?;
            plan.loss_rows(&p, &e)
        })?;
        Ok(LossPass { loss, fused })
    }

    /// Full-ranking evaluation of every user on `split`, under both masks.
    pub fn evaluate(&self, split: Split) -> Result<EvalResult> {
        let t0 = Instant::now();
        let ctx = Ctx::eval();
        let ec = &self.cfg.eval;
        let all = self
            .tower
            .embed_all(self.data.num_items(), ec.item_chunk, &ctx)?;
        let l = self.data.max_seq_len;
        let users: Vec<usize> = (0..self.data.num_users()).collect();
        let mut ranks = Vec::with_capacity(users.len());
        for chunk in users.chunks(ec.user_chunk) {
            let ids = eval_inputs(self.data, chunk, split);
            let rows = PackedRows::of(&ids, chunk.len(), l);
            let real: Vec<u32> = rows.flat.iter().map(|&f| ids[f as usize]).collect();
            let e = all.index_select(&Tensor::from_vec(real, rows.count(), &self.device)?, 0)?;
            let mask = UserEncoder::attention_mask(&ids, chunk.len(), l, &self.device)?;
            // each user's last position is real (its history is non-empty)
            let last: Vec<u32> = (0..chunk.len())
                .map(|u| rows.scatter[u * l + l - 1].saturating_sub(1))
                .collect();
            let out = self
                .user
                .forward_rows(&e, &rows, &mask, &ctx)?
                .index_select(&Tensor::from_vec(last, chunk.len(), &self.device)?, 0)?
                .detach();
            let targets: Vec<u32> = chunk.iter().map(|&u| self.data.target(u, split)).collect();
            let hists: Vec<&[u32]> = chunk.iter().map(|&u| self.data.history(u, split)).collect();
            ranks.extend(rank_chunked(&out, &all, &targets, &hists, ec.item_chunk)?);
        }
        let of = |m: Mask| -> Vec<u64> { ranks.iter().map(|r| r.get(m)).collect() };
        Ok(EvalResult {
            metrics: MaskedMetrics {
                history: Metrics::from_ranks(&of(Mask::History), &ec.ks),
                none: Metrics::from_ranks(&of(Mask::None), &ec.ks),
            },
            seconds: t0.elapsed().as_secs_f64(),
        })
    }

    fn epoch_bar(&self, epoch: usize, steps: usize) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::new(steps as u64);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} steps {msg} {elapsed}<{eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.set_prefix(format!("epoch {epoch}"));
        pb
    }

    /// Train with early stopping, writing into `run`; returns the summary (test metrics with the
    /// best validation epoch's parameters).
    pub fn fit(&mut self, run: RunDir) -> Result<Summary> {
        let wall = Instant::now();
        let tc = self.cfg.train.clone();
        let mask = self.cfg.eval.mask;
        let n_users = self.data.num_users();
        let full_steps = n_users.div_ceil(tc.batch);
        let steps = if tc.max_steps_per_epoch > 0 {
            full_steps.min(tc.max_steps_per_epoch)
        } else {
            full_steps
        };
        let mut order: Vec<usize> = (0..n_users).collect();
        let (mut best, mut best_epoch, mut bad) = (f64::NEG_INFINITY, 0usize, 0usize);
        let mut best_state = self.store.snapshot()?;
        let mut best_valid = MaskedMetrics::default();
        let (mut eval_s, mut epochs_run, mut stopped_early) = (0.0, 0usize, false);
        // timed training steps and their seconds (warm-up steps excluded)
        let (mut timed_steps, mut timed_s, mut done_steps) = (0usize, 0.0, 0usize);
        let mut train_peak = None;
        for epoch in 1..=tc.epochs {
            order.shuffle(&mut self.shuffle_rng);
            let pb = self.epoch_bar(epoch, steps);
            let t0 = Instant::now();
            let mut total = 0.0;
            for (s, users) in order.chunks(tc.batch).take(steps).enumerate() {
                let ts = Instant::now();
                let loss = self.step(users)?;
                if done_steps >= tc.warmup_steps {
                    timed_s += ts.elapsed().as_secs_f64();
                    timed_steps += 1;
                }
                done_steps += 1;
                total += loss as f64;
                pb.inc(1);
                if s % 10 == 0 {
                    pb.set_message(format!("loss {:.4}", total / (s + 1) as f64));
                }
            }
            pb.finish_and_clear();
            let t_train = t0.elapsed().as_secs_f64();
            if epoch == 1 {
                train_peak = peak_rss_mib();
            }
            epochs_run = epoch;
            if self.cfg.eval.skip {
                let rec = EpochRecord {
                    epoch,
                    loss: total / steps as f64,
                    steps,
                    train_seconds: t_train,
                    eval_seconds: 0.0,
                    valid: MaskedMetrics::default(),
                    peak_rss_mib: peak_rss_mib(),
                };
                run.append_epoch(&rec)?;
                if self.progress {
                    eprintln!(
                        "epoch {epoch:>3}  loss {:.4}  train {t_train:.1}s ({steps} steps; no evaluation)",
                        rec.loss
                    );
                }
                best_epoch = epoch;
                continue;
            }
            let valid = self.evaluate(Split::Valid)?;
            self.profile.add("evaluation", valid.seconds);
            let score = valid.get(mask).get(&tc.select_metric);
            eval_s += valid.seconds;
            let rec = EpochRecord {
                epoch,
                loss: total / steps as f64,
                steps,
                train_seconds: t_train,
                eval_seconds: valid.seconds,
                valid: valid.metrics.clone(),
                peak_rss_mib: peak_rss_mib(),
            };
            run.append_epoch(&rec)?;
            let improved = score > best;
            if self.progress {
                eprintln!(
                    "epoch {epoch:>3}  loss {:.4}  valid {} {:.4} (mask {})  train {:.1}s  eval {:.1}s{}",
                    rec.loss,
                    tc.select_metric,
                    score,
                    mask.name(),
                    t_train,
                    valid.seconds,
                    if improved { "  *" } else { "" }
                );
            }
            if improved {
                (best, best_epoch, bad) = (score, epoch, 0);
                best_state = self.store.snapshot()?;
                best_valid = valid.metrics.clone();
                self.store
                    .save(&run.file("best.safetensors"), Some(&best_state))?;
            } else {
                bad += 1;
                if bad > tc.patience {
                    stopped_early = true;
                    break;
                }
            }
        }
        let test = if self.cfg.eval.skip {
            self.store.save(&run.file("last.safetensors"), None)?;
            MaskedMetrics::default()
        } else {
            self.store.restore(&best_state)?;
            let test = self.evaluate(Split::Test)?;
            self.profile.add("evaluation", test.seconds);
            test.metrics
        };
        if tc.profile && self.progress {
            eprintln!("time per phase (whole run):\n{}", self.profile.table());
        }
        if timed_steps == 0 {
            return Err(Error::Config(format!(
                "train.warmup_steps = {} leaves no timed step (the run has {done_steps})",
                tc.warmup_steps
            )));
        }
        let efficiency = Efficiency {
            trainable_params: self.store.num_trainable(),
            total_params: self.store.num_trainable() + self.tower.frozen_params(),
            seconds_per_epoch: timed_s / timed_steps as f64 * full_steps as f64,
            extrapolated: timed_steps < full_steps * epochs_run,
            eval_seconds: if self.cfg.eval.skip {
                0.0
            } else {
                eval_s / epochs_run as f64
            },
            peak_rss_mib: peak_rss_mib(),
            train_peak_rss_mib: train_peak,
            threads: candle_core::utils::get_num_threads(),
        };
        let summary = Summary {
            method: self.cfg.method_label(),
            dataset: DatasetInfo::of(self.data),
            selection_mask: mask.name().to_string(),
            select_metric: tc.select_metric.clone(),
            best_epoch,
            epochs_run,
            stopped_early,
            valid: best_valid,
            test,
            evaluated: !self.cfg.eval.skip,
            efficiency,
            profile: self.profile.clone(),
            wall_seconds: wall.elapsed().as_secs_f64(),
            seed: tc.seed,
            git_rev: GIT_REV.to_string(),
            run_dir: run.final_path().to_path_buf(),
        };
        run.finish(&summary)?;
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_maps_slots_to_distinct_rows() {
        // slots [0, 7, 3, 7, 0, 3]: distinct [3, 7]; rows: pad -> 0, 3 -> 1, 7 -> 2.
        let (u, inv) = dedup_slots(&[0, 7, 3, 7, 0, 3]);
        assert_eq!(u, [3, 7]);
        assert_eq!(inv, [0, 2, 1, 2, 0, 1]);
    }
}
