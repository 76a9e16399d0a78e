//! The field's public dataset formats in and out of IISAN's TSV directories (the `import`
//! feature): Amazon Reviews 2023 / 2018 and RecBole atomic files (docs/IMPORT.md), each import
//! written beside its output and renamed. Also reachable as [`super::data`]'s.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::data::import::amazon;
use crate::data::import::recbole;
use crate::data::import::{IMPORT, Imported, Manifest, write_dataset};
use crate::data::output::check_out;
use crate::error::Result;

pub use crate::data::import::amazon::AmazonOptions;
pub use crate::data::import::amazon_lines::Edition;
pub use crate::data::import::recbole::RecboleOptions;
pub use crate::data::import::recbole::{ExportReport, export as export_recbole};

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
    check_out(out, IMPORT, &inputs)?;
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
    check_out(out, IMPORT, &inputs)?;
    let (data, manifest) = recbole::import(inter, item, o)?;
    write_dataset(out, &data, &manifest, &[])?;
    Ok(report(&data, manifest, t0))
}
