//! How a text tower's per-token states become one state per item and hidden state
//! (docs/MODEL.md section 2, "Pooling"): the [CLS] row for encoders, and for decoder towers,
//! which have no such token, the mean over the title's real tokens (the default), the mean
//! over every position of a title padded to `max_tokens` (the authors' LLM script averages the
//! padding positions too; offered for fidelity), or the last real token.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One state per item from a layer's token states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Pooling {
    /// The first token's state ([CLS]; encoder towers).
    Cls,
    /// The mean over the real tokens (attention mask 1).
    Mean,
    /// The mean over every position of the title padded to `max_tokens`, padding included.
    MeanUnmasked,
    /// The state of the last real token.
    Last,
}

impl Pooling {
    /// The name used in configurations, cache headers and records.
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
            Pooling::MeanUnmasked => "mean_unmasked",
            Pooling::Last => "last",
        }
    }

    /// What a tower record keeps of it (`TowerRecord::pooling`): none for `cls`, the encoders'
    /// pooling and what a record written before there was a choice means.
    pub fn recorded(self) -> Option<String> {
        (self != Pooling::Cls).then(|| self.name().to_string())
    }

    /// The pooling named `s` (one of [`Pooling::name`]'s names).
    pub fn parse(s: &str) -> Result<Pooling> {
        [
            Pooling::Cls,
            Pooling::Mean,
            Pooling::MeanUnmasked,
            Pooling::Last,
        ]
        .into_iter()
        .find(|p| p.name() == s)
        .ok_or_else(|| {
            Error::Config(format!(
                "unknown pooling {s:?} (cls, mean, mean_unmasked or last)"
            ))
        })
    }

    /// Pool token states `h` `[B, T, D]` under the attention mask `mask` `[B, T]` (1 real, 0
    /// padding; real tokens first) into `[B, D]`, in `h`'s dtype.
    pub fn pool(self, h: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (b, t, d) = h.dims3()?;
        Ok(match self {
            Pooling::Cls => h.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::MeanUnmasked => h.mean(1)?,
            Pooling::Mean => {
                let m = mask.to_dtype(h.dtype())?;
                let n = m.sum_keepdim(1)?.clamp(1.0, f64::MAX)?; // [B, 1]
                h.broadcast_mul(&m.unsqueeze(2)?)?
                    .sum(1)?
                    .broadcast_div(&n)?
            }
            Pooling::Last => {
                let lens: Vec<f32> = mask.to_dtype(DType::F32)?.sum(1)?.to_vec1()?;
                let rows: Vec<u32> = lens
                    .iter()
                    .enumerate()
                    .map(|(r, &n)| (r * t + (n as usize).clamp(1, t) - 1) as u32)
                    .collect();
                let idx = Tensor::from_vec(rows, b, h.device())?;
                h.reshape((b * t, d))?.index_select(&idx, 0)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two rows of 3 positions, width 2: row 0 has 2 real tokens, row 1 has 3.
    fn states() -> (Tensor, Tensor) {
        let h = Tensor::new(
            &[
                [[1f32, 10.], [3., 30.], [8., 80.]],
                [[2., 20.], [4., 40.], [6., 60.]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let m = Tensor::new(&[[1f32, 1., 0.], [1., 1., 1.]], &Device::Cpu).unwrap();
        (h, m)
    }

    fn pooled(p: Pooling) -> Vec<Vec<f32>> {
        let (h, m) = states();
        p.pool(&h, &m).unwrap().to_vec2().unwrap()
    }

    #[test]
    fn each_pooling_by_hand() {
        // cls: position 0; mean: row 0 (1+3)/2, (10+30)/2, row 1 (2+4+6)/3; mean_unmasked:
        // row 0 (1+3+8)/3 = 4, (10+30+80)/3 = 40; last: row 0 position 1, row 1 position 2
        assert_eq!(pooled(Pooling::Cls), [[1., 10.], [2., 20.]]);
        assert_eq!(pooled(Pooling::Mean), [[2., 20.], [4., 40.]]);
        assert_eq!(pooled(Pooling::MeanUnmasked), [[4., 40.], [4., 40.]]);
        assert_eq!(pooled(Pooling::Last), [[3., 30.], [6., 60.]]);
    }

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for p in [
            Pooling::Cls,
            Pooling::Mean,
            Pooling::MeanUnmasked,
            Pooling::Last,
        ] {
            assert_eq!(Pooling::parse(p.name()).unwrap(), p);
        }
        assert!(Pooling::parse("max").is_err());
    }
}
