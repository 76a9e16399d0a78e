//! The exact (erf) GELU, `x * Φ(x) = x/2 * (1 + erf(x / √2))`, as a candle custom op whose CPU
//! kernel vectorises: erf is evaluated as a rational polynomial on `[-4, 4]` (outside, ±1 in
//! f32), the approximation used by Eigen and XLA for single precision (evaluated in f32: max
//! error 3.3e-7 against a f64 erf),
//! in parallel chunks. candle's own `gelu_erf` calls a scalar libm `erff` per element, which
//! took 15-25 % of a tower forward pass (BENCHMARKS.md). The backward pass is
//! `Φ(x) + x φ(x)`, so the op can sit in trained towers too.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, bail};
use rayon::prelude::*;

use crate::error::Result;

const CHUNK: usize = 4096;

/// erf(x) for f32 via a rational approximation (odd numerator of degree 13, even denominator of
/// degree 8) on the clamped range `[-4, 4]`.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    p *= x;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

#[inline(always)]
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    // Φ(x) + x φ(x), φ(x) = exp(-x²/2) / √(2π)
    let phi = (-0.5 * x * x).exp() * 0.398_942_3;
    0.5 * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)) + x * phi
}

/// Apply `f` elementwise to a contiguous f32 storage, in parallel chunks (`f` is a generic, so
/// it is inlined and the inner loop vectorises).
fn map<F: Fn(f32) -> f32 + Sync>(
    s: &CpuStorage,
    l: &Layout,
    f: F,
    name: &str,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let CpuStorage::F32(v) = s else {
        bail!("{name}: only f32 is supported")
    };
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{name}: input must be contiguous")
    };
    let input = &v[a..b];
    let mut out = vec![0f32; input.len()];
    out.par_chunks_mut(CHUNK)
        .zip(input.par_chunks(CHUNK))
        .for_each(|(o, i)| {
            for (o, &x) in o.iter_mut().zip(i) {
                *o = f(x);
            }
        });
    Ok((CpuStorage::F32(out), l.shape().clone()))
}

struct GeluErf;
struct GeluErfGrad;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf-fast"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        map(s, l, gelu, self.name())
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let d = arg.contiguous()?.apply_op1_no_bwd(&GeluErfGrad)?;
        Ok(Some(d.mul(grad)?))
    }
}

impl CustomOp1 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "gelu-erf-fast-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        map(s, l, gelu_grad, self.name())
    }
}

/// Exact GELU of `x`: the fast kernel for f32 on the CPU, candle's `gelu_erf` on other devices
/// and in half precision.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if !x.device().is_cpu() || x.dtype() != candle_core::DType::F32 {
        return Ok(x.gelu_erf()?);
    }
    Ok(x.contiguous()?.apply_op1(GeluErf)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn erf_matches_f64_erf_within_5e_7() {
        // dense grid over [-6, 6]; erf is odd, erf(0) = 0, erf(±inf) = ±1.
        let mut worst = 0f64;
        for i in -60_000..=60_000 {
            let x = i as f32 * 1e-4;
            let d = (erf_f32(x) as f64 - libm_erf(x as f64)).abs();
            worst = worst.max(d);
        }
        assert!(worst < 5e-7, "max |erf error| {worst}");
        assert_eq!(erf_f32(0.0), 0.0);
        assert_eq!(erf_f32(100.0), erf_f32(4.0));
    }

    /// Reference erf in f64 (candle's libm-based implementation).
    fn libm_erf(x: f64) -> f64 {
        candle_core::cpu::erf::erf_f64(x)
    }

    #[test]
    fn gelu_values_and_gradient_against_finite_differences() {
        // GELU(1) = 0.5 * (1 + erf(1/√2)) = 0.8413447; GELU(-1) = -0.1586553; GELU(0) = 0.
        let x = Var::new(&[1f32, -1.0, 0.0, 2.5, -3.0], &Device::Cpu).unwrap();
        let y: Vec<f32> = gelu_erf(x.as_tensor()).unwrap().to_vec1().unwrap();
        assert!(
            (y[0] - 0.841_344_7).abs() < 1e-6 && (y[1] + 0.158_655_3).abs() < 1e-6 && y[2] == 0.0,
            "{y:?}"
        );
        let candle: Vec<f32> = x.as_tensor().gelu_erf().unwrap().to_vec1().unwrap();
        for (a, b) in y.iter().zip(&candle) {
            assert!((a - b).abs() < 1e-6);
        }
        let g = gelu_erf(x.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<f32> = g.get(&x).unwrap().to_vec1().unwrap();
        for (i, &xv) in [1f32, -1.0, 0.0, 2.5, -3.0].iter().enumerate() {
            let h = 1e-3f64;
            let f = |v: f64| 0.5 * v * (1.0 + libm_erf(v / std::f64::consts::SQRT_2));
            let fd = (f(xv as f64 + h) - f(xv as f64 - h)) / (2.0 * h);
            assert!((g[i] as f64 - fd).abs() < 1e-4, "x {xv}: {} vs {fd}", g[i]);
        }
    }
}
