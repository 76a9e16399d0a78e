//! Adam with parameter groups (docs/MODEL.md section 5): one optimiser per learning-rate group,
//! no weight decay, no schedule. On the kernel engine the update is one in-place pass per
//! parameter ([`adam`]), on the graph engine tensor arithmetic on the parameter's device, the
//! small parameters updated together ([`tensor_adam`]). Both compute PyTorch's Adam:
//! `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//! `p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`, and both export their moments under
//! the same names, so a checkpoint resumes on either.

mod adam;
mod tensor_adam;

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::ParamsAdamW;

use self::adam::InPlaceAdam;
use self::tensor_adam::TensorAdam;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::nn::{Engine, ParamStore};

/// Adam's step count per parameter group.
pub type AdamSteps = BTreeMap<String, i32>;

/// The optimiser of one group.
enum GroupOpt {
    InPlace(InPlaceAdam),
    Tensor(TensorAdam),
}

impl GroupOpt {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            GroupOpt::InPlace(a) => a.step(grads),
            GroupOpt::Tensor(a) => a.step(grads),
        }
    }

    /// Each parameter's moments `(m, v)` as host vectors, in parameter order.
    fn moments(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        match self {
            GroupOpt::InPlace(a) => Ok(a.moments()),
            GroupOpt::Tensor(a) => a.moments(),
        }
    }

    /// The number of moments (parameters) and each one's length.
    fn lens(&self) -> Vec<usize> {
        match self {
            GroupOpt::InPlace(a) => a.lens(),
            GroupOpt::Tensor(a) => a.lens(),
        }
    }

    /// Replace the moments and the step count.
    fn restore(&mut self, moments: Vec<(Vec<f32>, Vec<f32>)>, t: i32) -> Result<()> {
        match self {
            GroupOpt::InPlace(a) => a.restore(moments, t),
            GroupOpt::Tensor(a) => a.restore(moments, t),
        }
    }

    fn t(&self) -> i32 {
        match self {
            GroupOpt::InPlace(a) => a.t,
            GroupOpt::Tensor(a) => a.t,
        }
    }
}

/// Adam over every parameter of a store, grouped by learning-rate group.
pub struct GroupedAdam {
    groups: Vec<(String, f64, GroupOpt)>,
}

impl GroupedAdam {
    /// Group `store`'s parameters by their group name and give each group its configured rate;
    /// the in-place update on the kernel engine, the tensor update on the graph engine.
    pub fn new(store: &ParamStore, cfg: &Config, engine: Engine) -> Result<Self> {
        let mut by_group: BTreeMap<&str, Vec<Var>> = BTreeMap::new();
        for p in store.params() {
            by_group.entry(p.group).or_default().push(p.var.clone());
        }
        let in_place = engine == Engine::Kernels;
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
            let opt = if in_place {
                GroupOpt::InPlace(InPlaceAdam::new(vars, params))
            } else {
                GroupOpt::Tensor(TensorAdam::new(vars, params)?)
            };
            groups.push((name.to_string(), lr, opt));
        }
        Ok(GroupedAdam { groups })
    }

    /// One update of every group from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (name, _, opt) in &mut self.groups {
            opt.step(grads)
                .map_err(|e| Error::Internal(format!("Adam step of group {name}: {e}")))?;
        }
        Ok(())
    }

    /// The optimiser state, to checkpoint a run: each group's first and second moments as
    /// tensors named `adam.<group>.<i>.m` / `.v` (in parameter order) and each group's step
    /// count.
    pub fn export(&self) -> Result<(Vec<(String, Tensor)>, AdamSteps)> {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for (name, _, opt) in &self.groups {
            for (i, (m, v)) in opt.moments()?.into_iter().enumerate() {
                let n = m.len();
                tensors.push((
                    format!("adam.{name}.{i}.m"),
                    Tensor::from_vec(m, n, &Device::Cpu)?,
                ));
                tensors.push((
                    format!("adam.{name}.{i}.v"),
                    Tensor::from_vec(v, n, &Device::Cpu)?,
                ));
            }
            steps.insert(name.clone(), opt.t());
        }
        Ok((tensors, steps))
    }

    /// Restore what [`GroupedAdam::export`] wrote (`get` looks a tensor up by name); a missing
    /// or mis-sized tensor or group is an error.
    pub fn import(
        &mut self,
        get: impl Fn(&str) -> Option<Vec<f32>>,
        steps: &BTreeMap<String, i32>,
    ) -> Result<()> {
        for (name, _, opt) in &mut self.groups {
            let t = *steps
                .get(name.as_str())
                .ok_or_else(|| Error::Internal(format!("checkpoint has no Adam group {name}")))?;
            let mut moments = Vec::new();
            for (i, len) in opt.lens().into_iter().enumerate() {
                let mut pair = [Vec::new(), Vec::new()];
                for (which, dst) in ["m", "v"].into_iter().zip(&mut pair) {
                    let key = format!("adam.{name}.{i}.{which}");
                    *dst = get(&key).filter(|v| v.len() == len).ok_or_else(|| {
                        Error::Internal(format!("checkpoint tensor {key} missing or mis-sized"))
                    })?;
                }
                let [m, v] = pair;
                moments.push((m, v));
            }
            opt.restore(moments, t)?;
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
    use crate::nn::{GROUP_DEFAULT, Init};
    use candle_core::{Device, Tensor};

    #[test]
    fn first_adam_step_moves_each_group_by_its_rate() {
        // Adam's first step is lr * g / (|g| + eps) = lr * sign(g) for |g| >> eps.
        let mut s = ParamStore::new(0, Device::Cpu);
        let a = s.add("a", &[2], Init::Zeros, GROUP_DEFAULT).unwrap();
        let b = s.add("b", &[2], Init::Zeros, "san").unwrap();
        let cfg = Config::load(None, &[]).unwrap();
        let mut opt = GroupedAdam::new(&s, &cfg, Engine::Kernels).unwrap();
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
            (va[0] + 2e-4).abs() < 1e-8 && (va[1] - 2e-4).abs() < 1e-8,
            "{va:?}"
        );
        assert!(
            (vb[0] + 1e-4).abs() < 1e-8 && (vb[1] - 1e-4).abs() < 1e-8,
            "{vb:?}"
        );
    }
}
