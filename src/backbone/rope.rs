//! Rotary position embeddings of the decoder towers (docs/MODEL.md section 2, "Decoder
//! towers"): the frequencies `theta^(-2i/d)` of a head of width `d`, optionally rescaled
//! (`linear`: divided by the factor; `llama3`: long wavelengths divided by the factor, short
//! ones kept, the band between blended), and their application in the half-split layout
//! (`x * cos + rotate_half(x) * sin`, `rotate_half(x) = [-x2, x1]`), the layout of Hugging
//! Face's LLaMA, Mistral and Qwen checkpoints. Written with candle ops so that gradients pass
//! through (a LoRA'd tower trains through it).

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A rescaling of the rotary frequencies (`rope_scaling` / `rope_parameters` in config.json).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum RopeScaling {
    /// The published frequencies.
    None,
    /// Every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// LLaMA 3's: wavelengths longer than `original / low` divided by `factor`, shorter than
    /// `original / high` kept, blended linearly in `original / wavelength` between.
    Llama3 {
        /// The divisor of long wavelengths.
        factor: f64,
        /// `low_freq_factor`.
        low: f64,
        /// `high_freq_factor`.
        high: f64,
        /// `original_max_position_embeddings`.
        original: f64,
    },
}

/// The inverse frequencies of a head of width `head_dim` (`head_dim / 2` of them) with base
/// `theta`, rescaled by `scaling`. Computed as transformers does, in f32.
pub fn inverse_frequencies(head_dim: usize, theta: f64, scaling: RopeScaling) -> Vec<f32> {
    let base = theta as f32;
    (0..head_dim / 2)
        .map(|i| {
            let f = 1.0 / base.powf((2 * i) as f32 / head_dim as f32);
            match scaling {
                RopeScaling::None => f,
                RopeScaling::Linear { factor } => f / factor as f32,
                RopeScaling::Llama3 {
                    factor,
                    low,
                    high,
                    original,
                } => llama3(f, factor as f32, low as f32, high as f32, original as f32),
            }
        })
        .collect()
}

/// LLaMA 3's rescaling of one inverse frequency `f`.
fn llama3(f: f32, factor: f32, low: f32, high: f32, original: f32) -> f32 {
    let wavelen = 2.0 * std::f32::consts::PI / f;
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    if wavelen > low_wavelen {
        f / factor
    } else if wavelen < high_wavelen {
        f
    } else {
        let smooth = (original / wavelen - low) / (high - low);
        (1.0 - smooth) * f / factor + smooth * f
    }
}

/// The cos and sin tables `[T, head_dim]` for positions `0..len` (each frequency twice: the two
/// halves of a head), in `dtype`.
pub fn tables(
    inv_freq: &[f32],
    len: usize,
    dtype: DType,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut angles = Vec::with_capacity(len * 2 * half);
    for p in 0..len {
        let row: Vec<f32> = inv_freq.iter().map(|f| p as f32 * f).collect();
        angles.extend_from_slice(&row);
        angles.extend_from_slice(&row);
    }
    let a = Tensor::from_vec(angles, (len, 2 * half), device)?;
    Ok((a.cos()?.to_dtype(dtype)?, a.sin()?.to_dtype(dtype)?))
}

/// Rotate `x` `[B, H, T, head_dim]` by the tables of [`tables`] (`[T, head_dim]`).
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let hd = x.dim(3)?;
    let (x1, x2) = (x.narrow(3, 0, hd / 2)?, x.narrow(3, hd / 2, hd / 2)?);
    let rotated = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
    Ok((x.broadcast_mul(cos)? + rotated.broadcast_mul(sin)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequencies_by_hand() {
        // head 4, theta 100: 100^(-0/4) = 1, 100^(-2/4) = 0.1
        let f = inverse_frequencies(4, 100.0, RopeScaling::None);
        assert!(
            (f[0] - 1.0).abs() < 1e-7 && (f[1] - 0.1).abs() < 1e-7,
            "{f:?}"
        );
        let lin = inverse_frequencies(4, 100.0, RopeScaling::Linear { factor: 2.0 });
        assert!((lin[1] - 0.05).abs() < 1e-7);
    }

    #[test]
    fn llama3_keeps_short_divides_long_blends_between() {
        // original 16, low 1, high 4: wavelengths > 16 are divided by 8, < 4 kept. f = 2 pi
        // (wavelength 1) is kept; f = 2 pi / 32 (wavelength 32) becomes 2 pi / 256; f = 2 pi / 8
        // (wavelength 8): smooth = (16 / 8 - 1) / 3 = 1/3, (2/3) f / 8 + (1/3) f = f (1/12 + 1/3).
        let (pi2, s) = (2.0 * std::f32::consts::PI, (8.0, 1.0, 4.0, 16.0));
        let r = |f: f32| llama3(f, s.0, s.1, s.2, s.3);
        assert_eq!(r(pi2), pi2);
        assert!((r(pi2 / 32.0) - pi2 / 256.0).abs() < 1e-7);
        assert!((r(pi2 / 8.0) - pi2 / 8.0 * (1.0 / 12.0 + 1.0 / 3.0)).abs() < 1e-6);
    }

    #[test]
    fn rotation_of_a_pair_by_hand() {
        // one head of width 2 (one frequency 1): position 1 rotates (a, b) by 1 radian:
        // (a cos 1 - b sin 1, b cos 1 + a sin 1); position 0 leaves it alone
        let (cos, sin) = tables(&[1.0], 2, DType::F32, &Device::Cpu).unwrap();
        let x = Tensor::new(&[[[[3f32, 4.], [3., 4.]]]], &Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = apply(&x, &cos, &sin)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2()
            .unwrap();
        let (c, s) = (1f32.cos(), 1f32.sin());
        assert_eq!(y[0], [3., 4.]);
        assert!((y[1][0] - (3. * c - 4. * s)).abs() < 1e-6);
        assert!((y[1][1] - (4. * c + 3. * s)).abs() < 1e-6);
    }
}
