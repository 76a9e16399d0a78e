//! `iisan report --html` and `iisan compare`'s `report.html` on two small runs: the page parses
//! (html5ever, through scraper), holds one training-curve figure per run with a point per
//! epoch, the metrics of each run's summary, the efficiency and breakdown charts, nothing that
//! reaches out (no script, no outside link or source); an existing file that is not a report
//! is refused and left as it was, an earlier report is replaced.

mod common;

use std::path::Path;

use common::*;
use scraper::{Html, Selector};
use serde_json::Value;

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// Two id runs of 3 epochs on one dataset, differing in their learning rate.
fn two_runs(t: &Path) {
    let data = small_synth(t, "d", 80, 40);
    for (name, lr) in [("a", "0.001"), ("b", "0.003")] {
        let mut sets = run_sets(&data, name, "id");
        sets.retain(|s| !s.starts_with("train.epochs"));
        sets.extend([
            "train.epochs=3".into(),
            "eval.ks=[10,20]".into(),
            format!("train.lr={lr}"),
        ]);
        train_run(t, &sets);
    }
}

#[test]
fn the_page_holds_every_part_and_nothing_that_reaches_out() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    two_runs(t);
    let o = iisan(
        t,
        &["report", "--html", "out/page.html", "runs/a", "runs/b"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(t.join("out/page.html")).unwrap();
    let doc = Html::parse_document(&text);
    assert!(doc.errors.is_empty(), "{:?}", doc.errors);

    curves_per_run(&doc);
    metrics_of_each_summary(&doc, t);
    // the setting that differs is listed apart, marked
    let differs = select(&doc, "#settings tr.differs");
    let keys: Vec<String> = differs
        .iter()
        .map(|r| r.text().next().unwrap().to_string())
        .collect();
    assert!(
        keys.contains(&"train.lr".to_string()) && keys.contains(&"run.name".to_string()),
        "{keys:?}"
    );

    assert_eq!(
        select(&doc, "figure.efficiency svg").len(),
        4,
        "time, memory, params, TPME"
    );
    // popularity, history, cold: a table and a chart each; every user in one bucket
    assert_eq!(select(&doc, "figure.breakdown svg").len(), 3);
    let users = summary(&t.join("runs/a"))["dataset"]["stats"]["users"]
        .as_u64()
        .unwrap();
    for table in select(&doc, "#breakdowns table") {
        let sum: u64 = table
            .select(&Selector::parse("tbody tr").unwrap())
            .filter(|r| r.text().nth(1) == Some("id (a)"))
            .map(|r| r.text().nth(2).unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, users);
    }

    // self-contained: no script, every link an anchor on the page, no outside source
    assert!(select(&doc, "script, link, img, iframe, object").is_empty());
    for a in select(&doc, "[href]") {
        assert!(a.value().attr("href").unwrap().starts_with('#'));
    }
    assert!(select(&doc, "[src]").is_empty());
}

/// One curve figure per run, in order, each with the loss and the validation chart; the loss
/// chart has one point per epoch.
fn curves_per_run(doc: &Html) {
    // one curve figure per run, in order, each with the loss and the validation chart; the
    // loss chart has one point per epoch
    let curves = select(doc, "figure.curve");
    let runs: Vec<&str> = curves
        .iter()
        .map(|f| f.value().attr("data-run").unwrap())
        .collect();
    assert_eq!(runs, ["id (a)", "id (b)"]);
    for f in &curves {
        let svgs: Vec<_> = f.select(&Selector::parse("svg").unwrap()).collect();
        assert_eq!(svgs.len(), 2, "loss and validation charts");
        let points = svgs[0].select(&Selector::parse("circle").unwrap()).count();
        assert_eq!(points, 3, "one point per epoch");
        assert!(svgs[0].inner_html().contains("best epoch"));
    }
}

/// The metrics tables (both masks): a column per metric the runs computed, each once, and each
/// summary's test HR@10 to four decimals.
fn metrics_of_each_summary(doc: &Html, t: &Path) {
    let tables = select(doc, "#metrics table");
    assert_eq!(tables.len(), 2);
    for (table, mask) in tables.iter().zip(["history", "none"]) {
        // one column per metric the runs computed, each once
        let head: Vec<String> = table
            .select(&Selector::parse("th").unwrap())
            .map(|h| h.text().collect())
            .collect();
        let metrics: Vec<String> = summary(&t.join("runs/a"))["test"][mask]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(head.len(), 1 + metrics.len(), "{head:?} vs {metrics:?}");
        assert!(metrics.iter().all(|m| head.contains(m)), "{head:?}");
        let text = table.text().collect::<String>();
        for run in ["a", "b"] {
            let hr = summary(&t.join("runs").join(run))["test"][mask]["HR@10"]
                .as_f64()
                .unwrap();
            assert!(
                text.contains(&format!("{:.4}", hr + 0.0)),
                "{mask} {run}: {text}"
            );
        }
    }
}

#[test]
fn compare_writes_the_page_and_only_a_report_is_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    two_runs(t);
    let o = iisan(
        t,
        &[
            "compare",
            "--runs",
            "runs/a",
            "runs/b",
            "--out",
            "cmp",
            "--no-breakdowns",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let page = std::fs::read_to_string(t.join("cmp/report.html")).unwrap();
    let doc = Html::parse_document(&page);
    assert_eq!(select(&doc, "figure.curve").len(), 2);
    assert!(
        select(&doc, "figure.breakdown").is_empty(),
        "--no-breakdowns"
    );
    for svg in ["time", "memory", "params", "tpme"] {
        assert!(t.join(format!("cmp/{svg}.svg")).is_file(), "{svg}.svg");
    }
    // an earlier report is replaced
    let o = iisan(
        t,
        &[
            "report",
            "--html",
            "cmp/report.html",
            "runs/a",
            "--no-breakdowns",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let again = std::fs::read_to_string(t.join("cmp/report.html")).unwrap();
    assert_eq!(
        select(&Html::parse_document(&again), "figure.curve").len(),
        1
    );
    // anything else is refused, untouched: a run's own file, a user's page
    let notes = t.join("notes.html");
    std::fs::write(&notes, "<html><body>mine</body></html>").unwrap();
    for target in ["runs/a/summary.json", "notes.html"] {
        let before = std::fs::read(t.join(target)).unwrap();
        let o = iisan(t, &["report", "--html", target, "runs/a", "runs/b"]);
        one_line_exit_2(&o, &[target, "is not an iisan report"]);
        assert_eq!(std::fs::read(t.join(target)).unwrap(), before);
    }
}
