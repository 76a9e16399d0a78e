//! Adam's update (docs/MODEL.md section 5) on the kernel engine: one in-place pass per parameter
//! ([`InPlaceAdam`]: candle `InplaceOp2`, moments kept as plain vectors, the parameter's storage
//! updated where it lies, the parameters in parallel). The graph engine's is
//! [`super::tensor_adam`]; both compute PyTorch's Adam and export their moments alike.

use std::sync::Mutex;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor, Var};
use candle_nn::ParamsAdamW;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// One parameter's Adam moments.
pub(super) struct Moments {
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
pub(super) struct InPlaceAdam {
    vars: Vec<Var>,
    moments: Vec<Moments>,
    params: ParamsAdamW,
    pub(super) t: i32,
}

impl InPlaceAdam {
    pub(super) fn new(vars: Vec<Var>, params: ParamsAdamW) -> Self {
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

    /// One Adam step for every parameter that has a gradient, the parameters in parallel on
    /// the compute pool (each has its own storage and moments). One after another, the updates
    /// were the one serial phase of a CPU-kernel training step (docs/STACK.md section 16).
    pub(super) fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let p = &self.params;
        let update = |mo| AdamUpdate {
            moments: Mutex::new(mo),
            lr: p.lr as f32,
            beta1: p.beta1 as f32,
            beta2: p.beta2 as f32,
            eps: p.eps as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(self.t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(self.t))) as f32,
        };
        let jobs: Vec<(&Var, &mut Moments, &Tensor)> = self
            .vars
            .iter()
            .zip(&mut self.moments)
            .filter_map(|(var, mo)| grads.get(var.as_tensor()).map(|g| (var, mo, g)))
            .collect();
        jobs.into_par_iter().try_for_each(|(var, mo, g)| {
            let g = g.contiguous()?;
            var.as_tensor().inplace_op2(&g, &update(mo))?;
            Ok(())
        })
    }

    /// Each parameter's moments, in parameter order.
    pub(super) fn moments(&self) -> Vec<(Vec<f32>, Vec<f32>)> {
        self.moments
            .iter()
            .map(|m| (m.m.clone(), m.v.clone()))
            .collect()
    }

    /// Each parameter's length.
    pub(super) fn lens(&self) -> Vec<usize> {
        self.moments.iter().map(|m| m.m.len()).collect()
    }

