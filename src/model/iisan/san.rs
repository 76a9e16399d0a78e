//! The side adapted network's building blocks (docs/MODEL.md section 3): the SAN block
//! `SANB(x) = x + W_up ReLU(W_down x + b_down) + b_up` (D -> r -> D, weights N(0, 0.01),
//! biases 0, no LayerNorm, no dropout) and the learned gate `g = sigmoid(theta / T)`,
//! theta = 0 (g = 0.5), T = 0.1.

use candle_core::Tensor;
use candle_nn::Linear;

use crate::error::Result;
use crate::nn::mixed::{broadcast_mul, linear};
use crate::nn::params::{Init, ParamStore};

/// Learning-rate group of SAN blocks (docs/MODEL.md section 5: 1e-4).
pub const GROUP_SAN: &str = "san";
/// Standard deviation of the SAN blocks' initial weights.
pub const SAN_INIT_STD: f64 = 0.01;

/// One SAN block.
#[derive(Debug, Clone)]
pub struct SanBlock {
    down: Linear,
    up: Linear,
}

impl SanBlock {
    /// Create `name.down` (D -> r) and `name.up` (r -> D) in group `san`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        bottleneck: usize,
    ) -> Result<SanBlock> {
        let init = Init::Normal(SAN_INIT_STD);
        Ok(SanBlock {
            down: store.linear(
                &format!("{name}.down"),
                dim,
                bottleneck,
                true,
                init,
                GROUP_SAN,
            )?,
            up: store.linear(
                &format!("{name}.up"),
                bottleneck,
                dim,
                true,
                init,
                GROUP_SAN,
            )?,
        })
    }

    /// The down-projection D -> r.
    pub fn down(&self) -> &Linear {
        &self.down
    }

    /// The up-projection r -> D.
    pub fn up(&self) -> &Linear {
        &self.up
    }

    /// `x + up(relu(down(x)))` for `x` `[n, D]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let a = linear(&self.down, x)?.relu()?;
        Ok((x + linear(&self.up, &a)?)?)
    }
}

/// The gates of one path: one scalar per block.
#[derive(Debug, Clone)]
pub struct Gates {
    theta: Tensor,
    temperature: f64,
}

impl Gates {
    /// `k` gates named `name.theta`, theta = 0, in learning-rate group `group`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        k: usize,
        temperature: f64,
        group: &'static str,
    ) -> Result<Gates> {
        let theta = store.add(&format!("{name}.theta"), &[k], Init::Zeros, group)?;
        Ok(Gates { theta, temperature })
    }

    /// The gate parameters theta `[k]`.
    pub fn theta(&self) -> &Tensor {
        &self.theta
    }

    /// The temperature T.
    pub fn temperature(&self) -> f64 {
        self.temperature
    }

    /// All gate values `sigmoid(theta / T)`, shape `[k]`.
    pub fn values(&self) -> Result<Tensor> {
        Ok(candle_nn::ops::sigmoid(&(&self.theta / self.temperature)?)?)
    }

    /// `g_k * a + (1 - g_k) * b` for gate values `g` from [`Gates::values`].
    pub fn mix(g: &Tensor, k: usize, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let gk = g.narrow(0, k, 1)?;
        // g a + (1 - g) b = b + g (a - b)
        Ok(b.broadcast_add(&broadcast_mul(&(a - b)?, &gk)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::params::GROUP_DEFAULT;
    use candle_core::{Device, Var};

    #[test]
    fn gate_starts_at_one_half_and_mixes() {
        let mut s = ParamStore::new(0, Device::Cpu);
        let g = Gates::new(&mut s, "g", 3, 0.1, GROUP_DEFAULT).unwrap();
        assert_eq!(
            g.values().unwrap().to_vec1::<f32>().unwrap(),
            [0.5, 0.5, 0.5]
        );
        let a = Tensor::new(&[[2f32, 4.0]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[0f32, 8.0]], &Device::Cpu).unwrap();
        let m = Gates::mix(&g.values().unwrap(), 1, &a, &b)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(m, vec![vec![1.0, 6.0]]);
    }

    #[test]
    fn san_block_with_zero_up_is_identity_and_counts_parameters() {
        let mut s = ParamStore::new(0, Device::Cpu);
        let b = SanBlock::new(&mut s, "b", 768, 64).unwrap();
        // 768*64 + 64 + 64*768 + 768 = 99,136
        assert_eq!(s.num_trainable(), 99_136);
        for p in s.params() {
            if p.name.starts_with("b.up") {
                p.var.set(&p.var.zeros_like().unwrap()).unwrap();
            }
            assert_eq!(p.group, GROUP_SAN);
        }
        let x = Tensor::randn(0f32, 1.0, (4, 768), &Device::Cpu).unwrap();
        let y = b.forward(&x).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
    }

    /// Central finite differences of a scalar loss against autograd, in f64 arithmetic on f32
    /// parameters: `sum(SANB(x) * w)` and a gated mix, on a tiny block (D = 3, r = 2).
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Device::Cpu;
        let mut s = ParamStore::new(7, dev.clone());
        let b = SanBlock::new(&mut s, "b", 3, 2).unwrap();
        let g = Gates::new(&mut s, "g", 1, 0.1, GROUP_DEFAULT).unwrap();
        // larger weights than the init so ReLU switches and the gradient is not trivially tiny
        for p in s.params() {
            let t = (p.var.as_tensor() * 50.0)
                .unwrap()
                .broadcast_add(&Tensor::new(0.1f32, &dev).unwrap())
                .unwrap();
            p.var.set(&t).unwrap();
        }
        let x = Var::new(&[[0.3f32, -0.7, 1.1], [0.5, 0.2, -0.4]], &dev).unwrap();
        let h = Tensor::new(&[[1.0f32, 0.5, -0.5], [-1.0, 0.25, 0.75]], &dev).unwrap();
        let w = Tensor::new(&[[0.7f32, -1.3, 0.4], [1.5, 0.9, -0.6]], &dev).unwrap();
        let loss = |x: &Tensor| -> f64 {
            let mixed = Gates::mix(&g.values().unwrap(), 0, &h, x).unwrap();
            let y = b.forward(&mixed).unwrap();
            (y * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap() as f64
        };
        let l = {
            let mixed = Gates::mix(&g.values().unwrap(), 0, &h, x.as_tensor()).unwrap();
            (b.forward(&mixed).unwrap() * &w)
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let grads = l.backward().unwrap();
        let eps = 1e-2f32;
        let mut vars: Vec<(String, Var)> = s
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.var.clone()))
            .collect();
        vars.push(("x".into(), x.clone()));
        for (name, v) in vars {
            let base: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
            let analytic: Vec<f32> = grads
                .get(&v)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for i in 0..base.len() {
                let mut plus = base.clone();
                plus[i] += eps;
                let mut minus = base.clone();
                minus[i] -= eps;
                v.set(&Tensor::from_vec(plus, v.shape(), &dev).unwrap())
                    .unwrap();
                let lp = loss(x.as_tensor());
                v.set(&Tensor::from_vec(minus, v.shape(), &dev).unwrap())
                    .unwrap();
                let lm = loss(x.as_tensor());
                v.set(&Tensor::from_vec(base.clone(), v.shape(), &dev).unwrap())
                    .unwrap();
                let fd = (lp - lm) / (2.0 * eps as f64);
                let a = analytic[i] as f64;
                assert!(
                    (a - fd).abs() < 2e-2 * (1.0 + fd.abs()),
                    "{name}[{i}]: autograd {a} vs fd {fd}"
                );
            }
        }
    }
}
