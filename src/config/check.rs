//! The checked configuration (linfa's `ParamGuard` pattern): [`Config::check`] validates every
//! value once and returns a [`Plan`] carrying what follows from it (the selection metric, the
//! evaluator); [`Plan::schedule`] adds the checks that need the dataset (steps per epoch, the
//! warm-up). Both run before any expensive step and before a run directory exists.

use candle_core::Device;

use super::{Config, Loss};
use crate::backbone::peft::{GROUP_ADAPTER, GROUP_IMAGE_TOWER, GROUP_LORA, GROUP_TEXT_TOWER};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::eval::{Evaluator, Metric};
use crate::model::iisan::san::GROUP_SAN;
use crate::model::iisan::{GROUP_IMAGE_GATES, GROUP_IMAGE_HEAD, GROUP_TEXT_HEAD};
use crate::model::{Kernels, Method, TrainedModel};
use crate::nn::{GROUP_DEFAULT, TowerDType};
use crate::provenance::TowerRecord;

/// A configuration that passed every check: read through [`Plan::cfg`]; changed only through
/// [`Plan::changed`], which checks again.
#[derive(Debug, Clone)]
pub struct Plan {
    cfg: Config,
    evaluator: Evaluator,
    /// The frozen towers the model depends on, once [`Plan::resolve`] read them.
    towers: Vec<TowerRecord>,
}

/// Training steps of a run on a given dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Steps of a full pass over the users.
    pub full_steps: usize,
    /// Steps taken per epoch (`train.max_steps_per_epoch` applied).
    pub steps: usize,
}

fn bad(key: &str, why: String) -> Error {
    Error::Config(format!("{key} {why}"))
}

