//! `iisan data import FORMAT` and `iisan data export FORMAT`: the field's public dataset formats
//! into and out of IISAN's TSV directories (`data::import`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::prep::PrepArgs;
use iisan::api::data::{self, AmazonOptions, Edition, ImportReport, RecboleOptions};
use iisan::error::Result;

/// The options of both Amazon editions.
#[derive(Args)]
pub(crate) struct AmazonArgs {
    /// The reviews file (`Cat.jsonl`, gzip or plain).
    #[arg(long)]
    reviews: PathBuf,
    /// The metadata file (`meta_Cat.jsonl`, gzip or plain).
    #[arg(long)]
    meta: PathBuf,
    /// Folder of downloaded images, looked up by the main image URL's file name.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Users with fewer interactions (after duplicates are removed) are dropped.
    #[arg(long, default_value_t = 5)]
    min_interactions: usize,
    /// Keep this many users, drawn with --seed (the paper's samples: 10000).
    #[arg(long)]
    max_users: Option<usize>,
    /// Seed of the --max-users draw.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Count and leave out malformed lines instead of stopping at the first.
    #[arg(long)]
    skip_bad_lines: bool,
    /// A review of an item that has no metadata line is an error instead of a count.
    #[arg(long)]
    require_meta: bool,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Output dataset directory (new, or an earlier import's).
    #[arg(long)]
    out: PathBuf,
}

/// `iisan data import` formats.
#[derive(Subcommand)]
pub(crate) enum ImportCmd {
    /// Amazon Reviews 2023 (McAuley Lab) JSON lines: reviews (`user_id`, `parent_asin`,
    /// `timestamp` in ms) joined with metadata (`parent_asin`, `title`, `images`).
    Amazon2023(AmazonArgs),
    /// Amazon 2018 JSON lines: reviews (`reviewerID`, `asin`, `unixReviewTime`) joined with
    /// metadata (`asin`, `title`, `imageURLHighRes`).
    Amazon2018(AmazonArgs),
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
        /// No progress bars.
        #[arg(long)]
        quiet: bool,
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
    let (r, out) = match cmd {
        ImportCmd::Amazon2023(a) => import_amazon(Edition::Amazon2023, a)?,
        ImportCmd::Amazon2018(a) => import_amazon(Edition::Amazon2018, a)?,
        ImportCmd::Recbole {
            inter,
            item,
            title_field,
            skip_bad_lines,
            quiet,
            out,
        } => {
            let o = RecboleOptions {
                title_field,
                skip_bad_lines,
                progress: super::progress::reporter(quiet),
            };
            (
                data::import_recbole(&inter, item.as_deref(), &out, &o)?,
                out,
            )
        }
    };
    for c in &r.manifest.counts {
        println!(
            "{:>40}: {} interactions, {} users, {} items",
            c.step, c.interactions, c.users, c.items
        );
    }
    println!(
        "imported {} interactions of {} users over {} items ({} images) into {} in {:.1} s; bad lines skipped: {}",
        r.interactions,
        r.users,
        r.items,
        r.images,
        out.display(),
        r.seconds,
        r.manifest.notes["bad_lines_skipped"]
    );
    Ok(())
}

fn import_amazon(edition: Edition, a: AmazonArgs) -> Result<(ImportReport, PathBuf)> {
    let o = AmazonOptions {
        edition,
        images: a.images,
        min_interactions: a.min_interactions,
        max_users: a.max_users,
        seed: a.seed,
        skip_bad_lines: a.skip_bad_lines,
        require_meta: a.require_meta,
        progress: super::progress::reporter(a.quiet),
    };
    let r = data::import_amazon(&a.reviews, &a.meta, &a.out, &o)?;
    Ok((r, a.out))
}

/// `iisan data export`.
pub(crate) fn export(cmd: ExportCmd) -> Result<()> {
    let ExportCmd::Recbole { dataset, prep, out } = cmd;
    let r = data::export_recbole(&dataset, &prep.options(), &out)?;
    println!(
        "exported {} interactions of {} users over {} items to {}",
        r.interactions,
        r.users,
        r.items,
        out.display()
    );
    Ok(())
}
