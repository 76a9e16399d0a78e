//! `iisan data import FORMAT` and `iisan data export FORMAT`: the field's public dataset formats
//! into and out of IISAN's TSV directories (`data::import`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;

use super::data::PrepArgs;
use iisan::data::import::recbole::{self, RecboleOptions};
use iisan::data::import::write_dataset;
use iisan::error::Result;

/// `iisan data import` formats.
#[derive(Subcommand)]
pub(crate) enum ImportCmd {
    /// RecBole atomic files: `.inter` (user_id, item_id, optional timestamp) and an optional
    /// `.item` (item_id and a title field); gzip or plain.
    Recbole {
        /// The interactions file (`X.inter`).
        #[arg(long)]
        inter: PathBuf,
        /// The items file (`X.item`), for titles.
        #[arg(long)]
        item: Option<PathBuf>,
        /// The `.item` field holding the title.
        #[arg(long, default_value = "title")]
        title_field: String,
        /// Count and leave out malformed lines instead of stopping at the first.
        #[arg(long)]
        skip_bad_lines: bool,
        /// Output dataset directory (new, or an earlier import's).
        #[arg(long)]
        out: PathBuf,
    },
}

/// `iisan data export` formats.
#[derive(Subcommand)]
pub(crate) enum ExportCmd {
    /// RecBole atomic files `OUT/<name>.inter` and `OUT/<name>.item` of the preprocessed
    /// dataset (the sequences IISAN trains and evaluates on; timestamps = positions).
    Recbole {
        /// Dataset directory (items.tsv, users.tsv).
        #[arg(long)]
        dataset: PathBuf,
        #[command(flatten)]
        prep: PrepArgs,
        /// Output directory; its name is the RecBole dataset name.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `iisan data import`.
pub(crate) fn import(cmd: ImportCmd) -> Result<()> {
    let t0 = Instant::now();
    let ImportCmd::Recbole {
        inter,
        item,
        title_field,
        skip_bad_lines,
        out,
    } = cmd;
    let o = RecboleOptions {
        title_field,
        skip_bad_lines,
    };
    let (data, manifest) = recbole::import(&inter, item.as_deref(), &o)?;
    write_dataset(&out, &data, &manifest)?;
    println!(
        "imported {} interactions of {} users over {} items into {} in {:.1} s ({} bad lines skipped)",
        manifest.counts[0].interactions,
        data.users.len(),
        data.items.len(),
        out.display(),
        t0.elapsed().as_secs_f64(),
        manifest.notes["bad_lines_skipped"]
    );
    Ok(())
}

/// `iisan data export`.
pub(crate) fn export(cmd: ExportCmd) -> Result<()> {
    let ExportCmd::Recbole { dataset, prep, out } = cmd;
    let r = recbole::export(&dataset, &prep.options(), &out)?;
    println!(
        "exported {} interactions of {} users over {} items to {}",
        r.interactions,
        r.users,
        r.items,
        out.display()
    );
    Ok(())
}
