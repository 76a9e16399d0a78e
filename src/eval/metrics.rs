//! HR@K, NDCG@K and MRR from 1-based ranks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metric name -> value, e.g. `"HR@10" -> 0.051`. Keys: `HR@K` and `NDCG@K` for each K, `MRR`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    /// Compute the metrics of `ranks` (1-based) for every K in `ks`:
    /// `HR@K = mean [rank <= K]`, `NDCG@K = mean [rank <= K] / log2(rank + 1)`,
    /// `MRR = mean 1 / rank`. An empty rank list gives zeros.
    pub fn from_ranks(ranks: &[u64], ks: &[usize]) -> Metrics {
        let n = ranks.len().max(1) as f64;
        let mut m = BTreeMap::new();
        for &k in ks {
            let k = k as u64;
            let hits = ranks.iter().filter(|&&r| r <= k).count() as f64;
            let ndcg: f64 = ranks
                .iter()
                .filter(|&&r| r <= k)
                .map(|&r| 1.0 / ((r + 1) as f64).log2())
                .sum();
            m.insert(format!("HR@{k}"), hits / n);
            m.insert(format!("NDCG@{k}"), ndcg / n);
        }
        let mrr: f64 = ranks.iter().map(|&r| 1.0 / r as f64).sum();
        m.insert("MRR".into(), mrr / n);
        Metrics(m)
    }

    /// The value of `name` (0 when absent).
    pub fn get(&self, name: &str) -> f64 {
        self.value(name).unwrap_or(0.0)
    }

    /// The value of `name`, or `None` when the run did not compute it (another cutoff k).
    pub fn value(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
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
        assert!(close(m.get("HR@10"), 0.75));
        assert!(close(m.get("HR@2"), 0.5));
        assert!(close(m.get("NDCG@10"), 0.5327325), "{}", m.get("NDCG@10"));
        assert!(close(m.get("NDCG@2"), 0.4077325));
        assert!(close(m.get("MRR"), 0.4791667));
        // a cutoff that was not computed has no value (the report prints a dash)
        assert_eq!(m.value("HR@20"), None);
        assert_eq!(m.value("HR@2"), Some(0.5));
    }
}
