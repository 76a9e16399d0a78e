//! LayerNorm over the last dimension (docs/MODEL.md section 4), on both engines: [`LayerNorm`]
//! holds the weight and bias and composes differentiable primitive ops (candle's fused
//! LayerNorm has no backward pass, docs/STACK.md section 3), or with a frozen scale runs
//! [`frozen_scale`] (candle's fused forward, and the input gradient
//! `rstd (g' - mean(g') - x̂ mean(g' x̂))`, `g' = g gamma`, by hand, docs/STACK.md section 14:
//! the normalised activations and the statistics are not kept, the backward recomputes them
//! from the input); [`layer_norm`] and [`layer_norm_backward`] are the CPU kernel and its
//! backward over row-major rows.

use candle_core::{D, DType, Tensor};

use super::graft::graft;
use super::layers::Ctx;
use super::params::{Init, ParamStore};
use crate::error::Result;

/// LayerNorm over the last dimension, built from differentiable primitive ops.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// A LayerNorm of width `dim` (weight 1, bias 0) registered as `name.weight` / `name.bias`.
    pub fn new(
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        eps: f64,
        group: &'static str,
    ) -> Result<Self> {
        let weight = store.add(&format!("{name}.weight"), &[dim], Init::Ones, group)?;
        let bias = store.add(&format!("{name}.bias"), &[dim], Init::Zeros, group)?;
        Ok(LayerNorm { weight, bias, eps })
    }

    /// A LayerNorm over given `weight` and `bias` tensors (e.g. loaded, frozen weights).
    pub fn from_tensors(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        LayerNorm { weight, bias, eps }
    }

    /// [`LayerNorm::forward`] in training mode when the scale trains; with a frozen scale
    /// (a tower under Adapter, LoRA, BitFit) [`frozen_scale`], which computes no
    /// gradient for it; in evaluation mode candle's fused kernel, which is faster but passes no
    /// gradient (only for frozen inference).
    pub fn forward_t(&self, x: &Tensor, ctx: &Ctx) -> Result<Tensor> {
        if ctx.train && self.weight.track_op() {
            self.forward(x)
        } else if ctx.train {
            Ok(frozen_scale(x, &self.weight, &self.bias, self.eps)?)
        } else {
            Ok(candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?)
        }
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias`, biased variance, over the last dim. A
    /// half-precision `x` is normalised in f32 (mixed precision keeps the statistics in f32)
    /// and scaled and shifted in its own dtype.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let x = x.to_dtype(DType::F32)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .to_dtype(dtype)?;
        let y = super::mixed::broadcast_mul(&xn, &self.weight)?;
        Ok(super::mixed::broadcast_add(&y, &self.bias)?)
    }

    /// The scale (gamma) tensor.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The shift (beta) tensor.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

/// What a [`layer_norm`] forward keeps for its backward.
#[derive(Debug, Default)]
pub struct LayerNormSaved {
    /// Normalised rows `(x - mean) * rstd`, `[n, w]`.
    pub xhat: Vec<f32>,
    /// `1 / sqrt(var + eps)` per row (biased variance).
    pub rstd: Vec<f32>,
}

/// Row-wise LayerNorm of `x` `[n, gamma.len()]` in place: `y = (x - mean) * rstd * gamma + beta`.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) -> LayerNormSaved {
    let w = gamma.len();
    let mut xhat = vec![0f32; x.len()];
    let mut rstd = vec![0f32; x.len() / w];
    for ((row, xh), rs) in x
        .chunks_exact_mut(w)
        .zip(xhat.chunks_exact_mut(w))
        .zip(rstd.iter_mut())
    {
        let mean = row.iter().sum::<f32>() / w as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / w as f32;
        *rs = 1.0 / (var + eps).sqrt();
        for (((y, h), g), b) in row.iter_mut().zip(xh.iter_mut()).zip(gamma).zip(beta) {
            *h = (*y - mean) * *rs;
            *y = *h * g + b;
        }
    }
    LayerNormSaved { xhat, rstd }
}

/// Backward of [`layer_norm`]: `dy` `[n, w]` becomes d loss / d x in place; gamma's and beta's
/// gradients are added into `g_gamma` and `g_beta`. With `dh = dy * gamma`:
/// `dx = rstd * (dh - mean(dh) - xhat * mean(dh * xhat))`.
pub fn layer_norm_backward(
    dy: &mut [f32],
    saved: &LayerNormSaved,
    gamma: &[f32],
    g_gamma: &mut [f32],
    g_beta: &mut [f32],
) {
    let w = gamma.len();
    for ((row, xh), rs) in dy
        .chunks_exact_mut(w)
        .zip(saved.xhat.chunks_exact(w))
        .zip(&saved.rstd)
    {
        let (mut m1, mut m2) = (0f32, 0f32);
        for i in 0..w {
            g_gamma[i] += row[i] * xh[i];
            g_beta[i] += row[i];
            let dh = row[i] * gamma[i];
            m1 += dh;
            m2 += dh * xh[i];
        }
        let (m1, m2) = (m1 / w as f32, m2 / w as f32);
        for i in 0..w {
            row[i] = rs * (row[i] * gamma[i] - m1 - xh[i] * m2);
        }
    }
}

/// LayerNorm over the last dimension with a frozen scale `weight`: candle's fused kernel
/// forward, the input gradient by hand (its statistics in f32 for a half-precision `x`);
/// `bias` gets its gradient when it is a variable (BitFit; summed in f32 under mixed
/// precision, [`super::mixed`]) and none otherwise.
pub fn frozen_scale(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let bias_trains = bias.track_op();
    let value_bias = if bias_trains {
        bias.zeros_like()?
    } else {
        bias.clone()
    };
    let value =
        candle_nn::ops::layer_norm(&x.detach().contiguous()?, weight, &value_bias, eps as f32)?;
    let gamma = weight.clone();
    let y = graft(x, value, move |x, _, g| {
        layer_norm_input_grad(x, &gamma, eps, g)
    })?;
    Ok(if bias_trains {
        super::mixed::broadcast_add(&y, bias)?
    } else {
        y
    })
}

/// d LayerNorm(x) / dx applied to `g`: with `x̂ = (x - mean) rstd`, `rstd = 1 / sqrt(var + eps)`
/// (biased variance) and `g' = g gamma`, `dx = rstd (g' - mean(g') - x̂ mean(g' x̂))`; computed
/// in f32 and returned in `x`'s dtype.
fn layer_norm_input_grad(
    x: &Tensor,
    gamma: &Tensor,
    eps: f64,
    g: &Tensor,
) -> candle_core::Result<Tensor> {
    let dtype = x.dtype();
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    let (x, gamma, g) = (f32(x)?, f32(gamma)?, f32(g)?);
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let rstd = (xc.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let xn = xc.broadcast_mul(&rstd)?;
    let gg = g.broadcast_mul(&gamma)?;
    let m1 = gg.mean_keepdim(D::Minus1)?;
    let m2 = (&gg * &xn)?.mean_keepdim(D::Minus1)?;
    gg.broadcast_sub(&m1)?
        .sub(&xn.broadcast_mul(&m2)?)?
        .broadcast_mul(&rstd)?
        .to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::params::GROUP_DEFAULT;
    use crate::nn::testing::{max_diff, randn};
    use candle_core::{Device, Var};

    #[test]
    fn layer_norm_values_and_gradients() {
        // x = [1, 2, 3, 6]: mean 3, deviations [-2,-1,0,3], var = (4+1+0+9)/4 = 3.5,
        // normalised = dev / sqrt(3.5) = [-1.0690, -0.5345, 0, 1.6036].
        let mut s = ParamStore::new(0, Device::Cpu);
        let ln = LayerNorm::new(&mut s, "ln", 4, 0.0, GROUP_DEFAULT).unwrap();
        let x = Var::new(&[1f32, 2., 3., 6.], &Device::Cpu).unwrap();
        let y = ln.forward(x.as_tensor()).unwrap();
        let v: Vec<f32> = y.to_vec1().unwrap();
        let want = [-1.069_045, -0.534_522_5, 0.0, 1.603_567_5];
        for (a, b) in v.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{v:?}");
        }
        // Every parameter and the input receive a gradient (the fused op would give none).
        let loss = y
            .mul(&Tensor::new(&[1f32, 2., 3., 4.], &Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let g = loss.backward().unwrap();
        for p in s.params() {
            let gp = g.get(&p.var).expect("gradient");
            assert!(
                gp.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    > 0.0,
                "{}",
                p.name
            );
        }
        assert!(g.get(&x).is_some());
    }

    /// x = [1, 2, 3, 6] (mean 3, var 3.5): xhat = [-2, -1, 0, 3] / sqrt(3.5); with gamma 2 and
    /// beta 1, y = 2 xhat + 1. The backward matches central finite differences of
    /// L = sum(c * y), c = [1, -2, 3, 0.5].
    #[test]
    fn layer_norm_forward_and_backward() {
        let gamma = [2f32, 2., 2., 2.];
        let beta = [1f32; 4];
        let c = [1f32, -2., 3., 0.5];
        let x0 = [1f32, 2., 3., 6.];
        let mut y = x0;
        let saved = layer_norm(&mut y, &gamma, &beta, 0.0);
        let s = 3.5f32.sqrt();
        for (v, d) in y.iter().zip([-2f32, -1., 0., 3.]) {
            assert!((v - (2.0 * d / s + 1.0)).abs() < 1e-6);
        }
        let mut dx = c;
        let (mut gg, mut gb) = ([0f32; 4], [0f32; 4]);
        layer_norm_backward(&mut dx, &saved, &gamma, &mut gg, &mut gb);
        assert_eq!(gb, c);
        let loss = |x: [f32; 4]| -> f64 {
            let mut y = x;
            layer_norm(&mut y, &gamma, &beta, 0.0);
            y.iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        for i in 0..4 {
            let (mut xp, mut xm) = (x0, x0);
            xp[i] += 1e-2;
            xm[i] -= 1e-2;
            let fd = (loss(xp) - loss(xm)) / 2e-2;
            assert!(
                (fd - dx[i] as f64).abs() < 2e-3,
                "x[{i}]: {fd} vs {}",
                dx[i]
            );
        }
    }

    /// LayerNorm with a frozen scale: value and input gradient equal the differentiable
    /// primitive LayerNorm's ([`LayerNorm::forward`], itself checked by hand in `layers`); a
    /// trainable bias gets the row sum of the gradient, as there.
    #[test]
    fn layer_norm_gradient_matches_the_primitive_ops() {
        let x = Var::from_tensor(&(randn(&[3, 2, 6], 6) * 3.0).unwrap()).unwrap();
        let gamma = (randn(&[6], 7) + 1.0).unwrap();
        let beta = Var::from_tensor(&randn(&[6], 8)).unwrap();
        let weights = randn(&[3, 2, 6], 9);
        let ln = LayerNorm::from_tensors(gamma.clone(), beta.as_tensor().clone(), 1e-5);
        let y_ref = ln.forward(x.as_tensor()).unwrap();
        let g_ref = (&y_ref * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let y = frozen_scale(x.as_tensor(), &gamma, beta.as_tensor(), 1e-5).unwrap();
        let g = (&y * &weights)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_diff(&y, &y_ref) < 1e-5);
        let d = |g: &candle_core::backprop::GradStore, t: &Tensor| g.get(t).unwrap().clone();
        assert!(max_diff(&d(&g, x.as_tensor()), &d(&g_ref, x.as_tensor())) < 1e-5);
        assert!(max_diff(&d(&g, beta.as_tensor()), &d(&g_ref, beta.as_tensor())) < 1e-5);
        assert!(g.get(&gamma).is_none());
    }
}
