//! Adam's update on the graph engine (docs/MODEL.md section 5): tensor arithmetic where the
//! parameters lie (a GPU, or the CPU with `train.kernels = "autograd"`), with the moments kept as
//! tensors on that device (written here rather than with candle's `AdamW` because a resumable
//! checkpoint needs the moments, which `AdamW` keeps private).
//!
//! The group's variables are laid end to end in buckets of at most [`BUCKET`] values (a larger
//! variable is a bucket of its own); each bucket's moments are two flat tensors, and when every
//! variable of a bucket has a gradient (the usual step) the bucket is updated at once: a dozen
//! element-wise ops for the bucket instead of a dozen per parameter (on a GPU each op is a
//! kernel launch, and a side network has about a hundred small parameters), then one copy back
//! into each variable. A bucket's temporaries are a few times its size, so the largest is
//! bounded as a parameter-by-parameter update's is. The arithmetic is element by element: the
//! values equal a parameter-by-parameter update's to the bit.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use candle_nn::ParamsAdamW;

use crate::error::{Error, Result};

/// Values per bucket at most, unless one variable is larger (4 Mi values, 16 MiB of f32).
pub const BUCKET: usize = 1 << 22;

/// Consecutive variables updated together, with their flat moments.
struct Bucket {
    vars: Vec<Var>,
    /// Each variable's offset in the flat moments.
    offsets: Vec<usize>,
    m: Tensor,
    v: Tensor,
}

impl Bucket {
    fn new(vars: Vec<Var>) -> Result<Bucket> {
        let mut offsets = Vec::with_capacity(vars.len());
        let mut total = 0;
        for v in &vars {
            offsets.push(total);
            total += v.elem_count();
        }
        let device = vars
            .first()
            .map_or(Device::Cpu, |v| v.as_tensor().device().clone());
        let zeros = || Tensor::zeros(total, candle_core::DType::F32, &device);
        Ok(Bucket {
            m: zeros()?,
            v: zeros()?,
            vars,
            offsets,
        })
    }

    /// Variable `i`'s part of a flat tensor.
    fn part(&self, flat: &Tensor, i: usize) -> candle_core::Result<Tensor> {
        flat.narrow(0, self.offsets[i], self.vars[i].elem_count())
    }

    /// One update of the bucket from `grads` by `update`.
    fn step(&mut self, grads: &GradStore, update: &Update) -> Result<()> {
        let gs: Vec<Option<Tensor>> = (self.vars.iter())
            .map(|v| grads.get(v.as_tensor()).map(|g| g.detach().flatten_all()))
            .map(Option::transpose)
            .collect::<candle_core::Result<_>>()?;
        if gs.iter().all(Option::is_some) {
            let g = Tensor::cat(&gs.into_iter().flatten().collect::<Vec<_>>(), 0)?;
            let flat: Vec<Tensor> = (self.vars.iter())
                .map(|v| v.as_tensor().detach().flatten_all())
                .collect::<candle_core::Result<_>>()?;
            let (m, v, step) = update.apply((&self.m, &self.v), &g)?;
            let values = (Tensor::cat(&flat, 0)? - step)?;
            for (i, var) in self.vars.iter().enumerate() {
                var.set(&self.part(&values, i)?.reshape(var.shape())?)?;
            }
            (self.m, self.v) = (m, v);
            return Ok(());
        }
        // a variable without a gradient keeps its value and moments (as PyTorch's Adam)
        let (mut ms, mut vs) = (Vec::new(), Vec::new());
        for (i, (var, g)) in self.vars.iter().zip(gs).enumerate() {
            let (m, v) = (self.part(&self.m, i)?, self.part(&self.v, i)?);
            let (m, v) = match g {
                Some(g) => {
                    let (m, v, step) = update.apply((&m, &v), &g)?;
                    let value = (var.as_tensor().detach().flatten_all()? - step)?;
                    var.set(&value.reshape(var.shape())?)?;
                    (m, v)
                }
                None => (m, v),
            };
            ms.push(m);
            vs.push(v);
        }
        (self.m, self.v) = (Tensor::cat(&ms, 0)?, Tensor::cat(&vs, 0)?);
        Ok(())
    }
}

/// Adam's constants at one step.
struct Update<'a> {
    params: &'a ParamsAdamW,
    t: i32,
}

