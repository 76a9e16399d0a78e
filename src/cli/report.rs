//! `iisan report`, `iisan compare` and `iisan eval`: what finished runs are turned into.

use std::path::PathBuf;

use iisan::data::Split;
use iisan::efficiency::tpme::TpmeWeights;
use iisan::error::Result;
use iisan::eval::{Evaluator, Mask};
use iisan::report::compare::{compare, write_all};
use iisan::train::Summary;
use iisan::train::finished::{open_finished, read_summary};

fn load_summaries(runs: &[PathBuf]) -> Result<Vec<Summary>> {
    runs.iter().map(|r| read_summary(r)).collect()
}

/// `iisan report`.
pub(crate) fn report(runs: Vec<PathBuf>, ks: Vec<usize>) -> Result<()> {
    let summaries = load_summaries(&runs)?;
    print!(
        "{}",
        iisan::report::summary_table(&summaries, &ks, &Mask::ALL)
    );
    Ok(())
}

/// `iisan compare`.
pub(crate) fn compare_runs(
    runs: Vec<PathBuf>,
    mask: Mask,
    weights: String,
    out: PathBuf,
) -> Result<()> {
    let w = TpmeWeights::parse(&weights)?;
    let rows = compare(&load_summaries(&runs)?, mask, w)?;
    print!("{}", write_all(&rows, mask, w, &out)?);
    println!(
        "wrote {}/compare.{{md,csv,json}} and {{time,memory,params}}.svg",
        out.display()
    );
    Ok(())
}

/// `iisan eval RUN`: the run's best checkpoint through the evaluator on the test split, as a
/// report table (the run's own efficiency figures beside the fresh metrics).
pub(crate) fn eval(
    run: PathBuf,
    mask: Option<Mask>,
    ks: Option<Vec<usize>>,
    json: bool,
) -> Result<()> {
    let opened = open_finished(&run)?;
    let threads = opened.summary.efficiency.threads;
    super::train::on_compute_pool(threads, || {
        let ev = Evaluator {
            ks: ks.unwrap_or_else(|| opened.plan.evaluator.ks.clone()),
            ..opened.plan.evaluator.clone()
        };
        if ev.ks.contains(&0) {
            return Err(iisan::Error::Config(
                "--ks: cut-offs must be positive".into(),
            ));
        }
        let test = ev.evaluate(&opened.model, &opened.data, Split::Test)?;
        if json {
            let out = match mask {
                Some(m) => serde_json::to_string_pretty(test.metrics.get(m)),
                None => serde_json::to_string_pretty(&test.metrics),
            };
            println!("{}", out.expect("serialisable"));
            return Ok(());
        }
        let mut summary = opened.summary;
        summary.test = test.metrics;
        summary.evaluated = true;
        let masks = mask.map_or(Mask::ALL.to_vec(), |m| vec![m]);
        print!(
            "{}",
            iisan::report::summary_table(std::slice::from_ref(&summary), &ev.ks, &masks)
        );
        eprintln!("test evaluation took {:.2}s", test.seconds);
        Ok(())
    })
}
