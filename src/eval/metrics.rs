//! HR@K, NDCG@K and MRR from 1-based ranks (docs/MODEL.md section 6).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One ranking metric. Written `HR@K`, `NDCG@K` or `MRR` in configs, on the command line and
/// in `summary.json`; parsed once into this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Hit ratio at cut-off K: `mean [rank <= K]`.
    Hr(usize),
    /// NDCG at cut-off K: `mean [rank <= K] / log2(rank + 1)`.
    Ndcg(usize),
    /// Mean reciprocal rank: `mean 1 / rank`.
    Mrr,
}

impl Metric {
    /// The cut-off K, if the metric has one.
    pub fn cutoff(self) -> Option<usize> {
        match self {
            Metric::Hr(k) | Metric::Ndcg(k) => Some(k),
            Metric::Mrr => None,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Hr(k) => write!(f, "HR@{k}"),
            Metric::Ndcg(k) => write!(f, "NDCG@{k}"),
            Metric::Mrr => write!(f, "MRR"),
        }
    }
}

impl FromStr for Metric {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not a metric (expected HR@K, NDCG@K or MRR, K >= 1)");
        if s == "MRR" {
            return Ok(Metric::Mrr);
        }
        let (name, k) = s.split_once('@').ok_or_else(bad)?;
        let k: usize = k.parse().ok().filter(|&k| k > 0).ok_or_else(bad)?;
        match name {
            "HR" => Ok(Metric::Hr(k)),
            "NDCG" => Ok(Metric::Ndcg(k)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Metric -> value, e.g. `HR@10 -> 0.051`: `HR@K` and `NDCG@K` for each computed K, and `MRR`.
/// Serialised as a map from the metric's name (`"HR@10"`), as in `summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<Metric, f64>);

impl Metrics {
    /// Compute the metrics of `ranks` (1-based) for every K in `ks`:
    /// `HR@K = mean [rank <= K]`, `NDCG@K = mean [rank <= K] / log2(rank + 1)`,
    /// `MRR = mean 1 / rank`. An empty rank list gives zeros.
    pub fn from_ranks(ranks: &[u64], ks: &[usize]) -> Metrics {
        let n = ranks.len().max(1) as f64;
        let mut m = BTreeMap::new();
        for &k in ks {
            let hits = ranks.iter().filter(|&&r| r <= k as u64).count() as f64;
            let ndcg: f64 = ranks
                .iter()
                .filter(|&&r| r <= k as u64)
                .map(|&r| 1.0 / ((r + 1) as f64).log2())
                .sum();
            m.insert(Metric::Hr(k), hits / n);
            m.insert(Metric::Ndcg(k), ndcg / n);
        }
        let mrr: f64 = ranks.iter().map(|&r| 1.0 / r as f64).sum();
        m.insert(Metric::Mrr, mrr / n);
        Metrics(m)
    }

    /// The value of `metric` (0 when absent).
    pub fn get(&self, metric: Metric) -> f64 {
        self.value(metric).unwrap_or(0.0)
    }

    /// The value of `metric`, or `None` when the run did not compute it (another cut-off K).
    pub fn value(&self, metric: Metric) -> Option<f64> {
        self.0.get(&metric).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_metrics() {
        // ranks 1, 3, 12, 2:
        // HR@10 = 3/4 = 0.75; HR@2 = 2/4 = 0.5
        // NDCG@10 = (1/log2 2 + 1/log2 4 + 0 + 1/log2 3) / 4 = (1 + 0.5 + 0.6309298) / 4 = 0.5327325
        // NDCG@2  = (1 + 0.6309298) / 4 = 0.4077325
        // MRR = (1 + 1/3 + 1/12 + 1/2) / 4 = 1.9166667 / 4 = 0.4791667
        let m = Metrics::from_ranks(&[1, 3, 12, 2], &[2, 10]);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(close(m.get(Metric::Hr(10)), 0.75));
        assert!(close(m.get(Metric::Hr(2)), 0.5));
        let ndcg10 = m.get(Metric::Ndcg(10));
        assert!(close(ndcg10, 0.5327325), "{ndcg10}");
        assert!(close(m.get(Metric::Ndcg(2)), 0.4077325));
        assert!(close(m.get(Metric::Mrr), 0.4791667));
        // a cutoff that was not computed has no value (the report prints a dash)
        assert_eq!(m.value(Metric::Hr(20)), None);
        assert_eq!(m.value(Metric::Hr(2)), Some(0.5));
    }

    #[test]
    fn metric_names_parse_and_print_back() {
        for (s, m) in [
            ("HR@10", Metric::Hr(10)),
            ("NDCG@5", Metric::Ndcg(5)),
            ("MRR", Metric::Mrr),
        ] {
            assert_eq!(s.parse::<Metric>().unwrap(), m);
            assert_eq!(m.to_string(), s);
        }
        for bad in ["HR@0", "HR@", "hr@10", "NDCG10", "MAP@10", "HR@x"] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
        // summary.json keeps its string keys
        let m = Metrics::from_ranks(&[1], &[10]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"HR@10":1.0,"NDCG@10":1.0,"MRR":1.0}"#);
        assert_eq!(serde_json::from_str::<Metrics>(&json).unwrap(), m);
    }
}
