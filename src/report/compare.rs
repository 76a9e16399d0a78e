//! The paper's efficiency comparison across runs (spec section 8): accuracy, trainable
//! parameters, seconds per epoch, peak memory and TPME, as Markdown, CSV and JSON.
//!
//! TPME (training-time, parameter and memory efficiency): over the compared set, min-max
//! normalise time t, trainable parameters p and peak memory m to [0, 1] (a column where every
//! run is equal normalises to 0), then `TPME = w_t t' + w_p p' + w_m m'` (lower is better; the
//! paper's weights are 0.45 / 0.1 / 0.45).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::plots::BarChart;
use crate::error::{Error, Result};
use crate::eval::Mask;
use crate::train::Summary;

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

/// One method's row of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareRow {
    /// Method label.
    pub method: String,
    /// Dataset name.
    pub dataset: String,
    /// Test HR@10 under the table's mask (`None`: the run skipped evaluation).
    pub hr10: Option<f64>,
    /// Test NDCG@10 under the table's mask.
    pub ndcg10: Option<f64>,
    /// Trainable parameters.
    pub trainable_params: usize,
    /// Seconds per training epoch.
    pub seconds_per_epoch: f64,
    /// Whether the epoch time was extrapolated from a capped number of steps.
    pub extrapolated: bool,
    /// Peak memory of training (before any evaluation) where recorded, else of the run, MiB.
    pub peak_memory_mib: f64,
    /// TPME over the compared set.
    pub tpme: f64,
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

/// The comparison rows of `runs` (test metrics under `mask`).
pub fn compare(runs: &[Summary], mask: Mask, w: TpmeWeights) -> Result<Vec<CompareRow>> {
    let mut rows = Vec::with_capacity(runs.len());
    for s in runs {
        let m = match mask {
            Mask::History => &s.test.history,
            Mask::None => &s.test.none,
        };
        // the training footprint where the run recorded it, else the whole run's peak
        let mem = s
            .efficiency
            .train_peak_rss_mib
            .or(s.efficiency.peak_rss_mib)
            .ok_or_else(|| {
                Error::Config(format!(
                    "{}: the run recorded no peak memory",
                    s.run_dir.display()
                ))
            })?;
        let metric = |name: &str| -> Result<Option<f64>> {
            if !s.evaluated {
                return Ok(None);
            }
            m.0.get(name).copied().map(Some).ok_or_else(|| {
                Error::Config(format!(
                    "{}: no test {name} in its summary (train with eval.ks including 10)",
                    s.run_dir.display()
                ))
            })
        };
        rows.push(CompareRow {
            method: s.method.clone(),
            dataset: s.dataset.name.clone(),
            hr10: metric("HR@10")?,
            ndcg10: metric("NDCG@10")?,
            trainable_params: s.efficiency.trainable_params,
            seconds_per_epoch: s.efficiency.seconds_per_epoch,
            extrapolated: s.efficiency.extrapolated,
            peak_memory_mib: mem,
            tpme: 0.0,
        });
    }
    let triples: Vec<(f64, f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r.seconds_per_epoch,
                r.trainable_params as f64,
                r.peak_memory_mib,
            )
        })
        .collect();
    for (r, t) in rows.iter_mut().zip(tpme(&triples, w)) {
        r.tpme = t;
    }
    Ok(rows)
}

/// The Markdown table.
pub fn markdown(rows: &[CompareRow], mask: Mask, w: TpmeWeights) -> String {
    let mut s = String::from(
        "| method | dataset | HR@10 | NDCG@10 | trainable | s/epoch | peak MiB | TPME |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.4}"));
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2}{} | {:.0} | {:.4} |\n",
            r.method,
            r.dataset,
            opt(r.hr10),
            opt(r.ndcg10),
            r.trainable_params,
            r.seconds_per_epoch,
            if r.extrapolated {
                " (extrapolated)"
            } else {
                ""
            },
            r.peak_memory_mib,
            r.tpme
        ));
    }
    // the paper's headline ratios: each IISAN variant against full fine-tuning
    if let Some(fft) = rows.iter().find(|r| r.method.starts_with("fft")) {
        s.push('\n');
        for i in rows.iter().filter(|r| r.method.starts_with("iisan")) {
            let t = i.seconds_per_epoch / fft.seconds_per_epoch;
            let m = i.peak_memory_mib / fft.peak_memory_mib;
            s.push_str(&format!(
                "{} / {}: time x{t:.4} ({:.0}x faster), memory x{m:.3}\n",
                i.method,
                fft.method,
                1.0 / t
            ));
        }
    }
    s.push_str(&format!(
        "\nTest metrics masking `{}`; TPME = {} t' + {} p' + {} m' (min-max over these {} runs). \
         Peak MiB: the training footprint (peak RSS when the first epoch's steps ended, before any \
         evaluation) where the run recorded it, else the whole run's peak.\n",
        mask.name(),
        w.time,
        w.params,
        w.memory,
        rows.len()
    ));
    s
}

