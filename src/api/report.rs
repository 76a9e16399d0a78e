//! The HTML report of finished runs (docs/REPORT.md): each run's records read, its test
//! metrics broken down (one ranking of its test users per run, on the compute pool), and the
//! page written beside its destination and renamed into place, replacing only an earlier report.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::on_compute_pool;
use crate::atomic::{read_bounded, write_text};
use crate::efficiency::tpme::TpmeWeights;
use crate::error::{Error, Result};
use crate::eval::{Breakdown, EvalGroup, Mask};
use crate::progress::{Reporter, Unit};
use crate::report::html::render;
use crate::report::page::{MARK_WITHIN, is_report};
use crate::report::view::{PageOptions, RunView};
use crate::run::finished::{open_finished, read_epochs, read_summary};

/// What the report shows.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The mask of the charts and the efficiency table (the tables show both).
    pub mask: Mask,
    /// TPME weights of time, parameters and memory.
    pub weights: TpmeWeights,
    /// The breakdowns of the test metrics (empty: none, and no run's data is read).
    pub by: Vec<Breakdown>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            mask: Mask::History,
            weights: TpmeWeights::default(),
            by: vec![Breakdown::Popularity, Breakdown::History, Breakdown::Cold],
        }
    }
}

/// The largest `config.toml` read.
const MAX_CONFIG: u64 = 1 << 20;

/// One run's records; its breakdowns where its dataset and model open (else why not, shown on
/// the page and in a note to `progress`).
fn view(dir: &Path, o: &ReportOptions, progress: &Reporter) -> Result<RunView> {
    let summary = read_summary(dir)?;
    let epochs = read_epochs(dir)?;
    let config = read_bounded(&dir.join("config.toml"), MAX_CONFIG)?;
    let breakdowns = if o.by.is_empty() {
        Ok(Vec::new())
    } else if !summary.evaluated {
        Err("the run skipped evaluation (eval.skip): it has no best checkpoint to rank with".into())
    } else {
        broken_down(dir, &o.by).map_err(|e| {
            progress.note(&format!("{}: not broken down: {e}", dir.display()));
            e.to_string()
        })
    };
    Ok(RunView {
        dir: dir.to_path_buf(),
        summary,
        epochs,
        config,
        breakdowns,
    })
}

/// The test metrics of run `dir` by each of `by`: its dataset and best model opened as
/// `iisan eval` opens them (not its item index, which ranking does not read), ranked once on
/// a pool of the threads it trained with.
fn broken_down(dir: &Path, by: &[Breakdown]) -> Result<Vec<(Breakdown, Vec<EvalGroup>)>> {
    let run = open_finished(dir, None)?;
    on_compute_pool(run.summary.efficiency.threads, || {
        super::evaluation::breakdowns(&run, by)
    })
}

/// The report of the finished runs `runs` as one self-contained HTML page.
pub fn html_report(runs: &[PathBuf], o: &ReportOptions, progress: &Reporter) -> Result<String> {
    if runs.is_empty() {
        return Err(Error::Config("a report needs at least one run".into()));
    }
    let task = progress.task(
        "reading and evaluating runs",
        Unit::Steps,
        runs.len() as u64,
        0,
    );
    let mut views = Vec::with_capacity(runs.len());
    for dir in runs {
        progress.check(|| format!("report stopped before {}", dir.display()))?;
        task.message(&dir.display().to_string());
        views.push(view(dir, o, progress)?);
        task.advance(1);
    }
    task.finish();
    render(
        &views,
        &PageOptions {
            mask: o.mask,
            weights: o.weights,
        },
    )
}

/// Write the report of `runs` to `out`: beside it, then renamed into place. An existing `out`
/// is replaced only when it is an earlier report (any other file is refused, untouched).
pub fn write_html_report(
    runs: &[PathBuf],
    out: &Path,
    o: &ReportOptions,
    progress: &Reporter,
) -> Result<()> {
    check_destination(out)?;
    let page = html_report(runs, o, progress)?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    write_text(out, &page)
}

/// Refuse an `out` that exists and is not a report (a directory, a run's file, a user's page).
fn check_destination(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    // the mark is near the top: only the head is read, whatever the file's size
    let mut head = Vec::with_capacity(MARK_WITHIN);
    let read = out.is_file()
        && std::fs::File::open(out)
            .and_then(|f| f.take(MARK_WITHIN as u64).read_to_end(&mut head))
            .is_ok();
    if read && is_report(&head) {
        Ok(())
    } else {
        Err(Error::file(
            out,
            "exists and is not an iisan report: choose another file (it is left as it is)",
        ))
    }
}
