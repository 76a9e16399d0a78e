//! The report's breakdowns of the test metrics (docs/MODEL.md section 6): per breakdown its
//! rule, a table of every bucket and run (users, items, HR@K and NDCG@K under both masks) and a
//! grouped bar chart of HR@K.

use std::fmt::Write;

use super::bars::{Bars, Series};
use super::page::{Cell, Section, Table, escape};
use super::view::{RunView, shared_ks};
use crate::error::Result;
use crate::eval::{Breakdown, EvalGroup, Mask, Metric};

/// What each breakdown splits by, for the page.
fn rule(by: Breakdown) -> &'static str {
    match by {
        Breakdown::Popularity => {
            "Users by the training popularity of their test target: the catalogue's items ordered \
             by how often they occur in training positions (every position before a sequence's \
             last two); head = the first 20 % of the items, torso = the next 30 %, tail = the rest."
        }
        Breakdown::History => {
            "Users by the number of interactions before their test target: at most 7, 8 to 10, 11 or more."
        }
        Breakdown::Cold => {
            "Users by whether their test target occurs in a training position (warm) or never (cold)."
        }
    }
}

fn title(by: Breakdown) -> &'static str {
    match by {
        Breakdown::Popularity => "target popularity",
        Breakdown::History => "history length",
        Breakdown::Cold => "warm or cold target",
    }
}

/// Per breakdown: its rule, a table (bucket, run, users, items, HR@K and NDCG@K under both
/// masks) and a grouped bar chart of HR@K under `mask` (buckets without users have no bar).
pub fn breakdowns_section(runs: &[RunView], labels: &[String], mask: Mask) -> Result<Section> {
    let k = shared_ks(runs).first().copied().unwrap_or(10);
    let mut body = String::new();
    for (r, label) in runs.iter().zip(labels) {
        if let Err(why) = &r.breakdowns {
            let _ = writeln!(
                body,
                "<p class=\"note\">Not broken down: {}: {}</p>",
                escape(label),
                escape(why)
            );
        }
    }
    for by in [Breakdown::Popularity, Breakdown::History, Breakdown::Cold] {
        let per_run: Vec<Option<&Vec<EvalGroup>>> = runs
            .iter()
            .map(|r| {
                r.breakdowns
                    .as_ref()
                    .ok()
                    .and_then(|b| b.iter().find(|(x, _)| *x == by))
                    .map(|(_, g)| g)
            })
            .collect();
        if per_run.iter().all(Option::is_none) {
            continue;
        }
        let (table, chart) = breakdown(by, &per_run, labels, mask, k);
        let _ = write!(
            body,
            "<h3>By {}</h3>\n<p class=\"note\">{}</p>\n{}<figure class=\"breakdown\">{}</figure>\n",
            title(by),
            rule(by),
            table.html(),
            chart.svg()?
        );
    }
    Ok(Section {
        id: "breakdowns",
        title: "Where each method wins".into(),
        body,
    })
}

/// The table and chart of breakdown `by` from each run's groups (`None`: not broken down), at
/// cut-off `k`, the chart under `mask`; buckets in the first broken-down run's order.
fn breakdown(
    by: Breakdown,
    per_run: &[Option<&Vec<EvalGroup>>],
    labels: &[String],
    mask: Mask,
    k: usize,
) -> (Table, Bars) {
    let first = per_run
        .iter()
        .flatten()
        .next()
        .expect("one run broken down");
    let buckets: Vec<String> = first.iter().map(|g| g.name.clone()).collect();
    let (hr, ndcg) = (Metric::Hr(k), Metric::Ndcg(k));
    let head: Vec<String> = ["bucket", "run", "users", "items"]
        .iter()
        .map(|h| h.to_string())
        .chain(
            [
                (hr, "history"),
                (ndcg, "history"),
                (hr, "none"),
                (ndcg, "none"),
            ]
            .iter()
            .map(|(m, mask)| format!("{m} {mask}")),
        )
        .collect();
    let mut table = Table::new(&head.iter().map(String::as_str).collect::<Vec<_>>());
    let mut series = Vec::new();
    for (groups, label) in per_run.iter().zip(labels) {
        let Some(groups) = groups else { continue };
        let mut values = Vec::new();
        for name in &buckets {
            // a bucket without users has no metric (its mean over nobody is not zero)
            let g = groups.iter().find(|g| &g.name == name);
            let with_users = g.filter(|g| g.users > 0);
            let v = |m: Mask, metric: Metric| -> Cell {
                let v = with_users.map(|g| g.metrics.get(m).get(metric));
                // + 0.0 writes a zero sum as 0.0000, not -0.0000
                Cell::number(v.map_or("—".into(), |v| format!("{:.4}", v + 0.0)))
            };
            table.row(vec![
                Cell::text(name.as_str()),
                Cell::text(label.as_str()),
                Cell::number(g.map_or(0, |g| g.users).to_string()),
                Cell::number(g.and_then(|g| g.items).map_or("".into(), |n| n.to_string())),
                v(Mask::History, hr),
                v(Mask::History, ndcg),
                v(Mask::None, hr),
                v(Mask::None, ndcg),
            ]);
            values.push(with_users.map(|g| g.metrics.get(mask).get(hr)));
        }
        series.push(Series {
            name: label.clone(),
            values,
        });
    }
    let chart = Bars {
        title: format!("test {hr} by {} (masking {})", title(by), mask.name()),
        x_desc: title(by).into(),
        y_desc: hr.to_string(),
        categories: buckets,
        series,
        log: false,
    };
    (table, chart)
}
