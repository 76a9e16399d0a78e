//! The CPU update: one in-place pass per parameter (candle `InplaceOp2`: moments kept as
//! plain vectors, the parameter's storage updated where it lies), the parameters in parallel,
//! for the CPU kernels' runs.

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
    use super::*;
    use candle_core::Device;

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
}
