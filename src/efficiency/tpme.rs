//! TPME (training-time, parameter and memory efficiency; docs/MODEL.md section 8): over the
//! compared set, min-max normalise time t, trainable parameters p and peak memory m to [0, 1]
//! (a column where every run is equal normalises to 0), then `TPME = w_t t' + w_p p' + w_m m'`
//! (lower is better; the paper's weights are 0.45 / 0.1 / 0.45, and weights must sum to 1, as
//! the paper defines it). Runs of several datasets are normalised within their own dataset
//! ([`tpme_by_group`]): seconds on one dataset are not comparable with seconds on another.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// TPME weights.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TpmeWeights {
    /// Weight of seconds per epoch.
    pub time: f64,
    /// Weight of trainable parameters.
    pub params: f64,
    /// Weight of peak memory.
    pub memory: f64,
}

impl Default for TpmeWeights {
    fn default() -> Self {
        TpmeWeights {
            time: 0.45,
            params: 0.1,
            memory: 0.45,
        }
    }
}

impl TpmeWeights {
    /// Parse `"t,p,m"` (e.g. `0.45,0.1,0.45`).
    pub fn parse(s: &str) -> Result<TpmeWeights> {
        let v: Vec<f64> = s
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Config(format!("TPME weights {s:?}: {e}")))?;
        match v[..] {
            [time, params, memory] if v.iter().all(|w| w.is_finite() && *w >= 0.0) => {
                let sum = time + params + memory;
                if (sum - 1.0).abs() > 1e-9 {
                    return Err(Error::Config(format!(
                        "TPME weights {s:?} sum to {sum}: they must sum to 1 (the paper's definition)"
                    )));
                }
                Ok(TpmeWeights {
                    time,
                    params,
                    memory,
                })
            }
            _ => Err(Error::Config(format!(
                "TPME weights {s:?}: need three non-negative numbers t,p,m"
            ))),
        }
    }
}

/// Min-max normalisation of `v` to [0, 1]; all-equal columns map to 0.
pub fn min_max(v: &[f64]) -> Vec<f64> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    v.iter()
        .map(|x| if hi > lo { (x - lo) / (hi - lo) } else { 0.0 })
        .collect()
}

/// TPME of each `(time, params, memory)` triple over the set.
pub fn tpme(triples: &[(f64, f64, f64)], w: TpmeWeights) -> Vec<f64> {
    let col = |f: fn(&(f64, f64, f64)) -> f64| min_max(&triples.iter().map(f).collect::<Vec<_>>());
    let (t, p, m) = (col(|x| x.0), col(|x| x.1), col(|x| x.2));
    (0..triples.len())
        .map(|i| w.time * t[i] + w.params * p[i] + w.memory * m[i])
        .collect()
}

/// TPME of each triple, normalised within the runs that share its `group` (the dataset).
pub fn tpme_by_group(triples: &[(f64, f64, f64)], groups: &[&str], w: TpmeWeights) -> Vec<f64> {
    let mut out = vec![0.0; triples.len()];
    let mut seen: Vec<&str> = Vec::new();
    for &g in groups {
        if seen.contains(&g) {
            continue;
        }
        seen.push(g);
        let idx: Vec<usize> = (0..groups.len()).filter(|&i| groups[i] == g).collect();
        let sub: Vec<(f64, f64, f64)> = idx.iter().map(|&i| triples[i]).collect();
        for (&i, t) in idx.iter().zip(tpme(&sub, w)) {
            out[i] = t;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three methods, hand-computed:
    /// time [10, 100, 55] -> t' [0, 1, 0.5]; params [1e6, 1e8, 1e6] -> p' [0, 1, 0];
    /// memory [500, 4500, 1500] -> m' [0, 1, 0.25].
    /// TPME = 0.45 t' + 0.1 p' + 0.45 m' = [0, 1, 0.225 + 0.1125 = 0.3375].
    #[test]
    fn tpme_of_a_hand_computed_three_method_set() {
        let t = tpme(
            &[
                (10.0, 1e6, 500.0),
                (100.0, 1e8, 4500.0),
                (55.0, 1e6, 1500.0),
            ],
            TpmeWeights::default(),
        );
        let want = [0.0, 1.0, 0.3375];
        for (a, b) in t.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{t:?}");
        }
        // with weights 1,0,0 TPME is the normalised time
        let w = TpmeWeights::parse("1,0,0").unwrap();
        assert_eq!(tpme(&[(1.0, 5.0, 5.0), (3.0, 1.0, 1.0)], w), [0.0, 1.0]);
        assert_eq!(min_max(&[2.0, 2.0]), [0.0, 0.0]);
        assert!(TpmeWeights::parse("1,2").is_err());
        assert!(TpmeWeights::parse("1,-2,0").is_err());
        let e = TpmeWeights::parse("0.5,0.5,0.5").unwrap_err().to_string();
        assert!(e.contains("must sum to 1"), "{e}");
    }

    /// Two datasets, normalised apart: on "a" times [10, 30] -> [0, 1]; on "b" the single run
    /// normalises to 0 whatever its figures. Pooled, the "b" run's 1000 s would have pushed
    /// both "a" runs to t' near 0.
    #[test]
    fn each_dataset_is_normalised_on_its_own() {
        let w = TpmeWeights::parse("1,0,0").unwrap();
        let triples = [(10.0, 1.0, 1.0), (1000.0, 1.0, 1.0), (30.0, 1.0, 1.0)];
        assert_eq!(
            tpme_by_group(&triples, &["a", "b", "a"], w),
            [0.0, 0.0, 1.0]
        );
        let pooled = tpme(&triples, w);
        assert!(pooled[2] < 0.03, "{pooled:?}");
    }
}
