//! The paper's efficiency comparison across runs (docs/MODEL.md section 8): accuracy, trainable
//! parameters, seconds per epoch, peak memory and TPME, as Markdown, CSV and JSON.
//! TPME itself is computed by [`crate::efficiency::tpme`].

use std::path::Path;

use serde::{Deserialize, Serialize};

#[cfg(feature = "charts")]
use super::bars::Bars;
use crate::efficiency::Efficiency;
use crate::efficiency::tpme::{TpmeWeights, tpme_by_group};
use crate::error::{Error, Result};
use crate::eval::{Mask, Metric};
use crate::run::Summary;

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

/// A run's method label, with its training precision when it is a mixed one (`fft:text (f16)`).
pub(crate) fn label(method: &str, precision: Option<&str>) -> String {
    match precision {
        Some(p) if p != "f32" => format!("{method} ({p})"),
        _ => method.to_string(),
    }
}

/// The training footprint where the run recorded it, else the whole run's peak: on a GPU the
/// device's memory, on the CPU the process's.
fn footprint(e: &Efficiency) -> Option<f64> {
    (e.train_peak_device_mib.or(e.peak_device_mib))
        .or(e.train_peak_rss_mib)
        .or(e.peak_rss_mib)
}

/// The comparison rows of `runs` (test metrics under `mask`).
pub fn compare(runs: &[Summary], mask: Mask, w: TpmeWeights) -> Result<Vec<CompareRow>> {
    let mut rows = Vec::with_capacity(runs.len());
    for s in runs {
        let m = s.test.get(mask);
        let mem = footprint(&s.efficiency).ok_or_else(|| {
            Error::Config(format!(
                "{}: the run recorded no peak memory",
                s.run_dir.display()
            ))
        })?;
        let metric = |name: Metric| -> Result<Option<f64>> {
            if !s.evaluated {
                return Ok(None);
            }
            m.value(name).map(Some).ok_or_else(|| {
                Error::Config(format!(
                    "{}: no test {name} in its summary (train with eval.ks including 10)",
                    s.run_dir.display()
                ))
            })
        };
        rows.push(CompareRow {
            method: label(&s.method, s.efficiency.precision.as_deref()),
            dataset: s.dataset.name.clone(),
            hr10: metric(Metric::Hr(10))?,
            ndcg10: metric(Metric::Ndcg(10))?,
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
    let datasets: Vec<String> = rows.iter().map(|r| r.dataset.clone()).collect();
    let groups: Vec<&str> = datasets.iter().map(String::as_str).collect();
    for (r, t) in rows.iter_mut().zip(tpme_by_group(&triples, &groups, w)) {
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
    for r in rows {
        s.push_str(&format!("| {} |\n", cells(r, true).join(" | ")));
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
         evaluation; for a run on a GPU the device's peak then) where the run recorded it, else \
         the whole run's peak. A method trained in mixed precision is labelled with it.\n",
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
    for r in rows {
        s.push_str(&cells(r, false).join(","));
        s.push('\n');
    }
    s
}

/// One row's cells in the tables' column order: rounded for reading (`markdown`), or every
/// digit for the CSV.
fn cells(r: &CompareRow, markdown: bool) -> Vec<String> {
    let opt = |v: Option<f64>| match (v, markdown) {
        (None, true) => "—".to_string(),
        (None, false) => String::new(),
        (Some(v), true) => format!("{v:.4}"),
        (Some(v), false) => v.to_string(),
    };
    let (seconds, memory, tpme) = if markdown {
        let note = if r.extrapolated {
            " (extrapolated)"
        } else {
            ""
        };
        let memory = format!("{:.0}", r.peak_memory_mib);
        (
            format!("{:.2}{note}", r.seconds_per_epoch),
            memory,
            format!("{:.4}", r.tpme),
        )
    } else {
        let memory = r.peak_memory_mib.to_string();
        (r.seconds_per_epoch.to_string(), memory, r.tpme.to_string())
    };
    let mut c = vec![
        r.method.clone(),
        r.dataset.clone(),
        opt(r.hr10),
        opt(r.ndcg10),
        r.trainable_params.to_string(),
        seconds,
    ];
    if !markdown {
        // the Markdown table notes an extrapolation beside the seconds instead
        c.push(r.extrapolated.to_string());
    }
    c.extend([memory, tpme]);
    c
}

/// Write `compare.md`, `compare.csv`, `compare.json` and (with the `charts` feature) the bar
/// charts `time.svg`, `memory.svg`, `params.svg`, `tpme.svg` into `dir` (each through a temporary name);
/// returns the Markdown.
pub fn write_all(rows: &[CompareRow], mask: Mask, w: TpmeWeights, dir: &Path) -> Result<String> {
    if ["summary.json", "run.lock", "config.toml"]
        .iter()
        .any(|f| dir.join(f).exists())
    {
        return Err(Error::file(
            dir,
            "is a run directory: write the comparison elsewhere (--out)",
        ));
    }
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
    #[cfg(feature = "charts")]
    write_charts(rows, dir)?;
    Ok(md)
}

/// The efficiency charts of `rows`, each with the file name `compare` writes it to: seconds
/// per epoch, peak memory and trainable parameters on log axes (a method hundreds of times
/// smaller still shows), and TPME on a linear one.
#[cfg(feature = "charts")]
pub fn efficiency_charts(rows: &[CompareRow]) -> Vec<(&'static str, Bars)> {
    let bars = |f: fn(&CompareRow) -> f64| -> Vec<(String, f64)> {
        rows.iter().map(|r| (r.method.clone(), f(r))).collect()
    };
    let dataset = rows.first().map_or("", |r| r.dataset.as_str());
    let chart = |title: &str, unit: &str, f: fn(&CompareRow) -> f64, log: bool| {
        let title = format!("{title} ({dataset}), lower is better");
        Bars::single(&title, "method", unit, bars(f), log)
    };
    vec![
        (
            "time.svg",
            chart(
                "seconds per training epoch",
                "s / epoch (log)",
                |r| r.seconds_per_epoch,
                true,
            ),
        ),
        (
            "memory.svg",
            chart(
                "peak memory of training",
                "MiB (log)",
                |r| r.peak_memory_mib,
                true,
            ),
        ),
        (
            "params.svg",
            chart(
                "trainable parameters",
                "parameters (log)",
                |r| r.trainable_params as f64,
                true,
            ),
        ),
        (
            "tpme.svg",
            chart("TPME", "TPME (0 best, 1 worst)", |r| r.tpme, false),
        ),
    ]
}

/// The efficiency charts of `rows` as SVG files in `dir`.
#[cfg(feature = "charts")]
fn write_charts(rows: &[CompareRow], dir: &Path) -> Result<()> {
    for (file, chart) in efficiency_charts(rows) {
        chart.write_svg(&dir.join(file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GPU run's footprint is its device's training peak (800), not the host's (300); a
    /// CPU run's its training RSS (300), else its whole peak (500); a mixed precision shows.
    #[test]
    fn a_gpu_run_is_measured_by_its_device_and_labelled_with_its_precision() {
        let mut e = Efficiency {
            trainable_params: 1,
            total_params: 1,
            seconds_per_epoch: 1.0,
            extrapolated: false,
            eval_seconds: 0.0,
            peak_rss_mib: Some(500.0),
            train_peak_rss_mib: Some(300.0),
            peak_device_mib: Some(900.0),
            train_peak_device_mib: Some(800.0),
            device: Some("cuda:0".into()),
            threads: 1,
            precision: Some("f16".into()),
            skipped_steps: 0,
        };
        assert_eq!(footprint(&e), Some(800.0));
        (e.peak_device_mib, e.train_peak_device_mib) = (None, None);
        assert_eq!(footprint(&e), Some(300.0));
        e.train_peak_rss_mib = None;
        assert_eq!(footprint(&e), Some(500.0));
        assert_eq!(label("fft:text", Some("f16")), "fft:text (f16)");
        assert_eq!(label("fft:text", Some("f32")), "fft:text");
        assert_eq!(label("fft:text", None), "fft:text");
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
