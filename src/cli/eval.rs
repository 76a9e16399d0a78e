//! `iisan eval RUN`: a finished run's best checkpoint through the evaluator on the test split,
//! as a report table, JSON, or (with `--cold-items`) split into warm and cold targets.

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use iisan::data::Split;
use iisan::data::cold::read_cold_items;
use iisan::error::{Error, Result};
use iisan::eval::{Evaluator, Mask, Metric, RankPair};
use iisan::train::finished::{FinishedRun, open_finished};

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
    /// Evaluate on this device (cpu, cuda, cuda:N) instead of the run's train.device.
    #[arg(long)]
    device: Option<iisan::nn::DeviceSpec>,
}

/// `iisan eval`.
pub(crate) fn eval(a: EvalArgs) -> Result<()> {
    let opened = open_finished(&a.run, a.device)?;
    let threads = opened.summary.efficiency.threads;
    super::train::on_compute_pool(threads, || {
        let ev = Evaluator {
            ks: a
                .ks
                .clone()
                .unwrap_or_else(|| opened.plan.evaluator.ks.clone()),
            ..opened.plan.evaluator.clone()
        };
        if ev.ks.contains(&0) {
            return Err(Error::Config("--ks: cut-offs must be positive".into()));
        }
        if a.cold_items.is_some() {
            return warm_and_cold(&a, &ev, &opened);
        }
        let test = ev.evaluate(&opened.model, &opened.data, Split::Test)?;
        if a.json {
            let out = match a.mask {
                Some(m) => serde_json::to_string_pretty(test.metrics.get(m)),
                None => serde_json::to_string_pretty(&test.metrics),
            };
            println!("{}", out.expect("serialisable"));
            return Ok(());
        }
        let mut summary = opened.summary.clone();
        summary.test = test.metrics;
        summary.evaluated = true;
        let masks = a.mask.map_or(Mask::ALL.to_vec(), |m| vec![m]);
        print!(
            "{}",
            iisan::report::summary_table(std::slice::from_ref(&summary), &ev.ks, &masks)
        );
        eprintln!("test evaluation took {:.2}s", test.seconds);
        Ok(())
    })
}

/// The test metrics of all users, of those whose target is warm and of those whose target is
/// cold (docs/COLD-START.md).
fn warm_and_cold(a: &EvalArgs, ev: &Evaluator, run: &FinishedRun) -> Result<()> {
    let path = a.cold_items.as_ref().expect("called with --cold-items");
    let cold = read_cold_items(path)?;
    let data = &run.data;
    let ranks = ev.ranks(&run.model, data, Split::Test)?;
    let is_cold: Vec<bool> = (0..data.num_users())
        .map(|u| cold.contains(&data.item_keys[data.target(u, Split::Test) as usize]))
        .collect();
    let group = |want: Option<bool>| -> Vec<RankPair> {
        ranks
            .iter()
            .zip(&is_cold)
            .filter(|(_, c)| want.is_none_or(|w| **c == w))
            .map(|(r, _)| *r)
            .collect()
    };
    let groups = [
        ("all", group(None)),
        ("warm", group(Some(false))),
        ("cold", group(Some(true))),
    ];
    if groups[2].1.is_empty() {
        return Err(Error::file(
            path,
            "no user's test target is among these items",
        ));
    }
    let masks = a.mask.map_or(Mask::ALL.to_vec(), |m| vec![m]);
    if a.json {
        let out: serde_json::Map<String, serde_json::Value> = groups
            .iter()
            .map(|(name, r)| {
                let m = ev.metrics(r);
                let v = json!({"users": r.len(), "history": m.get(Mask::History), "none": m.get(Mask::None)});
                (name.to_string(), v)
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serialisable")
        );
        return Ok(());
    }
    let k = ev.ks[0];
    println!("| targets | users | mask    | HR@{k:<3} | NDCG@{k:<3} | MRR    |");
    println!("|---------|-------|---------|--------|---------|--------|");
    for (name, r) in &groups {
        let m = ev.metrics(r);
        for &mask in &masks {
            let x = m.get(mask);
            println!(
                "| {name:<7} | {:>5} | {:<7} | {:.4} | {:.4}  | {:.4} |",
                r.len(),
                mask.name(),
                // + 0.0 prints a zero sum as 0.0000, not -0.0000
                x.get(Metric::Hr(k)) + 0.0,
                x.get(Metric::Ndcg(k)) + 0.0,
                x.get(Metric::Mrr) + 0.0
            );
        }
    }
    Ok(())
}
