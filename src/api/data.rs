//! Datasets: statistics after the paper's preprocessing, imports of the field's public formats
//! (Amazon Reviews 2023 / 2018, RecBole atomic files; docs/IMPORT.md) into IISAN's TSV
//! directory, the RecBole export, the synthetic default, user subsets and the cold-start split.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::data::import::amazon;
use crate::data::import::recbole;
use crate::data::import::{Imported, MANIFEST, Manifest, write_dataset};
use crate::data::output::check_out;
use crate::data::{Dataset, Stats};
use crate::error::{Error, Result};

pub use crate::data::DataOptions;
pub use crate::data::import::amazon::AmazonOptions;
pub use crate::data::import::recbole::RecboleOptions;
pub use crate::data::synth::{SynthConfig, Written};

pub use crate::data::cold::{ColdReport, split_cold};
pub use crate::data::import::amazon_lines::Edition;
pub use crate::data::import::recbole::{ExportReport, export as export_recbole};
pub use crate::data::subset::{SubsetReport, write_subset as subset};

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

/// What an import wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// `manifest.json`: sources with their SHA-256, counts per step, options.
    pub manifest: Manifest,
    /// Interactions kept.
    pub interactions: usize,
    /// Users kept.
    pub users: usize,
    /// Items kept.
    pub items: usize,
    /// Images copied.
    pub images: usize,
    /// Seconds the import took.
    pub seconds: f64,
}

fn report(data: &Imported, manifest: Manifest, t0: Instant) -> ImportReport {
    ImportReport {
        interactions: data.interactions(),
        users: data.users.len(),
        items: data.items.len(),
        images: data.images.len(),
        manifest,
        seconds: t0.elapsed().as_secs_f64(),
    }
}

/// Import Amazon reviews and metadata JSON lines (gzip or plain) of `o.edition` into the
/// dataset directory `out` (new, or an earlier import's: written beside and renamed).
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// use iisan::api::data::{self, AmazonOptions, Edition};
/// let o = AmazonOptions::new(Edition::Amazon2023);
/// let r = data::import_amazon(
///     "All_Beauty.jsonl.gz".as_ref(),
///     "meta_All_Beauty.jsonl.gz".as_ref(),
///     "data/beauty".as_ref(),
///     &o,
/// )?;
/// println!("{} users, {} items", r.users, r.items);
/// # Ok(())
/// # }
/// ```
pub fn import_amazon(
    reviews: &Path,
    meta: &Path,
    out: &Path,
    o: &AmazonOptions,
) -> Result<ImportReport> {
    let t0 = Instant::now();
    // refuse a foreign `out` before the read, not after it
    let mut inputs = vec![reviews, meta];
    inputs.extend(o.images.as_deref());
    check_out(out, MANIFEST, &inputs)?;
    let (data, manifest) = amazon::import(reviews, meta, o)?;
    let folders: Vec<&Path> = o.images.iter().map(|p| p.as_path()).collect();
    write_dataset(out, &data, &manifest, &folders)?;
    Ok(report(&data, manifest, t0))
}

/// Import RecBole atomic files (`.inter`, and `.item` for titles) into the dataset directory
/// `out`.
///
/// ```no_run
/// # fn main() -> iisan::Result<()> {
/// use iisan::api::data::{self, RecboleOptions};
/// let o = RecboleOptions {
///     title_field: "title".into(),
///     skip_bad_lines: false,
///     progress: Default::default(),
/// };
/// let r = data::import_recbole("ml-1m.inter".as_ref(), Some("ml-1m.item".as_ref()), "data/ml".as_ref(), &o)?;
/// println!("{} interactions", r.interactions);
/// # Ok(())
/// # }
/// ```
pub fn import_recbole(
    inter: &Path,
    item: Option<&Path>,
    out: &Path,
    o: &RecboleOptions,
) -> Result<ImportReport> {
    let t0 = Instant::now();
    let mut inputs = vec![inter];
    inputs.extend(item);
    check_out(out, MANIFEST, &inputs)?;
    let (data, manifest) = recbole::import(inter, item, o)?;
    write_dataset(out, &data, &manifest, &[])?;
    Ok(report(&data, manifest, t0))
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
