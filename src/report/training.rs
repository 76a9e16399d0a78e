//! The report's training curves: per run, the mean training loss and the validation metric per
//! epoch under both masks, the best epoch marked, and a caption of how training ended.

use std::fmt::Write;

use super::curves::{Curves, Line};
use super::page::{Section, escape};
use super::view::RunView;
use crate::error::Result;
use crate::eval::Mask;
use crate::run::summary::EpochRecord;

/// One `<figure class="curve">` per run: the training loss and the validation selection metric
/// under both masks (the selection mask solid), the best epoch marked.
pub fn curves_section(runs: &[RunView], labels: &[String]) -> Result<Section> {
    let mut body = String::from(
        "<p class=\"note\">Per epoch: the mean training loss, and the validation metric the run \
         selects its best epoch on, under both masks (the selection mask solid). The dashed \
         vertical line is the best epoch, whose parameters the test metrics use.</p>\n",
    );
    for (i, (r, label)) in runs.iter().zip(labels).enumerate() {
        let _ = writeln!(
            body,
            "<figure class=\"curve\" data-run=\"{}\">",
            escape(label)
        );
        if r.epochs.is_empty() {
            body.push_str("<p class=\"note\">No epochs recorded.</p>\n");
        } else if r.epochs.len() > 1 || r.summary.evaluated {
            body.push_str("<div class=\"charts\">");
            for chart in run_curves(r, label, i) {
                body.push_str(&chart.svg(600)?);
            }
            body.push_str("</div>\n");
        }
        let _ = writeln!(
            body,
            "<figcaption>{}</figcaption>\n</figure>",
            escape(&caption(r, label))
        );
    }
    Ok(Section {
        id: "curves",
        title: "Training curves".into(),
        body,
    })
}

/// The loss chart and (where the run validated) the validation chart of run `r`, in colour `i`.
fn run_curves(r: &RunView, label: &str, i: usize) -> Vec<Curves> {
    let s = &r.summary;
    // a run that skipped evaluation has no best epoch
    let best = s
        .evaluated
        .then(|| (s.best_epoch as f64, format!("best epoch {}", s.best_epoch)));
    let epoch = |e: &EpochRecord| e.epoch as f64;
    let mut charts = vec![Curves {
        title: format!("{label}: training loss"),
        x_desc: "epoch".into(),
        y_desc: "mean loss per step".into(),
        lines: vec![Line {
            name: "loss".into(),
            points: r.epochs.iter().map(|e| (epoch(e), e.loss)).collect(),
            colour: i,
            dashed: false,
        }],
        marker: best.clone(),
    }];
    let metric = s.select_metric;
    let lines: Vec<Line> = Mask::ALL
        .iter()
        .map(|&m| Line {
            name: format!("masking {}", m.name()),
            points: r
                .epochs
                .iter()
                .filter_map(|e| e.valid.get(m).value(metric).map(|v| (epoch(e), v)))
                .collect(),
            colour: i,
            dashed: m.name() != s.selection_mask,
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    if !lines.is_empty() {
        charts.push(Curves {
            title: format!("{label}: validation {metric}"),
            x_desc: "epoch".into(),
            y_desc: metric.to_string(),
            lines,
            marker: best,
        });
    }
    charts
}

/// What a run's curves show: its best epoch and how training ended.
fn caption(r: &RunView, label: &str) -> String {
    let s = &r.summary;
    let n = s.epochs_run;
    let epochs = match (s.stopped_early, n) {
        (true, _) => format!("stopped early after {n} epochs"),
        (false, 1) => "1 epoch".to_string(),
        (false, _) => format!("{n} epochs"),
    };
    if !s.evaluated {
        let (steps, loss) = r
            .epochs
            .first()
            .map_or((0, f64::NAN), |e| (e.steps, e.loss));
        return format!(
            "{label}: evaluation skipped (eval.skip), so no validation curve and no best epoch; \
             {epochs} of {steps} steps, a cost measurement (first epoch's mean loss {loss:.4})."
        );
    }
    format!(
        "{label}: best epoch {} by validation {} masking {}; {epochs}.",
        s.best_epoch, s.select_metric, s.selection_mask
    )
}
