//! The device update: Adam as tensor arithmetic where the parameters lie (a GPU, or the CPU
//! with `train.kernels = "autograd"`), moments kept as tensors on that device. Written here
//! rather than using candle's `AdamW` because a resumable checkpoint needs the moments, which
//! `AdamW` keeps private.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::ParamsAdamW;

use crate::error::{Error, Result};

/// Adam over one group's variables, on their device.
pub(super) struct TensorAdam {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    params: ParamsAdamW,
    pub(super) t: i32,
}

impl TensorAdam {
    pub(super) fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        let m = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        let v = vars.iter().map(zeros).collect::<candle_core::Result<_>>()?;
        Ok(TensorAdam {
            vars,
            m,
            v,
            params,
            t: 0,
        })
    }

    pub(super) fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let p = &self.params;
        let (b1, b2) = (p.beta1, p.beta2);
        let scale_m = 1.0 / (1.0 - b1.powi(self.t));
        let scale_v = 1.0 / (1.0 - b2.powi(self.t));
        for ((var, m), v) in self.vars.iter().zip(&mut self.m).zip(&mut self.v) {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            *m = ((&*m * b1)? + (&g * (1.0 - b1))?)?;
            *v = ((&*v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let denom = ((&*v * scale_v)?.sqrt()? + p.eps)?;
            let step = ((&*m * (scale_m * p.lr))? / denom)?;
            var.set(&(var.as_tensor().detach() - step)?)?;
        }
        Ok(())
    }

    /// Each parameter's moments copied to the host, in parameter order.
    pub(super) fn moments(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let host = |t: &Tensor| -> Result<Vec<f32>> {
            Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
        };
        self.m
            .iter()
            .zip(&self.v)
            .map(|(m, v)| Ok((host(m)?, host(v)?)))
            .collect()
    }

    /// Each parameter's length.
    pub(super) fn lens(&self) -> Vec<usize> {
        self.vars.iter().map(|v| v.elem_count()).collect()
    }

    /// Replace the moments (checked lengths) and the step count.
    pub(super) fn restore(&mut self, moments: Vec<(Vec<f32>, Vec<f32>)>, t: i32) -> Result<()> {
        if moments.len() != self.vars.len() {
            return Err(Error::Internal("Adam moments of another model".into()));
        }
        for (i, (m, v)) in moments.into_iter().enumerate() {
            let like = self.vars[i].as_tensor();
            self.m[i] = Tensor::from_vec(m, like.shape(), like.device())?;
            self.v[i] = Tensor::from_vec(v, like.shape(), like.device())?;
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::in_place::InPlaceAdam;
    use super::*;
    use candle_nn::{AdamW, Optimizer};

    fn quadratic_step(var: &Var, target: &Tensor) -> GradStore {
        (var.as_tensor() - target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    }

    /// The tensor update and the in-place update against candle's AdamW (weight decay 0) over
    /// five steps of the quadratic loss sum((p - target)^2): the same formula, equal up to f32
    /// rounding (they round their scalar factors differently; measured 2e-6 after five steps of
    /// size ~0.05, so 1e-5 bounds it).
    #[test]
    fn tensor_and_in_place_updates_match_candle_adamw() {
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
        let var = || Var::from_tensor(&init).unwrap();
        let (a, b, c) = (var(), var(), var());
        let mut in_place = InPlaceAdam::new(vec![a.clone()], params.clone());
        let mut tensor = TensorAdam::new(vec![c.clone()], params.clone()).unwrap();
        let mut reference = AdamW::new(vec![b.clone()], params).unwrap();
        for _ in 0..5 {
            in_place.step(&quadratic_step(&a, &target)).unwrap();
            tensor.step(&quadratic_step(&c, &target)).unwrap();
            reference.step(&quadratic_step(&b, &target)).unwrap();
        }
        let vb: Vec<f32> = b.to_vec1().unwrap();
        for v in [&a, &c] {
            let va: Vec<f32> = v.to_vec1().unwrap();
            for (x, y) in va.iter().zip(&vb) {
                assert!((x - y).abs() < 1e-5, "{va:?} vs {vb:?}");
            }
            // five steps of ~lr each moved every coordinate towards its target
            assert!((va[0] - 0.5).abs() > 0.2 && va[2] < 2.0, "{va:?}");
        }
        // moments exported by one restore into the other exactly
        let mut other = TensorAdam::new(vec![var()], ParamsAdamW::default()).unwrap();
        other.restore(tensor.moments().unwrap(), tensor.t).unwrap();
        assert_eq!(other.moments().unwrap(), tensor.moments().unwrap());
        assert_eq!(in_place.lens(), tensor.lens());
    }
}
