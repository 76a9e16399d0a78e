//! Adam with parameter groups (docs/MODEL.md section 5): one optimiser per learning-rate group,
//! no weight decay, no schedule. On the CPU the update is one in-place pass per
//! parameter (candle `InplaceOp2`: moments kept as plain vectors, the parameter's storage
//! updated where it lies); elsewhere candle's `AdamW` with weight decay 0. Both compute
//! PyTorch's Adam: `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//! `p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`.

use std::collections::BTreeMap;
use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Device, InplaceOp2, Layout, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::nn::ParamStore;

/// One parameter's Adam moments.
/// Adam's step count per parameter group.
pub type AdamSteps = BTreeMap<String, i32>;

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// The in-place update of one parameter, applied in place with the gradient as second operand.
struct AdamUpdate<'a> {
    moments: Mutex<&'a mut Moments>,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    scale_m: f32,
    scale_v: f32,
}

impl InplaceOp2 for AdamUpdate<'_> {
    fn name(&self) -> &'static str {
        "in-place-adam"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        lp: &Layout,
        g: &CpuStorage,
        lg: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((p0, p1)), Some((g0, g1))) = (lp.contiguous_offsets(), lg.contiguous_offsets())
        else {
            candle_core::bail!("in-place-adam: non-contiguous parameter or gradient")
        };
        let (CpuStorage::F32(p), CpuStorage::F32(g)) = (p, g) else {
            candle_core::bail!("in-place-adam: f32 only")
        };
        let (p, g) = (&mut p[p0..p1], &g[g0..g1]);
        let mut mo = self.moments.lock().expect("not poisoned");
        let Moments { m, v } = &mut **mo;
        if p.len() != g.len() || m.len() != p.len() {
            candle_core::bail!("in-place-adam: length mismatch")
        }
        let (b1, b2) = (self.beta1, self.beta2);
        let (sm, sv, eps, lr) = (self.scale_m, self.scale_v, self.eps, self.lr);
        for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * b1 + g * (1.0 - b1);
            *v = *v * b2 + g * g * (1.0 - b2);
            *p -= *m * sm / ((*v * sv).sqrt() + eps) * lr;
        }
        Ok(())
    }
}

/// In-place Adam over one group's variables.
struct InPlaceAdam {
    vars: Vec<Var>,
    moments: Vec<Moments>,
    params: ParamsAdamW,
    t: i32,
}

impl InPlaceAdam {
    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Self {
        let moments = vars
            .iter()
            .map(|v| Moments {
                m: vec![0.0; v.elem_count()],
                v: vec![0.0; v.elem_count()],
            })
            .collect();
        InPlaceAdam {
            vars,
            moments,
            params,
            t: 0,
        }
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let p = &self.params;
        for (var, mo) in self.vars.iter().zip(&mut self.moments) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.contiguous()?;
            let op = AdamUpdate {
                moments: Mutex::new(mo),
                lr: p.lr as f32,
                beta1: p.beta1 as f32,
                beta2: p.beta2 as f32,
                eps: p.eps as f32,
                scale_m: (1.0 / (1.0 - p.beta1.powi(self.t))) as f32,
                scale_v: (1.0 / (1.0 - p.beta2.powi(self.t))) as f32,
            };
            var.as_tensor().inplace_op2(&g, &op)?;
        }
        Ok(())
    }
}

/// The optimiser of one group.
enum GroupOpt {
    InPlace(InPlaceAdam),
    Candle(AdamW),
}

/// Adam over every parameter of a store, grouped by learning-rate group.
pub struct GroupedAdam {
    groups: Vec<(String, f64, GroupOpt)>,
}

