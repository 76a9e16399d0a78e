//! `iisan report` and `iisan compare`: what finished runs' summaries are turned into.

use std::path::{Path, PathBuf};

use clap::Args;

use iisan::api::{ReportOptions, Summary, read_summary, write_html_report};
use iisan::efficiency::tpme::TpmeWeights;
use iisan::error::Result;
use iisan::eval::{Breakdown, Mask};
use iisan::report::compare::{compare, write_all};

/// What the HTML page (and the comparison) shows.
#[derive(Args)]
pub(crate) struct PageArgs {
    /// Masking convention of the comparison and the charts: history (the paper's) or none
    /// (the page's tables show both).
    #[arg(long, value_enum, default_value = "history")]
    mask: Mask,
    /// TPME weights of time, parameters and memory.
    #[arg(long, default_value = "0.45,0.1,0.45")]
    weights: String,
    /// Leave the breakdowns by popularity, history length and coldness out of the page (they
    /// rank every run's test users again, which needs its dataset and cache).
    #[arg(long)]
    no_breakdowns: bool,
}

impl PageArgs {
    fn options(&self) -> Result<ReportOptions> {
        Ok(ReportOptions {
            mask: self.mask,
            weights: TpmeWeights::parse(&self.weights)?,
            by: if self.no_breakdowns {
                Vec::new()
            } else {
                vec![Breakdown::Popularity, Breakdown::History, Breakdown::Cold]
            },
        })
    }
}

fn load_summaries(runs: &[PathBuf]) -> Result<Vec<Summary>> {
    runs.iter().map(|r| read_summary(r)).collect()
}

/// `iisan report`: the metrics table, or with `--html` the whole page.
pub(crate) fn report(
    runs: Vec<PathBuf>,
    ks: Vec<usize>,
    html: Option<PathBuf>,
    page: PageArgs,
) -> Result<()> {
    if let Some(out) = html {
        return write_page(&runs, &out, &page.options()?);
    }
    let summaries = load_summaries(&runs)?;
    print!(
        "{}",
        iisan::report::summary_table(&summaries, &ks, &Mask::ALL)
    );
    Ok(())
}

/// `iisan compare`: the tables and charts, and the page as `report.html`.
pub(crate) fn compare_runs(runs: Vec<PathBuf>, out: PathBuf, page: PageArgs) -> Result<()> {
    let o = page.options()?;
    let rows = compare(&load_summaries(&runs)?, o.mask, o.weights)?;
    print!("{}", write_all(&rows, o.mask, o.weights, &out)?);
    println!(
        "wrote {}/compare.{{md,csv,json}} and {{time,memory,params,tpme}}.svg",
        out.display()
    );
    write_page(&runs, &out.join("report.html"), &o)
}

fn write_page(runs: &[PathBuf], out: &Path, o: &ReportOptions) -> Result<()> {
    let reporter = super::progress::reporter(false);
    write_html_report(runs, out, o, &reporter)?;
    println!("wrote {}", out.display());
    Ok(())
}
