//! `iisan items add RUN --items NEW.tsv [--images DIR]`: [`iisan::Run::add_items`] (items the
//! run has never seen, embedded without retraining and appended to its item index).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use iisan::api::{Run, read_new_items};
use iisan::data::image::MissingImage;
use iisan::error::{Error, Result};

/// `iisan items` subcommands.
#[derive(Subcommand)]
pub(crate) enum ItemsCmd {
    /// Embed new items with a run's model and append them to its item index.
    Add(AddArgs),
}

/// `iisan items add` arguments.
#[derive(Args)]
pub(crate) struct AddArgs {
    /// The run directory.
    run: PathBuf,
    /// The new items: `ID<TAB>title` per line (the dataset items format).
    #[arg(long)]
    items: PathBuf,
    /// Folder with the new items' images, `<ID>.png|jpg|jpeg|webp` (for models that read
    /// images).
    #[arg(long)]
    images: Option<PathBuf>,
    /// An item without an image: error (default: the run's model.towers.missing_images), or
    /// embed a zero image.
    #[arg(long, value_enum)]
    missing_images: Option<MissingImage>,
}

/// `iisan items ...`.
pub(crate) fn items(cmd: ItemsCmd) -> Result<()> {
    match cmd {
        ItemsCmd::Add(a) => add(a),
    }
}

fn add(a: AddArgs) -> Result<()> {
    let items = read_new_items(&a.items, a.images.as_deref())?;
    let run = Run::open(&a.run)?;
    let added = run
        .add_items(&items, a.missing_images)
        .map_err(|e| match e {
            Error::Input(_) | Error::DuplicateItems { .. } => Error::file(&a.items, e.to_string()),
            e => e,
        })?;
    println!(
        "added {} items to {} in {:.2} s ({} method, towers: {}); the catalogue has {} items",
        added.added,
        a.run.display(),
        added.seconds,
        run.method().name(),
        added.towers.join(", "),
        added.total
    );
    Ok(())
}
