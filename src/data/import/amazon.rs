//! Amazon review datasets (Amazon Reviews 2023, or the paper-era 2018 files; field names in
//! [`super::amazon_lines`]) into IISAN's format. The steps, each counted in the manifest:
//!
//! 1. **read**: every review line (a malformed line or a missing field is an error at
//!    `file:line`, or counted with `--skip-bad-lines`); then the metadata lines of the items
//!    reviewed (metadata of items nobody reviewed is skipped unstored, so memory follows the
//!    reviews, not the metadata file; a second line for an item is counted and ignored).
//! 2. **with metadata**: reviews whose item has no metadata line are dropped and counted (or,
//!    with `--require-meta`, the first is an error at its `file:line`).
//! 3. **duplicates removed**: each user's reviews in time order, ties in file order; a later
//!    review of an item the user already reviewed is dropped (sequential recommendation counts
//!    one interaction per user and item).
//! 4. **min interactions**: users with fewer than `--min-interactions` reviews left are dropped
//!    (the paper's 5; items are not filtered).
//! 5. **max users** (with `--max-users N`): N of the remaining users drawn with `--seed` (the
//!    paper's 10,000-user samples), kept in file order.
//!
//! Users are written in order of their first review, items in order of their first review among
//! the interactions kept. Titles have runs of white space (tabs, line breaks) folded to one
//! space; an empty title is written empty and left to `data.options.missing_title`. With
//! `--images DIR`, each item's main image is looked up by its file name in DIR and linked (or
//! copied) to `images/<item id>.<ext>`; items without one are counted, never an error here.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde_json::json;

use super::amazon_lines::Edition;
use super::lines::{BadLines, LinesRead, map_lines};
use super::{Count, Imported, Interner, Manifest, check_field, tool};
use crate::data::image::IMAGE_EXTENSIONS;
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// Import options.
#[derive(Debug, Clone)]
pub struct AmazonOptions {
    /// The files' edition.
    pub edition: Edition,
    /// Folder of downloaded images, looked up by URL file name.
    pub images: Option<PathBuf>,
    /// Users with fewer interactions (after duplicates) are dropped.
    pub min_interactions: usize,
    /// Keep this many users, drawn with `seed`.
    pub max_users: Option<usize>,
    /// Seed of the user draw.
    pub seed: u64,
    /// Count and leave out malformed lines instead of stopping at the first.
    pub skip_bad_lines: bool,
    /// A review of an item without metadata is an error instead of a count.
    pub require_meta: bool,
    /// Where the bytes read are reported, and whether to stop.
    pub progress: Reporter,
}

impl AmazonOptions {
    /// The options of `iisan data import` for `edition`: users with at least 5 interactions,
    /// all of them, bad lines an error, reviews without metadata counted, no images.
    pub fn new(edition: Edition) -> AmazonOptions {
        AmazonOptions {
            edition,
            images: None,
            min_interactions: 5,
            max_users: None,
            seed: 42,
            skip_bad_lines: false,
            require_meta: false,
            progress: Reporter::silent(),
        }
    }
}

/// One review kept in memory: 24 bytes.
#[derive(Debug, Clone, Copy)]
struct Row {
    user: u32,
    item: u32,
    time: f64,
    line: u64,
}

/// What the metadata file says about a reviewed item.
#[derive(Debug, Clone, Default)]
struct ItemMeta {
    title: String,
    image: Option<String>,
}

/// The state of a read: interned ids, the reviews and the metadata found.
struct Read {
    users: Interner,
    items: Interner,
    rows: Vec<Row>,
    meta: Vec<Option<ItemMeta>>,
    reviews: LinesRead,
    meta_read: LinesRead,
    bad_reviews: usize,
    bad_meta: usize,
    meta_unreviewed: usize,
    meta_repeated: usize,
}

/// Fold runs of white space to one space and trim.
fn fold_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A review line parsed and checked on a worker: user, item, time.
fn parse_review(
    path: &Path,
    o: &AmazonOptions,
    n: u64,
    line: &[u8],
) -> Result<(String, String, f64)> {
    let r = o
        .edition
        .review(line)
        .map_err(|m| Error::line(path, n as usize, m))?;
    check_field(path, n as usize, "user id", &r.user, false)?;
    check_field(path, n as usize, "item id", &r.item, true)?;
    if !r.time.is_finite() {
        return Err(Error::line(path, n as usize, "timestamp is not finite"));
    }
    Ok((r.user.into_owned(), r.item.into_owned(), r.time))
}

/// A metadata line parsed on a worker: item, title (white space folded), main image file name.
fn parse_meta(path: &Path, o: &AmazonOptions, n: u64, line: &[u8]) -> Result<(String, ItemMeta)> {
    let m = o
        .edition
        .meta(line)
        .map_err(|m| Error::line(path, n as usize, m))?;
    let meta = ItemMeta {
        title: fold_spaces(&m.title),
        image: m.image,
    };
    Ok((m.item.into_owned(), meta))
}

type Reviews = (Interner, Interner, Vec<Row>, LinesRead, usize);