/// A run name is one plain directory name (empty: the default name is made).
pub fn check_run_name(name: &str) -> Result<()> {
    let bad_char = name
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control());
    if bad_char || name.starts_with('.') || name.len() > 200 {
        return Err(bad(
            "run.name",
            format!(
                "= {name:?} must be a plain directory name (no '/', '\\', control characters or leading '.', at most 200 bytes)"
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// Check every value; the first problem is an error naming the key.
    pub fn check(self) -> Result<Plan> {
        self.check_finite()?;
        self.data.options.validate()?;
        self.model.user.validate()?;
        if matches!(self.model.method, Method::Iisan | Method::IisanUncached) {
            self.model.iisan.validate()?;
        }
        if self.model.towers.dtype != TowerDType::F32 {
            self.model
                .towers
                .validate(self.model.method, self.train.precision)?;
        }
        self.check_train()?;
        self.check_precision()?;
        check_run_name(&self.run.name)?;
        let e = &self.eval;
        if e.ks.is_empty() || e.ks.contains(&0) {
            return Err(bad(
                "eval.ks",
                format!("= {:?} must be a non-empty list of positive cut-offs", e.ks),
            ));
        }
        if e.item_chunk == 0 || e.user_chunk == 0 {
            return Err(bad(
                "eval.item_chunk/user_chunk",
                "must be at least 1".into(),
            ));
        }
        let m = self.train.select_metric;
        if m.cutoff().is_some_and(|k| !e.ks.contains(&k)) {
            return Err(bad(
                "train.select_metric",
                format!("= {m} must be MRR or HR@K / NDCG@K with K in eval.ks"),
            ));
        }
        let evaluator = Evaluator {
            ks: e.ks.clone(),
            item_chunk: e.item_chunk,
            user_chunk: e.user_chunk,
        };
        Ok(Plan {
            cfg: self,
            evaluator,
            towers: Vec::new(),
        })
    }

    /// Every floating-point value of the configuration is finite (TOML can write `nan` and
    /// `inf`); the first one that is not is named by its key.
    fn check_finite(&self) -> Result<()> {
        fn walk(v: &toml::Value, key: &str) -> Result<()> {
            match v {
                toml::Value::Float(f) if !f.is_finite() => {
                    Err(bad(key, format!("= {f} must be a finite number")))
                }
                toml::Value::Table(t) => t.iter().try_for_each(|(k, v)| {
                    walk(
                        v,
                        &if key.is_empty() {
                            k.clone()
                        } else {
                            format!("{key}.{k}")
                        },
                    )
                }),
                toml::Value::Array(a) => a
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, v)| walk(v, &format!("{key}[{i}]"))),
                _ => Ok(()),
            }
        }
        let v = toml::Value::try_from(self)
            .map_err(|e| Error::Internal(format!("config as TOML: {e}")))?;
        walk(&v, "")
    }

    /// Mixed precision is for a device: on the CPU it runs only on the graph engine
    /// (`train.kernels = "autograd"`, the GPU's code on the CPU backend, slowly: for checks),
    /// and the towers then compute in the training precision.
    fn check_precision(&self) -> Result<()> {
        let (t, towers) = (&self.train, self.model.towers.dtype);
        if t.precision == TowerDType::F32 {
            return Ok(());
        }
        if t.device.is_cpu() && t.kernels == Kernels::Cpu {
            return Err(bad(
                "train.precision",
                format!(
                    "= {:?} is mixed-precision training for a GPU (train.device = \"cuda\"); on \
                     the CPU every method trains in f32 (train.kernels = \"autograd\" runs the \
                     GPU's code on the CPU backend, slowly, to check it)",
                    t.precision.name()
                ),
            ));
        }
        if towers != TowerDType::F32 && towers != t.precision {
            return Err(bad(
                "model.towers.dtype",
                format!(
                    "= {:?} under train.precision = {:?}: the towers compute in the training \
                     precision (leave model.towers.dtype out)",
                    towers.name(),
                    t.precision.name()
                ),
            ));
        }
        Ok(())
    }

    fn check_train(&self) -> Result<()> {
        let t = &self.train;
        t.device.check_built()?;
        if t.batch == 0 {
            return Err(bad("train.batch", "must be at least 1".into()));
        }
        if t.epochs == 0 {
            return Err(bad("train.epochs", "must be at least 1".into()));
        }
        if let Some(g) = t
            .lr_groups
            .keys()
            .find(|g| !LR_GROUPS.contains(&g.as_str()))
        {
            return Err(bad(
                &format!("train.lr_groups.{g}"),
                format!(
                    "names no parameter group (the groups: {})",
                    LR_GROUPS.join(", ")
                ),
            ));
        }
        for (name, lr) in std::iter::once(("train.lr".to_string(), t.lr)).chain(
            t.lr_groups
                .iter()
                .map(|(k, v)| (format!("train.lr_groups.{k}"), *v)),
        ) {
            if !(lr.is_finite() && lr > 0.0) {
                return Err(bad(&name, format!("= {lr} must be a positive number")));
            }
        }
        // the full softmax embeds the whole catalogue every step: a lookup for `id`, the side
        // network over cached states for `iisan`; through the towers it would run them over
        // every item each step
        if t.loss == Loss::Full && !matches!(self.model.method, Method::Id | Method::Iisan) {
            return Err(bad(
                "train.loss",
                format!(
                    "= \"full\" needs the whole catalogue embedded every step: it is for \
                     model.method \"id\" and \"iisan\" (over the cache), not {:?}",
                    self.model.method.name()
                ),
            ));
        }
        if !(0.0..1.0).contains(&t.beta1) || !(0.0..1.0).contains(&t.beta2) || t.eps <= 0.0 {
            return Err(bad(
                "train.beta1/beta2/eps",
                "must satisfy 0 <= beta < 1 and eps > 0".into(),
            ));
        }
        Ok(())
    }
}

/// The learning-rate groups parameters belong to (docs/MODEL.md section 5).
pub const LR_GROUPS: [&str; 9] = [
    GROUP_DEFAULT,
    GROUP_SAN,
    GROUP_ADAPTER,
    GROUP_LORA,
    GROUP_TEXT_TOWER,
    GROUP_IMAGE_TOWER,
    GROUP_TEXT_HEAD,
    GROUP_IMAGE_HEAD,
    GROUP_IMAGE_GATES,
];

impl Plan {
    /// The checked configuration.
    pub fn cfg(&self) -> &Config {
        &self.cfg
    }

    /// The evaluation protocol (cut-offs and chunking).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The plan of the configuration changed by `f`, checked again (e.g. another device).
    pub fn changed(&self, f: impl FnOnce(&mut Config)) -> Result<Plan> {
        let mut cfg = self.cfg.clone();
        f(&mut cfg);
        let mut plan = cfg.check()?;
        plan.towers = self.towers.clone();
        Ok(plan)
    }

    /// A freshly initialised model of the plan for `data` on `train.device` (its caches opened
    /// and checked against the data and the tap lists).
    pub fn build_model(&self, data: &Dataset) -> Result<TrainedModel> {
        self.build_model_on(data, &self.cfg.train.device.open()?)
    }

    /// [`Plan::build_model`] on an opened `device` (all tensors of one computation must come
    /// from one opened CUDA device).
    pub fn build_model_on(&self, data: &Dataset, device: &Device) -> Result<TrainedModel> {
        let c = &self.cfg;
        TrainedModel::build(
            &c.model,
            c.data.cache.as_deref(),
            (c.train.kernels, c.train.precision),
            data,
            (c.train.seed, device),
        )
    }

    /// The plan with what depends on the frozen towers read once (each cache header, or each
    /// tower folder for the methods that run towers): every IISAN tap list left out derived
    /// from its tower's depth, as training uses, prints and saves it (docs/MODEL.md section 3),
    /// and the towers' records ([`Plan::towers`]).
    pub fn resolve(&self) -> Result<Plan> {
        let mut p = self.clone();
        let c = &mut p.cfg;
        let towers = crate::model::factory::towers_of(&c.model, c.data.cache.as_deref())?;
        let ic = &c.model.iisan;
        let left_out = ic.text_taps.is_none() || ic.image_taps.is_none();
        if left_out && matches!(c.model.method, Method::Iisan | Method::IisanUncached) {
            let s = towers.states;
            c.model.iisan = c.model.iisan.with_depths(s.text, s.image);
        }
        p.towers = towers.records;
        Ok(p)
    }

    /// The frozen towers the plan's model depends on (path and content hash), once
    /// [`Plan::resolve`] read them (empty before).
    pub fn towers(&self) -> &[TowerRecord] {
        &self.towers
    }

    /// The validation metric that selects the best epoch.
    pub fn select(&self) -> Metric {
        self.cfg.train.select_metric
    }

    /// The steps of a run on `data`; an error when `train.warmup_steps` would leave no timed
    /// step even in the shortest run the settings allow (early stopping cannot end a run
    /// before `patience + 1` epochs).
    pub fn schedule(&self, data: &Dataset) -> Result<Schedule> {
        let t = &self.cfg.train;
        let full_steps = data.num_users().div_ceil(t.batch);
        let steps = match t.max_steps_per_epoch {
            0 => full_steps,
            cap => full_steps.min(cap),
        };
        let min_epochs = if self.cfg.eval.skip {
            t.epochs
        } else {
            t.epochs.min(t.patience + 1)
        };
        let min_steps = min_epochs * steps;
        if t.warmup_steps >= min_steps {
            return Err(bad(
                "train.warmup_steps",
                format!(
                    "= {} leaves no timed step: the run may take as few as {min_steps} steps \
                     ({min_epochs} epochs of {steps})",
                    t.warmup_steps
                ),
            ));
        }
        Ok(Schedule { full_steps, steps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DataOptions, Dataset};
    use std::path::Path;

    /// Ten users with six interactions each (min_seq_len 5 keeps them all).
    fn ten_users() -> Dataset {
        let dir = tempfile::tempdir().unwrap();
        let items: String = (1..=8).map(|i| format!("i{i}\ttitle {i}\n")).collect();
        let users: String = (0..10)
            .map(|u| format!("u{u}\ti1 i2 i3 i{} i{} i{}\n", 4 + u % 3, 5 + u % 2, 8))
            .collect();
        std::fs::write(dir.path().join("items.tsv"), items).unwrap();
        std::fs::write(dir.path().join("users.tsv"), users).unwrap();
        let d = Path::new(dir.path());
        Dataset::from_files(
            &d.join("items.tsv"),
            &d.join("users.tsv"),
            &DataOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn schedule_counts_steps_and_rejects_a_warm_up_that_leaves_none() {
        // 10 users, batch 3: ceil(10 / 3) = 4 steps a full epoch; capped at 2 per epoch.
        // epochs 5, patience 1: early stopping can end the run after 2 epochs -> 8 steps
        // (4 with the cap); with eval.skip there is no early stopping -> 5 epochs.
        let data = ten_users();
        let plan = |sets: &[&str]| {
            let sets: Vec<String> = ["train.batch=3", "train.epochs=5", "train.patience=1"]
                .iter()
                .chain(sets)
                .map(|s| s.to_string())
                .collect();
            Config::load(None, &sets).unwrap().check().unwrap()
        };
        let s = plan(&[]).schedule(&data).unwrap();
        assert_eq!((s.full_steps, s.steps), (4, 4));
        assert!(plan(&["train.warmup_steps=7"]).schedule(&data).is_ok());
        let e = plan(&["train.warmup_steps=8"]).schedule(&data).unwrap_err();
        assert!(
            e.to_string().contains("as few as 8 steps (2 epochs of 4)"),
            "{e}"
        );
        let capped = plan(&["train.max_steps_per_epoch=2", "train.warmup_steps=4"]);
        let e = capped.schedule(&data).unwrap_err().to_string();
        assert!(e.contains("as few as 4 steps (2 epochs of 2)"), "{e}");
        let skip = plan(&["eval.skip=true", "train.warmup_steps=19"]);
        assert!(skip.schedule(&data).is_ok(), "5 epochs of 4 steps = 20");
    }
}
