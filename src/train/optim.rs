//! Adam with parameter groups (spec section 5): one optimiser per learning-rate group,
//! no weight decay, no schedule.

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::config::Config;
use crate::error::Result;
use crate::model::ParamStore;

/// Adam over every parameter of a store, grouped by learning-rate group.
pub struct GroupedAdam {
    groups: Vec<(String, f64, AdamW)>,
}

impl GroupedAdam {
    /// Group `store`'s parameters by their group name and give each group its configured rate.
    pub fn new(store: &ParamStore, cfg: &Config) -> Result<Self> {
        let mut by_group: BTreeMap<&str, Vec<candle_core::Var>> = BTreeMap::new();
        for p in store.params() {
            by_group.entry(p.group).or_default().push(p.var.clone());
        }
        let mut groups = Vec::new();
        for (name, vars) in by_group {
            let lr = cfg.lr_of(name);
            let params = ParamsAdamW {
                lr,
                beta1: cfg.train.beta1,
                beta2: cfg.train.beta2,
                eps: cfg.train.eps,
                weight_decay: 0.0,
            };
            groups.push((name.to_string(), lr, AdamW::new(vars, params)?));
        }
        Ok(GroupedAdam { groups })
    }

    /// One update of every group from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (_, _, opt) in &mut self.groups {
            opt.step(grads)?;
        }
        Ok(())
    }

    /// (group, learning rate) pairs.
    pub fn rates(&self) -> Vec<(String, f64)> {
        self.groups
            .iter()
            .map(|(n, lr, _)| (n.clone(), *lr))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Init, params::GROUP_DEFAULT};
    use candle_core::{Device, Tensor};

    #[test]
    fn first_adam_step_moves_each_group_by_its_rate() {
        // Adam's first step is lr * g / (|g| + eps) = lr * sign(g) for |g| >> eps.
        let mut s = ParamStore::new(0, Device::Cpu);
        let a = s.add("a", &[2], Init::Zeros, GROUP_DEFAULT).unwrap();
        let b = s.add("b", &[2], Init::Zeros, "san").unwrap();
        let cfg = Config::load(None, &[]).unwrap();
        let mut opt = GroupedAdam::new(&s, &cfg).unwrap();
        assert_eq!(
            opt.rates(),
            [("default".to_string(), 2e-4), ("san".to_string(), 1e-4)]
        );
        let w = Tensor::new(&[1f32, -3.0], &Device::Cpu).unwrap();
        let loss = (a.mul(&w).unwrap().sum_all().unwrap() + b.mul(&w).unwrap().sum_all().unwrap())
            .unwrap();
        opt.step(&loss.backward().unwrap()).unwrap();
        let va: Vec<f32> = s.params()[0].var.to_vec1().unwrap();
        let vb: Vec<f32> = s.params()[1].var.to_vec1().unwrap();
        assert!(
            (va[0] + 2e-4).abs() < 1e-9 && (va[1] - 2e-4).abs() < 1e-9,
            "{va:?}"
        );
        assert!(
            (vb[0] + 1e-4).abs() < 1e-9 && (vb[1] - 1e-4).abs() < 1e-9,
            "{vb:?}"
        );
    }
}