    /// Replace the moments (checked lengths) and the step count.
    pub(super) fn restore(&mut self, moments: Vec<(Vec<f32>, Vec<f32>)>, t: i32) -> Result<()> {
        if moments.len() != self.moments.len() {
            return Err(Error::Internal("Adam moments of another model".into()));
        }
        for (dst, (m, v)) in self.moments.iter_mut().zip(moments) {
            *dst = Moments { m, v };
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tensor_adam::TensorAdam;
    use super::*;
    use candle_core::Device;
    use candle_nn::{AdamW, Optimizer};

    /// One gradient store over several parameters: loss = sum_k sum((p_k - t_k)^2) over the
    /// parameters `with_grad` (the others get no gradient).
    fn step_grads(vars: &[Var], targets: &[Tensor], with_grad: &[usize]) -> GradStore {
        let mut loss = Tensor::zeros((), candle_core::DType::F32, &Device::Cpu).unwrap();
        for &k in with_grad {
            let d = vars[k].as_tensor().sub(&targets[k]).unwrap();
            loss = loss.add(&d.sqr().unwrap().sum_all().unwrap()).unwrap();
        }
        loss.backward().unwrap()
    }

    /// The parallel step pairs each parameter with its own moments: five parameters of
    /// different lengths (one without a gradient) stepped together on a 2-thread pool end
    /// bit for bit where each stepped alone ends, and the one without a gradient is unchanged.
    #[test]
    fn parameters_updated_together_equal_each_updated_alone() {
        let dev = Device::Cpu;
        let lens = [3usize, 1, 700, 64, 5];
        let make = |k: usize, scale: f32| {
            let v: Vec<f32> = (0..lens[k])
                .map(|i| scale * ((i * 7 + k) % 11) as f32 - 2.0)
                .collect();
            Tensor::from_vec(v, lens[k], &dev).unwrap()
        };
        let targets: Vec<Tensor> = (0..lens.len()).map(|k| make(k, 0.3)).collect();
        let fresh = || -> Vec<Var> {
            (0..lens.len())
                .map(|k| Var::from_tensor(&make(k, 0.1)).unwrap())
                .collect()
        };
        let with_grad = [0, 1, 2, 4];
        let params = ParamsAdamW {
            lr: 0.01,
            ..ParamsAdamW::default()
        };
        let together = fresh();
        let mut adam = InPlaceAdam::new(together.clone(), params.clone());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let alone = fresh();
        let mut each: Vec<InPlaceAdam> = alone
            .iter()
            .map(|v| InPlaceAdam::new(vec![v.clone()], params.clone()))
            .collect();
        for _ in 0..3 {
            let g = step_grads(&together, &targets, &with_grad);
            pool.install(|| adam.step(&g)).unwrap();
            let g = step_grads(&alone, &targets, &with_grad);
            for opt in &mut each {
                opt.step(&g).unwrap();
            }
        }
        for k in 0..lens.len() {
            let (a, b): (Vec<f32>, Vec<f32>) =
                (together[k].to_vec1().unwrap(), alone[k].to_vec1().unwrap());
            assert_eq!(a, b, "parameter {k}");
            let start: Vec<f32> = make(k, 0.1).to_vec1().unwrap();
            assert_eq!(
                a == start,
                k == 3,
                "parameter {k} moved iff it had a gradient"
            );
        }
    }

    /// The group's one flat update (every parameter with a gradient) and the per-parameter
    /// update (one without) equal each parameter updated alone, to the bit, over 2-d and 1-d
    /// shapes; moments export alike.
    #[test]
    fn the_flat_tensor_update_equals_each_parameter_updated_alone() {
        let dev = Device::Cpu;
        let shapes: [&[usize]; 4] = [&[3, 4], &[1], &[70], &[2, 5]];
        let make = |k: usize, scale: f32| {
            let n: usize = shapes[k].iter().product();
            let v: Vec<f32> = (0..n)
                .map(|i| scale * ((i * 7 + k) % 11) as f32 - 2.0)
                .collect();
            Tensor::from_vec(v, shapes[k], &dev).unwrap()
        };
        let targets: Vec<Tensor> = (0..shapes.len()).map(|k| make(k, 0.3)).collect();
        let fresh = || -> Vec<Var> {
            (0..shapes.len())
                .map(|k| Var::from_tensor(&make(k, 0.1)).unwrap())
                .collect()
        };
        let params = ParamsAdamW {
            lr: 0.01,
            ..ParamsAdamW::default()
        };
        let (together, alone) = (fresh(), fresh());
        let mut adam = TensorAdam::new(together.clone(), params.clone()).unwrap();
        let mut each: Vec<TensorAdam> = (alone.iter())
            .map(|v| TensorAdam::new(vec![v.clone()], params.clone()).unwrap())
            .collect();
        // steps 1 and 3 with every gradient (the flat update), step 2 without parameter 1's
        for with_grad in [&[0, 1, 2, 3][..], &[0, 2, 3], &[0, 1, 2, 3]] {
            adam.step(&step_grads(&together, &targets, with_grad))
                .unwrap();
            let g = step_grads(&alone, &targets, with_grad);
            for (k, opt) in each.iter_mut().enumerate() {
                if with_grad.contains(&k) {
                    opt.step(&g).unwrap();
                } else {
                    opt.t += 1;
                }
            }
        }
        let moments = adam.moments().unwrap();
        for k in 0..shapes.len() {
            let flat = |v: &Var| -> Vec<f32> { v.flatten_all().unwrap().to_vec1().unwrap() };
            assert_eq!(flat(&together[k]), flat(&alone[k]), "parameter {k}");
            assert_eq!(moments[k], each[k].moments().unwrap()[0], "moments {k}");
        }
        assert_eq!(adam.lens(), [12, 1, 70, 10]);
    }

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