impl Update<'_> {
    /// Adam on flat values: the new `(m, v)` and the step to subtract.
    fn apply(&self, (m, v): (&Tensor, &Tensor), g: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let p = self.params;
        let (b1, b2) = (p.beta1, p.beta2);
        let scale_m = 1.0 / (1.0 - b1.powi(self.t));
        let scale_v = 1.0 / (1.0 - b2.powi(self.t));
        let m = ((m * b1)? + (g * (1.0 - b1))?)?;
        let v = ((v * b2)? + (g.sqr()? * (1.0 - b2))?)?;
        let denom = ((&v * scale_v)?.sqrt()? + p.eps)?;
        let step = ((&m * (scale_m * p.lr))? / denom)?;
        Ok((m, v, step))
    }
}

/// Adam over one group's variables, on their device, in buckets (see the module doc).
pub struct TensorAdam {
    buckets: Vec<Bucket>,
    params: ParamsAdamW,
    /// Steps taken.
    pub t: i32,
}

impl TensorAdam {
    /// Adam over `vars` (in this order) with `params`.
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        Self::with_bucket(vars, params, BUCKET)
    }

    /// [`TensorAdam::new`] with buckets of at most `size` values.
    fn with_bucket(vars: Vec<Var>, params: ParamsAdamW, size: usize) -> Result<Self> {
        let mut groups: Vec<Vec<Var>> = Vec::new();
        let mut filled = usize::MAX;
        for v in vars {
            let n = v.elem_count();
            if filled.saturating_add(n) > size {
                groups.push(Vec::new());
                filled = 0;
            }
            filled += n;
            groups.last_mut().expect("a bucket").push(v);
        }
        Ok(TensorAdam {
            buckets: groups.into_iter().map(Bucket::new).collect::<Result<_>>()?,
            params,
            t: 0,
        })
    }

    /// One update of every variable that has a gradient in `grads`.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.t += 1;
        let update = Update {
            params: &self.params,
            t: self.t,
        };
        for b in &mut self.buckets {
            b.step(grads, &update)?;
        }
        Ok(())
    }

    /// Each parameter's moments copied to the host, in parameter order.
    pub fn moments(&self) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
        let host =
            |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_device(&Device::Cpu)?.to_vec1::<f32>()?) };
        let mut out = Vec::new();
        for b in &self.buckets {
            for i in 0..b.vars.len() {
                out.push((host(&b.part(&b.m, i)?)?, host(&b.part(&b.v, i)?)?));
            }
        }
        Ok(out)
    }

    /// Each parameter's length.
    pub fn lens(&self) -> Vec<usize> {
        (self.buckets.iter())
            .flat_map(|b| b.vars.iter().map(|v| v.elem_count()))
            .collect()
    }

    /// Replace the moments (checked lengths) and the step count.
    pub fn restore(&mut self, moments: Vec<(Vec<f32>, Vec<f32>)>, t: i32) -> Result<()> {
        let lens = self.lens();
        let fits = moments.len() == lens.len()
            && (moments.iter().zip(&lens)).all(|((m, v), &n)| m.len() == n && v.len() == n);
        if !fits {
            return Err(Error::Internal("Adam moments of another model".into()));
        }
        let mut rest = moments.into_iter();
        for b in &mut self.buckets {
            let (m, v): (Vec<Vec<f32>>, Vec<Vec<f32>>) = rest.by_ref().take(b.vars.len()).unzip();
            let device = b.m.device().clone();
            let flat = |parts: Vec<Vec<f32>>| -> candle_core::Result<Tensor> {
                let all: Vec<f32> = parts.concat();
                let n = all.len();
                Tensor::from_vec(all, n, &device)
            };
            (b.m, b.v) = (flat(m)?, flat(v)?);
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buckets of at most 12 values over lengths [12, 1, 70, 10, 2]: by hand [12], [1], [70]
    /// (larger than a bucket: its own), [10, 2].
    #[test]
    fn variables_are_bucketed_in_order_up_to_the_size() {
        let dev = Device::Cpu;
        let vars: Vec<Var> = [12usize, 1, 70, 10, 2]
            .iter()
            .map(|&n| Var::zeros(n, candle_core::DType::F32, &dev).unwrap())
            .collect();
        let a = TensorAdam::with_bucket(vars, ParamsAdamW::default(), 12).unwrap();
        let sizes: Vec<Vec<usize>> = (a.buckets.iter())
            .map(|b| b.vars.iter().map(|v| v.elem_count()).collect())
            .collect();
        assert_eq!(sizes, [vec![12], vec![1], vec![70], vec![10, 2]]);
        assert_eq!(a.lens(), [12, 1, 70, 10, 2]);
    }
}
