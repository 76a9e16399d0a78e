//! `iisan items add RUN --items NEW.tsv [--images DIR]`: embed items the run has never seen
//! (no retraining) and append them to its item index, so `recommend` ranks them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use iisan::data::image::{MissingImage, find_image_in};
use iisan::data::tsv::read_items;
use iisan::deploy::new_items::{ItemEmbedder, NewItem, add_items};
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
    let raw = read_items(&a.items)?;
    let mut items = Vec::with_capacity(raw.items.len());
    for r in &raw.items {
        let image = match a.images.as_deref().and_then(|d| find_image_in(d, &r.key)) {
            Some(p) => Some(std::fs::read(&p).map_err(|e| Error::io(&p, e))?),
            None => None,
        };
        items.push(NewItem {
            key: r.key.clone(),
            title: r.title.clone(),
            image,
        });
    }
    let mut embedder = ItemEmbedder::open(&a.run)?;
    if let Some(m) = a.missing_images {
        embedder.missing_images = m;
    }
    let t0 = std::time::Instant::now();
    let index = add_items(&a.run, &embedder, &items).map_err(|e| match e {
        Error::Input(msg) => Error::file(&a.items, msg),
        e => e,
    })?;
    let towers: Vec<String> = embedder
        .towers()
        .iter()
        .map(|t| format!("{} {}", t.modality, t.path.display()))
        .collect();
    println!(
        "added {} items to {} in {:.2} s ({} method, towers: {}); the catalogue has {} items",
        items.len(),
        a.run.display(),
        t0.elapsed().as_secs_f64(),
        embedder.method().name(),
        towers.join(", "),
        index.keys.len() - 1
    );
    Ok(())
}
