//! The report of finished runs as one self-contained HTML page (docs/REPORT.md): the runs'
//! settings side by side, the test metrics under both masks, each run's training curves with
//! its best epoch, the efficiency comparison with its charts, and the test metrics broken down
//! by target popularity, history length and coldness, each as a table and a chart.

use std::fmt::Write;

use super::breakdowns::breakdowns_section;
use super::compare::{CompareRow, compare, efficiency_charts};
use super::page::{Cell, Section, Table, document};
use super::settings::{flatten, side_by_side};
use super::training::curves_section;
use super::view::{PageOptions, RunView, labels, shared_ks};
use crate::error::Result;
use crate::eval::{Mask, Metric};
use crate::run::Summary;

/// The page of `runs` (at least one).
pub fn render(runs: &[RunView], o: &PageOptions) -> Result<String> {
    let labels = labels(runs);
    let summaries: Vec<Summary> = runs.iter().map(|r| r.summary.clone()).collect();
    let rows = compare(&summaries, o.mask, o.weights)?;
    let sections = vec![
        settings_section(runs, &labels),
        metrics_section(runs, &labels),
        curves_section(runs, &labels)?,
        efficiency_section(&rows, &labels, o)?,
        breakdowns_section(runs, &labels, o.mask)?,
    ];
    let mut datasets: Vec<&str> = runs
        .iter()
        .map(|r| r.summary.dataset.name.as_str())
        .collect();
    // each dataset once, in the runs' order
    let mut seen = std::collections::HashSet::new();
    datasets.retain(|d| seen.insert(*d));
    let subtitle = format!(
        "{} runs on {}; charts show test metrics masking {}; written {} by iisan {}",
        runs.len(),
        datasets.join(", "),
        o.mask.name(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        crate::run::summary::GIT_REV
    );
    Ok(document("iisan report", &subtitle, &sections))
}

fn settings_section(runs: &[RunView], labels: &[String]) -> Section {
    let mut facts = Table::new(&[
        "run",
        "directory",
        "dataset",
        "users / items / interactions",
        "best epoch",
        "device",
        "wall time",
        "git",
    ]);
    for (r, label) in runs.iter().zip(labels) {
        let s = &r.summary;
        let st = &s.dataset.stats;
        let stop = if s.stopped_early {
            ", stopped early"
        } else {
            ""
        };
        facts.row(vec![
            Cell::text(label.as_str()),
            Cell::text(r.dir.display().to_string()),
            Cell::text(&s.dataset.name),
            Cell::number(format!("{} / {} / {}", st.users, st.items, st.interactions)),
            Cell::text(format!("{} of {}{stop}", s.best_epoch, s.epochs_run)),
            Cell::text(format!(
                "{}, {} ({} threads)",
                s.efficiency.device.as_deref().unwrap_or("cpu"),
                s.efficiency.precision.as_deref().unwrap_or("f32"),
                s.efficiency.threads
            )),
            Cell::number(format!("{:.0} s", s.wall_seconds)),
            Cell::text(&s.git_rev),
        ]);
    }
    let configs: Vec<_> = runs.iter().map(|r| flatten(&r.config)).collect();
    let (differs, same) = side_by_side(labels, &configs);
    let mut body = facts.html();
    let _ = write!(
        body,
        "<h3>Settings that differ</h3>\n{}<details><summary>{} settings every run shares</summary>\n{}</details>\n",
        if differs.rows.is_empty() {
            "<p class=\"note\">None: every run has the same configuration.</p>\n".to_string()
        } else {
            differs.html()
        },
        same.rows.len(),
        same.html()
    );
    Section {
        id: "settings",
        title: "Runs and settings".into(),
        body,
    }
}

fn metrics_section(runs: &[RunView], labels: &[String]) -> Section {
    let ks = shared_ks(runs);
    let mut body = String::from(
        "<p class=\"note\">Test metrics of each run's best epoch over all its users. Masking \
         <code>history</code> (the paper's) leaves out the items a user already interacted with \
         before ranking; <code>none</code> ranks the whole catalogue. The best of each column is bold.</p>\n",
    );
    for mask in Mask::ALL {
        let mut names: Vec<String> = vec!["run".into()];
        for &k in &ks {
            names.push(format!("HR@{k}"));
            names.push(format!("NDCG@{k}"));
        }
        names.push("MRR".into());
        let head: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        for (r, label) in runs.iter().zip(labels) {
            let m = r.summary.test.get(mask);
            let mut cells = vec![Cell::text(label.as_str())];
            let mut metrics: Vec<Metric> = ks
                .iter()
                .flat_map(|&k| [Metric::Hr(k), Metric::Ndcg(k)])
                .collect();
            metrics.push(Metric::Mrr);
            for metric in metrics {
                let v = m.value(metric).filter(|_| r.summary.evaluated);
                cells.push(Cell::number(
                    v.map_or("—".to_string(), |v| format!("{:.4}", v + 0.0)),
                ));
            }
            t.row(cells);
        }
        t.bold_max(1..names.len());
        let _ = write!(
            body,
            "<h3>Masking <code>{}</code></h3>\n{}",
            mask.name(),
            t.html()
        );
    }
    Section {
        id: "metrics",
        title: "Test metrics".into(),
        body,
    }
}

fn efficiency_section(rows: &[CompareRow], labels: &[String], o: &PageOptions) -> Result<Section> {
    let mut t = Table::new(&[
        "run",
        "HR@10",
        "NDCG@10",
        "trainable parameters",
        "s / epoch",
        "peak MiB",
        "TPME",
    ]);
    for (r, label) in rows.iter().zip(labels) {
        let opt = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.4}"));
        let extrapolated = if r.extrapolated {
            " (extrapolated)"
        } else {
            ""
        };
        t.row(vec![
            Cell::text(label.as_str()),
            Cell::number(opt(r.hr10)),
            Cell::number(opt(r.ndcg10)),
            Cell::number(r.trainable_params.to_string()),
            Cell::number(format!("{:.2}{extrapolated}", r.seconds_per_epoch)),
            Cell::number(format!("{:.0}", r.peak_memory_mib)),
            Cell::number(format!("{:.4}", r.tpme)),
        ]);
    }
    t.bold_max([1, 2]);
    let mut body = t.html();
    let w = o.weights;
    let _ = write!(
        body,
        "<p class=\"note\">Test metrics masking <code>{}</code>. TPME = {} t' + {} p' + {} m', each \
         term min-max normalised over these runs (0 best). Peak memory: the training footprint \
         (peak resident memory when the first epoch's steps ended, before any evaluation) where the \
         run recorded it, else the whole run's peak. Time, memory and parameters on log axes.</p>\n<div class=\"charts\">\n",
        o.mask.name(),
        w.time,
        w.params,
        w.memory
    );
    for (file, mut chart) in efficiency_charts(rows) {
        chart.categories = labels.to_vec();
        let _ = writeln!(
            body,
            "<figure class=\"efficiency\" id=\"{}\">{}</figure>",
            file.trim_end_matches(".svg"),
            chart.svg()?
        );
    }
    body.push_str("</div>\n");
    Ok(Section {
        id: "efficiency",
        title: "Efficiency".into(),
        body,
    })
}