/// The CSV table (header + one line per method).
pub fn csv(rows: &[CompareRow]) -> String {
    let mut s = String::from(
        "method,dataset,hr10,ndcg10,trainable_params,seconds_per_epoch,extrapolated,peak_memory_mib,tpme\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            r.method,
            r.dataset,
            opt(r.hr10),
            opt(r.ndcg10),
            r.trainable_params,
            r.seconds_per_epoch,
            r.extrapolated,
            r.peak_memory_mib,
            r.tpme
        ));
    }
    s
}

/// Write `compare.md`, `compare.csv`, `compare.json` and the bar charts `time.svg`,
/// `memory.svg`, `params.svg` into `dir` (each through a temporary name); returns the Markdown.
pub fn write_all(rows: &[CompareRow], mask: Mask, w: TpmeWeights, dir: &Path) -> Result<String> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let md = markdown(rows, mask, w);
    let json = serde_json::to_string_pretty(rows).expect("serialisable rows");
    for (name, text) in [
        ("compare.md", md.as_str()),
        ("compare.csv", &csv(rows)),
        ("compare.json", &json),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.partial"));
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    }
    let bars = |f: fn(&CompareRow) -> f64| -> Vec<(String, f64)> {
        rows.iter().map(|r| (r.method.clone(), f(r))).collect()
    };
    let dataset = rows.first().map_or("", |r| r.dataset.as_str());
    let charts = [
        (
            "time.svg",
            "seconds per training epoch",
            "s / epoch",
            bars(|r| r.seconds_per_epoch),
            false,
        ),
        (
            "memory.svg",
            "peak memory",
            "MiB",
            bars(|r| r.peak_memory_mib),
            false,
        ),
        (
            "params.svg",
            "trainable parameters",
            "parameters (log)",
            bars(|r| r.trainable_params as f64),
            true,
        ),
    ];
    for (file, title, unit, bars, log) in charts {
        BarChart {
            title: format!("{title} ({dataset})"),
            unit: unit.into(),
            bars,
            log,
        }
        .write_svg(&dir.join(file))?;
    }
    Ok(md)
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
    }

    #[test]
    fn markdown_marks_missing_metrics_and_states_the_ratios_to_fft() {
        let row = |method: &str, secs: f64, mem: f64, hr: Option<f64>| CompareRow {
            method: method.into(),
            dataset: "d".into(),
            hr10: hr,
            ndcg10: hr,
            trainable_params: 10,
            seconds_per_epoch: secs,
            extrapolated: hr.is_none(),
            peak_memory_mib: mem,
            tpme: 0.0,
        };
        let rows = [
            row("fft:text", 200.0, 1000.0, None),
            row("iisan:text", 2.0, 250.0, Some(0.05)),
        ];
        let md = markdown(&rows, Mask::History, TpmeWeights::default());
        assert!(
            md.contains("| fft:text | d | — | — | 10 | 200.00 (extrapolated) | 1000 |"),
            "{md}"
        );
        // 2 / 200 = 0.01 (100x faster); 250 / 1000 = 0.25
        assert!(
            md.contains("iisan:text / fft:text: time x0.0100 (100x faster), memory x0.250"),
            "{md}"
        );
        assert!(
            csv(&rows).contains("fft:text,d,,,10,200,true,1000,0\n"),
            "{}",
            csv(&rows)
        );
    }
}
