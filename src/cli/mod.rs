//! The subcommands of the `iisan` binary: argument types, one call into the library API
//! ([`iisan::api`]) each, and what is printed (progress bars in [`progress`]).

pub(crate) mod check_device;
pub(crate) mod data;
pub(crate) mod encode;
pub(crate) mod eval;
pub(crate) mod import;
pub(crate) mod index;
pub(crate) mod items;
pub(crate) mod prep;
pub(crate) mod progress;
pub(crate) mod recommend;
pub(crate) mod report;
pub(crate) mod serve;
pub(crate) mod train;

/// `--exact` and `--probes` as recommend, eval and serve take them.
#[derive(clap::Args)]
pub(crate) struct Ranking {
    /// Rank every item exactly, even when the run has an ANN index (`iisan index build`).
    #[arg(long)]
    pub exact: bool,
    /// Lists of the ANN index scanned per query, instead of the number it was built with:
    /// more find more of the exact top items, slower.
    #[arg(long, value_name = "N", conflicts_with = "exact")]
    pub probes: Option<usize>,
}

impl Ranking {
    /// The mode these options ask for.
    pub(crate) fn mode(&self) -> iisan::api::SearchMode {
        iisan::api::SearchMode::of(self.exact, self.probes)
    }
}
