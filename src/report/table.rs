//! Plain-text tables of run outcomes for the terminal.

use crate::eval::{Mask, Metric};
use crate::run::Summary;

/// A Markdown table of test metrics (one row per run and mask in `masks`) and efficiency for
/// `runs`, with `ks` columns.
pub fn summary_table(runs: &[Summary], ks: &[usize], masks: &[Mask]) -> String {
    let mut head = vec!["method".to_string(), "dataset".into(), "mask".into()];
    for k in ks {
        head.push(format!("HR@{k}"));
        head.push(format!("NDCG@{k}"));
    }
    head.extend(
        [
            "MRR",
            "trainable",
            "s/epoch",
            "eval s",
            "peak RSS MiB",
            "best/run epochs",
        ]
        .map(String::from),
    );
    let mut rows = vec![head];
    for s in runs {
        let ds = if s.dataset.synthetic && !s.dataset.name.contains("synth") {
            format!("{} (synthetic)", s.dataset.name)
        } else {
            s.dataset.name.clone()
        };
        for &mask in masks {
            let m = s.test.get(mask);
            let method = super::compare::label(&s.method, s.efficiency.precision.as_deref());
            let mut r = vec![method, ds.clone(), mask.name().to_string()];
            // a run with eval.skip, or without this cutoff, has no value: a dash, never a zero
            let metric = |name: Metric| match m.value(name) {
                Some(v) if s.evaluated => format!("{v:.4}"),
                _ => "-".to_string(),
            };
            for k in ks {
                r.push(metric(Metric::Hr(*k)));
                r.push(metric(Metric::Ndcg(*k)));
            }
            let e = &s.efficiency;
            r.push(metric(Metric::Mrr));
            r.push(e.trainable_params.to_string());
            r.push(format!(
                "{:.2}{}",
                e.seconds_per_epoch,
                if e.extrapolated { "*" } else { "" }
            ));
            r.push(format!("{:.2}", e.eval_seconds));
            r.push(e.peak_rss_mib.map_or("-".into(), |m| format!("{m:.0}")));
            r.push(format!("{}/{}", s.best_epoch, s.epochs_run));
            rows.push(r);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let line = |r: &Vec<String>| {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    let mut out = line(&rows[0]);
    out.push('\n');
    let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", sep.join("-|-")));
    for r in &rows[1..] {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}