fn read_reviews(path: &Path, o: &AmazonOptions) -> Result<Reviews> {
    let (mut users, mut items) = (Interner::default(), Interner::default());
    let mut rows = Vec::new();
    let mut bad = BadLines::new(o.skip_bad_lines);
    let parse = |n, line: &[u8]| parse_review(path, o, n, line);
    let read = map_lines(path, "reviews", &o.progress, parse, |n, r| {
        if let Some((user, item, time)) = bad.handle(r)? {
            rows.push(Row {
                user: users.id(&user),
                item: items.id(&item),
                time,
                line: n,
            });
        }
        Ok(())
    })?;
    if rows.is_empty() {
        return Err(Error::file(path, "no reviews"));
    }
    Ok((users, items, rows, read, bad.count))
}

fn read(reviews: &Path, meta: &Path, o: &AmazonOptions) -> Result<Read> {
    let (users, items, rows, reviews_read, bad_reviews) = read_reviews(reviews, o)?;
    let mut found: Vec<Option<ItemMeta>> = vec![None; items.len()];
    let (mut unreviewed, mut repeated) = (0, 0);
    let mut bad = BadLines::new(o.skip_bad_lines);
    let parse = |n, line: &[u8]| parse_meta(meta, o, n, line);
    let meta_read = map_lines(meta, "metadata", &o.progress, parse, |_, m| {
        let Some((item, m)) = bad.handle(m)? else {
            return Ok(());
        };
        match items.get(&item) {
            None => unreviewed += 1,
            Some(i) if found[i as usize].is_some() => repeated += 1,
            Some(i) => found[i as usize] = Some(m),
        }
        Ok(())
    })?;
    Ok(Read {
        users,
        items,
        rows,
        meta: found,
        reviews: reviews_read,
        meta_read,
        bad_reviews,
        bad_meta: bad.count,
        meta_unreviewed: unreviewed,
        meta_repeated: repeated,
    })
}

/// The count after a step: interactions, distinct users, distinct items.
fn tally(step: String, rows: &[Row], users: usize, items: usize) -> Count {
    let (mut u, mut i) = (vec![false; users], vec![false; items]);
    for r in rows {
        u[r.user as usize] = true;
        i[r.item as usize] = true;
    }
    Count {
        step,
        interactions: rows.len(),
        users: u.iter().filter(|&&b| b).count(),
        items: i.iter().filter(|&&b| b).count(),
    }
}

/// Steps 2-5 on `r.rows` (sorted by user, time, line on the way), with their counts.
fn filter(r: &mut Read, reviews: &Path, meta: &Path, o: &AmazonOptions) -> Result<Vec<Count>> {
    let (nu, ni) = (r.users.len(), r.items.len());
    let mut counts = vec![tally("read".into(), &r.rows, nu, ni)];
    if o.require_meta
        && let Some(row) = r.rows.iter().find(|x| r.meta[x.item as usize].is_none())
    {
        return Err(Error::line(
            reviews,
            row.line as usize,
            format!(
                "item {:?} has no line in {} (without --require-meta such reviews are dropped and counted)",
                r.items.key(row.item),
                meta.display()
            ),
        ));
    }
    r.rows.retain(|x| r.meta[x.item as usize].is_some());
    counts.push(tally("with metadata".into(), &r.rows, nu, ni));
    // line numbers are unique, so an unstable sort gives the one order
    r.rows.sort_unstable_by(|a, b| {
        (a.user.cmp(&b.user))
            .then(a.time.total_cmp(&b.time))
            .then(a.line.cmp(&b.line))
    });
    // an item is a duplicate when the last user to have it is this one (rows are by user)
    let mut last_user = vec![u32::MAX; ni];
    r.rows
        .retain(|x| std::mem::replace(&mut last_user[x.item as usize], x.user) != x.user);
    drop(last_user);
    counts.push(tally("duplicates removed".into(), &r.rows, nu, ni));
    let mut per_user = vec![0usize; nu];
    for x in &r.rows {
        per_user[x.user as usize] += 1;
    }
    r.rows
        .retain(|x| per_user[x.user as usize] >= o.min_interactions);
    counts.push(tally(
        format!("users with >= {} interactions", o.min_interactions),
        &r.rows,
        nu,
        ni,
    ));
    if let Some(n) = o.max_users {
        let mut kept: Vec<u32> = (0..nu as u32)
            .filter(|&u| per_user[u as usize] >= o.min_interactions)
            .collect();
        if n < kept.len() {
            kept.shuffle(&mut StdRng::seed_from_u64(o.seed));
            let mut keep = vec![false; nu];
            for &u in &kept[..n] {
                keep[u as usize] = true;
            }
            r.rows.retain(|x| keep[x.user as usize]);
        }
        counts.push(tally(
            format!("at most {n} users drawn with seed {}", o.seed),
            &r.rows,
            nu,
            ni,
        ));
    }
    Ok(counts)
}

/// Image bookkeeping for the manifest.
#[derive(Debug, Default, serde::Serialize)]
struct ImageNotes {
    found: usize,
    no_main_image: usize,
    not_in_folder: usize,
    unsupported_extension: usize,
}

