//! `iisan report` and `iisan compare`: what finished runs' summaries are turned into.

use std::path::PathBuf;

use iisan::api::{Summary, read_summary};
use iisan::efficiency::tpme::TpmeWeights;
use iisan::error::Result;
use iisan::eval::Mask;
use iisan::report::compare::{compare, write_all};

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
