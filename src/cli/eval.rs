//! `iisan eval RUN`: [`iisan::Run::evaluate`] printed as a report table, JSON, or (with
//! `--cold-items` or `--by`) as groups of users.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use iisan::api::{EvalOptions, Evaluation, Run};
use iisan::error::Result;
use iisan::eval::{Breakdown, Mask, Metric};

/// `iisan eval` arguments.
#[derive(Args)]
pub(crate) struct EvalArgs {
    /// The run directory (config.toml, summary.json, best.safetensors).
    run: PathBuf,
    /// Show only this masking convention (default: both).
    #[arg(long, value_enum)]
    mask: Option<Mask>,
    /// Cut-offs K (default: the run's eval.ks).
    #[arg(long, value_delimiter = ',')]
    ks: Option<Vec<usize>>,
    /// Print the test metrics as JSON (the `test` object of summary.json) instead of the table.
    #[arg(long)]
    json: bool,
    /// Report users whose test target is one of these items (`cold_items.txt` of
    /// `iisan data split-cold`) apart from the others: rows all, warm, cold.
    #[arg(long)]
    cold_items: Option<PathBuf>,
    /// Also report the test users split by their target's training popularity (head, torso,
    /// tail), their history length (<=7, 8-10, 11+) or whether their target was trained on
    /// (warm, cold); docs/MODEL.md section 6.
    #[arg(long, value_enum)]
    by: Option<Breakdown>,
    /// Evaluate on this device (cpu, cuda, cuda:N) instead of the run's train.device.
    #[arg(long)]
    device: Option<iisan::nn::DeviceSpec>,
    /// `--exact`: the full ranking even when the run has an ANN index (without it, a run
    /// with an index is evaluated on the lists it serves).
    #[command(flatten)]
    ranking: super::Ranking,
}

/// `iisan eval`.
pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    let run = Run::open_with(&a.run, a.ranking.mode())?;
    let o = EvalOptions {
        ks: a.ks.clone(),
        cold_items: a.cold_items.clone(),
        by: a.by,
        device: a.device,
        exact: a.ranking.exact,
    };
    let ev = run.evaluate(&o)?;
    if ev.ann {
        eprintln!(
            "ranked by the ANN index: the metrics of the lists it serves (--exact for the full ranking)"
        );
    }
    let masks = a.mask.map_or(Mask::ALL.to_vec(), |m| vec![m]);
    if a.cold_items.is_some() || a.by.is_some() {
        print_groups(&ev, &masks, a.json);
        return Ok(());
    }
    let test = &ev.groups[0].metrics;
    if a.json {
        let out = match a.mask {
            Some(m) => serde_json::to_string_pretty(test.get(m)),
            None => serde_json::to_string_pretty(test),
        };
        println!("{}", out.expect("serialisable"));
        return Ok(());
    }
    let mut summary = run.summary().expect("evaluated runs are finished").clone();
    summary.test = test.clone();
    summary.evaluated = true;
    print!(
        "{}",
        iisan::report::summary_table(std::slice::from_ref(&summary), &ev.ks, &masks)
    );
    eprintln!("test evaluation took {:.2}s", ev.seconds);
    Ok(())
}

/// The metrics of all users, of those whose target is warm and of those whose target is cold
/// (docs/COLD-START.md), as JSON or a table.
fn print_groups(ev: &Evaluation, masks: &[Mask], json: bool) {
    if json {
        let out: serde_json::Map<String, serde_json::Value> = ev
            .groups
            .iter()
            .map(|g| {
                let m = &g.metrics;
                let mut v = json!({"users": g.users, "history": m.get(Mask::History), "none": m.get(Mask::None)});
                if let Some(n) = g.items {
                    v["items"] = n.into();
                }
                (g.name.clone(), v)
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialisable")
        );
        return;
    }
    let k = ev.ks[0];
    println!("| group   | users | items | mask    | HR@{k:<3} | NDCG@{k:<3} | MRR    |");
    println!("|---------|-------|-------|---------|--------|---------|--------|");
    for g in &ev.groups {
        let items = g.items.map_or("".to_string(), |n| n.to_string());
        for &mask in masks {
            let x = g.metrics.get(mask);
            println!(
                "| {:<7} | {:>5} | {:>5} | {:<7} | {:.4} | {:.4}  | {:.4} |",
                g.name,
                g.users,
                items,
                mask.name(),
                // + 0.0 prints a zero sum as 0.0000, not -0.0000
                x.get(Metric::Hr(k)) + 0.0,
                x.get(Metric::Ndcg(k)) + 0.0,
                x.get(Metric::Mrr) + 0.0
            );
        }
    }
}