/// The image file of each kept item that has one in `dir`.
fn find_images(
    dir: &Path,
    items: &[(u32, &ItemMeta)],
    notes: &mut ImageNotes,
) -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    for (new, m) in items {
        let Some(name) = &m.image else {
            notes.no_main_image += 1;
            continue;
        };
        let p = dir.join(name);
        let ext = p
            .extension()
            .unwrap_or_default()
            .to_string_lossy()
            .to_lowercase();
        if !IMAGE_EXTENSIONS.contains(&ext.as_str()) {
            notes.unsupported_extension += 1;
        } else if p.is_file() {
            notes.found += 1;
            out.push((*new, p));
        } else {
            notes.not_in_folder += 1;
        }
    }
    out
}

/// The kept items (those of the kept rows) in order of their first kept line, and each
/// item's new index (`u32::MAX` for items not kept).
fn renumber(r: &Read) -> (Vec<u32>, Vec<u32>) {
    let mut first: Vec<Option<u64>> = vec![None; r.items.len()];
    for x in &r.rows {
        let f = &mut first[x.item as usize];
        *f = Some(f.map_or(x.line, |l| l.min(x.line)));
    }
    let mut order: Vec<u32> = (0..r.items.len() as u32)
        .filter(|&i| first[i as usize].is_some())
        .collect();
    order.sort_by_key(|&i| first[i as usize]);
    let mut new_id = vec![u32::MAX; r.items.len()];
    for (n, &i) in order.iter().enumerate() {
        new_id[i as usize] = n as u32;
    }
    (order, new_id)
}

/// The kept rows as IISAN's dataset (rows are sorted by user, then time and line).
fn assemble(r: &Read, o: &AmazonOptions, notes: &mut ImageNotes) -> Imported {
    let (order, new_id) = renumber(r);
    let mut users: Vec<(String, Vec<u32>)> = Vec::new();
    for x in &r.rows {
        let key = r.users.key(x.user);
        if users.last().is_none_or(|(u, _)| u != key) {
            users.push((key.to_string(), Vec::new()));
        }
        let seq = &mut users.last_mut().expect("pushed").1;
        seq.push(new_id[x.item as usize]);
    }
    let kept: Vec<(u32, &ItemMeta)> = order
        .iter()
        .enumerate()
        .map(|(n, &i)| (n as u32, r.meta[i as usize].as_ref().expect("joined")))
        .collect();
    Imported {
        items: kept
            .iter()
            .zip(&order)
            .map(|((_, m), &i)| (r.items.key(i).to_string(), m.title.clone()))
            .collect(),
        users,
        images: match &o.images {
            Some(dir) => find_images(dir, &kept, notes),
            None => Vec::new(),
        },
    }
}

/// Import `reviews` and `meta` (gzip or plain) with `o`.
pub fn import(reviews: &Path, meta: &Path, o: &AmazonOptions) -> Result<(Imported, Manifest)> {
    if o.min_interactions == 0 {
        return Err(Error::Config(
            "--min-interactions must be at least 1".into(),
        ));
    }
    if let Some(dir) = &o.images
        && !dir.is_dir()
    {
        return Err(Error::file(dir, "--images is not a folder"));
    }
    if o.max_users == Some(0) {
        return Err(Error::Config("--max-users must be at least 1".into()));
    }
    let mut r = read(reviews, meta, o)?;
    let counts = filter(&mut r, reviews, meta, o)?;
    if r.rows.is_empty() {
        let steps: Vec<String> = counts
            .iter()
            .map(|c| format!("{} {}", c.step, c.interactions))
            .collect();
        return Err(Error::file(
            reviews,
            format!("no interactions left ({})", steps.join(", ")),
        ));
    }
    let mut image_notes = ImageNotes::default();
    let data = assemble(&r, o, &mut image_notes);
    let untitled = data.items.iter().filter(|(_, t)| t.is_empty()).count();
    let manifest = Manifest {
        format: match o.edition {
            Edition::Amazon2023 => "amazon2023",
            Edition::Amazon2018 => "amazon2018",
        }
        .into(),
        sources: vec![r.reviews.source.clone(), r.meta_read.source.clone()],
        options: json!({"min_interactions": o.min_interactions, "max_users": o.max_users,
            "seed": o.seed, "skip_bad_lines": o.skip_bad_lines, "require_meta": o.require_meta,
            "images": o.images, "time_unit": o.edition.time_unit(),
            "order": "timestamp, ties in file order; later reviews of the same item dropped"}),
        counts,
        notes: json!({"review_lines": r.reviews.lines, "review_seconds": r.reviews.seconds,
            "meta_lines": r.meta_read.lines, "meta_seconds": r.meta_read.seconds,
            "bad_lines_skipped": {"reviews": r.bad_reviews, "meta": r.bad_meta},
            "meta_items_not_reviewed": r.meta_unreviewed, "meta_repeated_items": r.meta_repeated,
            "items_without_title": untitled,
            "images": if o.images.is_some() { json!(image_notes) } else { json!("not requested") }}),
        tool: tool(),
    };
    Ok((data, manifest))
}
