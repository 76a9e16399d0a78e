//! The library API: what the `iisan` command line, the Python package and Rust programs call.
//!
//! - [`train`] a configuration into a run directory, or [`resume`] an interrupted one; both
//!   return the finished [`Run`];
//! - [`Run::open`] a run directory, then [`Run::recommend`], [`Run::user_embeddings`],
//!   [`Run::item_embeddings`], [`Run::add_items`] (new items without retraining) and
//!   [`Run::evaluate`];
//! - [`build_index`]: a run's ANN index for catalogues of millions of items;
//!   [`compact_items`] folds the items added since into its base;
//! - [`encode`] a dataset's items through the frozen towers into the hidden-state caches;
//! - [`write_html_report`]: finished runs side by side on one HTML page (feature `charts`);
//! - [`data`]: statistics, imports of the field's formats, the synthetic default.
//!
//! Nothing here prints: long tasks report to a [`Reporter`] (the command line draws bars, the
//! Python package calls back), which can also stop them ([`crate::error::Error::Interrupted`],
//! leaving a resumable run or cache). Compute-heavy calls run on an explicit thread pool of
//! the run's `train.threads` threads ([`on_compute_pool`]).
//!
//! ```no_run
//! use iisan::api::{self, Run, TrainOptions};
//! use iisan::Config;
//!
//! # fn main() -> iisan::Result<()> {
//! let cfg = Config::load(Some("configs/quickstart.toml".as_ref()), &[])?;
//! let run: Run = api::train(cfg, &TrainOptions::default())?;
//! let top = run.recommend(&[vec!["12", "7", "31"]], 10, true)?;
//! for s in &top[0] {
//!     println!("{} {:.4}", run.item_id(s.item).unwrap(), s.score);
//! }
//! # Ok(())
//! # }
//! ```

pub mod data;
mod encoding;
mod evaluation;
#[cfg(feature = "import")]
pub mod formats;
mod index;
#[cfg(feature = "charts")]
mod report;
mod run;
mod training;

pub use crate::catalogue::{AnnParams, CompactReport, SearchMode, Storage};
pub use crate::deploy::new_items::{NewItem, read_new_items};
pub use crate::deploy::synth_items::{SynthReport, synth_items};
pub use crate::eval::EvalGroup;
pub use crate::model::Scored;
pub use crate::progress::{EpochEnd, Progress, Reporter, Silent, Unit};
pub use crate::run::Summary;
pub use crate::run::finished::read_summary;
pub use encoding::{EncodeJob, encode};
pub use evaluation::{EvalOptions, Evaluation};
pub use index::{BuildReport, build_index, compact_items};
#[cfg(feature = "charts")]
pub use report::{ReportOptions, html_report, write_html_report};
pub use run::{AddedItems, Matrix, Run};
pub use training::{TrainOptions, resume, train};

use crate::error::{Error, Result};

/// Run `f` on a worker of an explicit compute thread pool of `threads` threads (0: one per
/// core), so the serial parts of a step and the parallel kernels share the same threads:
/// started from outside the pool, every parallel op would wake the pool while the calling
/// thread waited, and the pool's spinning workers would compete with the caller for the cores
/// (measured: 2 threads on 2 cores ran a training step slower than 1 thread).
pub fn on_compute_pool<T: Send>(threads: usize, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("cannot start the compute threads: {e}")))?;
    pool.install(f)
}
