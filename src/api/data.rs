//! Datasets: statistics after the paper's preprocessing, imports of the field's public formats
//! (Amazon Reviews 2023 / 2018, RecBole atomic files; docs/IMPORT.md) into IISAN's TSV
//! directory and the RecBole export (with the `import` feature, [`super::formats`]), the
//! synthetic default, user subsets and the cold-start split.

use std::path::Path;

use serde::Serialize;

use crate::data::{Dataset, Stats};
use crate::error::{Error, Result};

#[cfg(feature = "import")]
pub use super::formats::{
    AmazonOptions, Edition, ExportReport, ImportReport, RecboleOptions, export_recbole,
    import_amazon, import_recbole,
};
pub use crate::data::DataOptions;
pub use crate::data::cold::{ColdReport, split_cold};
pub use crate::data::subset::{SubsetReport, write_subset as subset};
pub use crate::data::synth::{SynthConfig, Written};

/// A dataset's statistics after preprocessing, with its fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataStats {
    /// Users, items, interactions, mean length, repeated targets.
    #[serde(flatten)]
    pub stats: Stats,
    /// The fingerprint runs and caches are keyed on.
    pub fingerprint: String,
}

/// The statistics of the dataset directory `dir` (items.tsv, users.tsv) under `opts`.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// let s = iisan::api::data::stats("data/synthetic".as_ref(), &Default::default())?;
/// println!("{} users, {} items", s.stats.users, s.stats.items);
/// # Ok(())
/// # }
/// ```
pub fn stats(dir: &Path, opts: &DataOptions) -> Result<DataStats> {
    let data = Dataset::load(dir, opts)?;
    Ok(DataStats {
        stats: data.stats(),
        fingerprint: data.fingerprint.clone(),
    })
}

/// [`stats`] of an items file and a users file.
pub fn stats_of_files(items: &Path, users: &Path, opts: &DataOptions) -> Result<DataStats> {
    let data = Dataset::from_files(items, users, opts)?;
    Ok(DataStats {
        stats: data.stats(),
        fingerprint: data.fingerprint.clone(),
    })
}

/// Write the embedded synthetic multimodal dataset of `cfg` to `out`; with `force` a
/// different synthetic dataset there is replaced.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// let cfg = iisan::api::data::SynthConfig { users: 500, ..Default::default() };
/// iisan::api::data::synth(&cfg, "data/small".as_ref(), false)?;
/// # Ok(())
/// # }
/// ```
pub fn synth(cfg: &SynthConfig, out: &Path, force: bool) -> Result<Written> {
    if cfg.users == 0 || cfg.items < 2 || cfg.image_size < 8 {
        return Err(Error::Config(
            "synth needs --users >= 1, --items >= 2, --image-size >= 8".into(),
        ));
    }
    crate::data::synth::write(cfg, out, force)
}