impl GroupedAdam {
    /// Group `store`'s parameters by their group name and give each group its configured rate.
    pub fn new(store: &ParamStore, cfg: &Config) -> Result<Self> {
        let mut by_group: BTreeMap<&str, Vec<Var>> = BTreeMap::new();
        for p in store.params() {
            by_group.entry(p.group).or_default().push(p.var.clone());
        }
        let in_place = store.device().is_cpu();
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
                GroupOpt::Candle(AdamW::new(vars, params)?)
            };
            groups.push((name.to_string(), lr, opt));
        }
        Ok(GroupedAdam { groups })
    }

    /// One update of every group from `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        for (name, _, opt) in &mut self.groups {
            match opt {
                GroupOpt::InPlace(f) => f
                    .step(grads)
                    .map_err(|e| Error::Internal(format!("Adam step of group {name}: {e}")))?,
                GroupOpt::Candle(a) => a.step(grads)?,
            }
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
            let GroupOpt::InPlace(a) = opt else {
                return Err(Error::Config(
                    "resumable checkpoints need the CPU optimiser (device cpu)".into(),
                ));
            };
            for (i, mo) in a.moments.iter().enumerate() {
                let n = mo.m.len();
                tensors.push((
                    format!("adam.{name}.{i}.m"),
                    Tensor::from_slice(&mo.m, n, &Device::Cpu)?,
                ));
                tensors.push((
                    format!("adam.{name}.{i}.v"),
                    Tensor::from_slice(&mo.v, n, &Device::Cpu)?,
                ));
            }
            steps.insert(name.clone(), a.t);
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
            let GroupOpt::InPlace(a) = opt else {
                return Err(Error::Config("resume needs the CPU optimiser".into()));
            };
            a.t = *steps
                .get(name.as_str())
                .ok_or_else(|| Error::Internal(format!("checkpoint has no Adam group {name}")))?;
            for (i, mo) in a.moments.iter_mut().enumerate() {
                for (which, dst) in [("m", &mut mo.m), ("v", &mut mo.v)] {
                    let key = format!("adam.{name}.{i}.{which}");
                    let v = get(&key).filter(|v| v.len() == dst.len()).ok_or_else(|| {
                        Error::Internal(format!("checkpoint tensor {key} missing or mis-sized"))
                    })?;
                    *dst = v;
                }
            }
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
            (va[0] + 2e-4).abs() < 1e-8 && (va[1] - 2e-4).abs() < 1e-8,
            "{va:?}"
        );
        assert!(
            (vb[0] + 1e-4).abs() < 1e-8 && (vb[1] - 1e-4).abs() < 1e-8,
            "{vb:?}"
        );
    }

    /// The in-place update against candle's AdamW (weight decay 0) over five steps of a quadratic
    /// loss sum((p - target)^2): the same formula, equal up to f32 rounding (the two round
    /// their scalar factors differently; measured 2e-6 after five steps of size ~0.05).
    #[test]
    fn in_place_update_matches_candle_adamw() {
        let dev = Device::Cpu;
        let init = Tensor::new(&[0.5f32, -1.0, 2.0, 0.0], &dev).unwrap();
        let target = Tensor::new(&[1f32, 1.0, -1.0, 0.25], &dev).unwrap();
        let params = ParamsAdamW {
            lr: 0.05,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let (a, b) = (
            Var::from_tensor(&init).unwrap(),
            Var::from_tensor(&init).unwrap(),
        );
        let mut in_place = InPlaceAdam::new(vec![a.clone()], params.clone());
        let mut reference = AdamW::new(vec![b.clone()], params).unwrap();
        for _ in 0..5 {
            let la = (a.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            in_place.step(&la.backward().unwrap()).unwrap();
            let lb = (b.as_tensor() - &target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            reference.step(&lb.backward().unwrap()).unwrap();
        }
        let (va, vb): (Vec<f32>, Vec<f32>) = (a.to_vec1().unwrap(), b.to_vec1().unwrap());
        for (x, y) in va.iter().zip(&vb) {
            assert!((x - y).abs() < 1e-5, "{va:?} vs {vb:?}");
        }
        // five steps of ~lr each moved every coordinate towards its target
        assert!((va[0] - 0.5).abs() > 0.2 && va[2] < 2.0, "{va:?}");
    }
}
