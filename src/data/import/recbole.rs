//! RecBole atomic files (recbole.io, "Atomic Files"): tab-separated, a header of `name:type`
//! fields (`user_id:token`, `item_id:token`, `timestamp:float`, `title:token_seq`, ...).
//!
//! **Import** (`.inter`, optional `.item`): each user's interactions ordered by `timestamp`,
//! ties (and files without a timestamp) in file order; users in order of first appearance;
//! items in `.item` order (every row, used or not: the catalogue), then items that only occur in
//! `.inter`, with an empty title, in order of first appearance. Titles come from the
//! `--title-field` column; an empty or missing title is written empty and left to
//! `data.options.missing_title` when the dataset is loaded.
//!
//! **Export** (a dataset directory, preprocessed as `Dataset::load` does): `<name>.inter` with
//! `user_id:token`, `item_id:token`, `timestamp:float` (the interaction's 1-based position in
//! its user's sequence, so RecBole's time order is the sequence order) and `<name>.item` with
//! `item_id:token`, `title:token_seq`. Exporting an import of an export gives the same bytes.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use serde_json::json;

use super::lines::{BadLines, for_each_line, utf8};
use super::{Count, Imported, Interner, MANIFEST, Manifest, Source, check_field, tool};
use crate::data::output::{check_out, replace_with, scratch_beside};
use crate::data::{DataOptions, Dataset};
use crate::error::{Error, Result};
use crate::progress::Reporter;

/// Import options.
#[derive(Debug, Clone)]
pub struct RecboleOptions {
    /// The `.item` field holding the title.
    pub title_field: String,
    /// Count and leave out malformed lines instead of stopping at the first.
    pub skip_bad_lines: bool,
    /// Where the bytes read are reported, and whether to stop.
    pub progress: Reporter,
}

/// The columns of an atomic file's header.
struct Header {
    names: Vec<String>,
}

impl Header {
    fn parse(path: &Path, line: &str) -> Result<Header> {
        let mut names = Vec::new();
        for f in line.trim_start_matches('\u{feff}').split('\t') {
            let (name, ty) = f.trim().split_once(':').ok_or_else(|| {
                Error::line(
                    path,
                    1,
                    format!("header field {f:?} is not name:type (a RecBole atomic header)"),
                )
            })?;
            if name.is_empty() || ty.is_empty() {
                return Err(Error::line(
                    path,
                    1,
                    format!("header field {f:?} is not name:type"),
                ));
            }
            names.push(name.to_string());
        }
        Ok(Header { names })
    }

    fn col(&self, path: &Path, name: &str) -> Result<usize> {
        self.names.iter().position(|n| n == name).ok_or_else(|| {
            Error::line(
                path,
                1,
                format!("no {name} field in the header ({})", self.names.join(", ")),
            )
        })
    }
}

/// Call `each` with `(1-based line number, fields, header)` for every non-blank line after the
/// header of atomic file `path`; a line with another field count, or one `each` refuses, is an
/// error, or with `bad.skip` counted and left out. Returns the file with its hash.
fn for_records(
    path: &Path,
    progress: &Reporter,
    bad: &mut BadLines,
    mut each: impl FnMut(usize, &[&str], &Header) -> Result<()>,
) -> Result<Source> {
    let mut header: Option<Header> = None;
    let label = path.file_name().unwrap_or_default().to_string_lossy();
    let read = for_each_line(path, &label, progress, |n, bytes| {
        let n = n as usize;
        let line = utf8(path, n as u64, bytes);
        let Some(h) = &header else {
            header = Some(Header::parse(path, line?)?);
            return Ok(());
        };
        let r = line.and_then(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != h.names.len() {
                return Err(Error::line(
                    path,
                    n,
                    format!("{} fields, the header has {}", fields.len(), h.names.len()),
                ));
            }
            each(n, &fields, h)
        });
        bad.handle(r).map(|_| ())
    })?;
    header
        .map(|_| read.source)
        .ok_or_else(|| Error::file(path, "empty: no header line"))
}

/// Rows `(user, timestamp, line, item)` and titles as IISAN's dataset: each user's items by
/// time, ties in file order; users and items in their interned order.
fn assemble(
    mut rows: Vec<(u32, f64, usize, u32)>,
    users: &Interner,
    items: &Interner,
    mut titles: HashMap<u32, String>,
) -> Imported {
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut seqs: Vec<Vec<u32>> = vec![Vec::new(); users.len()];
    for &(u, _, _, i) in &rows {
        seqs[u as usize].push(i);
    }
    Imported {
        items: (0..items.len() as u32)
            .map(|i| {
                (
                    items.key(i).to_string(),
                    titles.remove(&i).unwrap_or_default(),
                )
            })
            .collect(),
        users: (0..users.len() as u32)
            .map(|u| users.key(u).to_string())
            .zip(seqs)
            .collect(),
        images: Vec::new(),
    }
}

/// Import `.inter` (and `.item`) files.
pub fn import(
    inter: &Path,
    item: Option<&Path>,
    o: &RecboleOptions,
) -> Result<(Imported, Manifest)> {
    let (mut users, mut items) = (Interner::default(), Interner::default());
    let mut titles: HashMap<u32, String> = HashMap::new();
    let mut bad = BadLines::new(o.skip_bad_lines);
    let mut sources = Vec::new();
    if let Some(path) = item {
        let item_file = for_records(path, &o.progress, &mut bad, |n, f, h| {
            let (ic, tc) = (h.col(path, "item_id")?, h.col(path, &o.title_field)?);
            check_field(path, n, "item_id", f[ic], true)?;
            let id = items.id(f[ic]);
            if titles.insert(id, f[tc].trim().to_string()).is_some() {
                return Err(Error::line(
                    path,
                    n,
                    format!("item {:?} listed twice", f[ic]),
                ));
            }
            Ok(())
        })?;
        sources.push(item_file);
    }
    let catalogue = items.len();
    // (user, timestamp, line, item)
    let mut rows: Vec<(u32, f64, usize, u32)> = Vec::new();
    let inter_file = for_records(inter, &o.progress, &mut bad, |n, f, h| {
        let (uc, ic) = (h.col(inter, "user_id")?, h.col(inter, "item_id")?);
        check_field(inter, n, "user_id", f[uc], false)?;
        check_field(inter, n, "item_id", f[ic], true)?;
        let ts = match h.names.iter().position(|c| c == "timestamp") {
            Some(tc) => f[tc]
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite())
                .ok_or_else(|| {
                    Error::line(inter, n, format!("timestamp {:?} is not a number", f[tc]))
                })?,
            None => 0.0,
        };
        rows.push((users.id(f[uc]), ts, n, items.id(f[ic])));
        Ok(())
    })?;
    if rows.is_empty() {
        return Err(Error::file(inter, "no interactions"));
    }
    let read = rows.len();
    let data = assemble(rows, &users, &items, titles);
    let untitled = data.items.iter().filter(|(_, t)| t.is_empty()).count();
    sources.insert(0, inter_file);
    let manifest = Manifest {
        format: "recbole".into(),
        sources,
        options: json!({"title_field": o.title_field, "skip_bad_lines": o.skip_bad_lines,
            "order": "timestamp, ties in file order"}),
        counts: vec![Count {
            step: "read".into(),
            interactions: read,
            users: data.users.len(),
            items: data.items.len(),
        }],
        notes: json!({"bad_lines_skipped": bad.count, "items_in_item_file": catalogue,
            "items_only_in_inter": data.items.len() - catalogue, "items_without_title": untitled}),
        tool: tool(),
    };
    Ok((data, manifest))
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// Interactions written.
    pub interactions: usize,
    /// Users written.
    pub users: usize,
    /// Items written.
    pub items: usize,
}

/// Export the dataset directory `dir`, preprocessed with `opts`, as `out/<name>.inter` and
/// `out/<name>.item` (`name`: the output directory's name, as RecBole expects).
pub fn export(dir: &Path, opts: &DataOptions, out: &Path) -> Result<ExportReport> {
    let data = Dataset::load(dir, opts)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::file(out, "not a directory name"))?;
    let existing = check_out(out, "data export", &[dir])?;
    let mut inter = String::from("user_id:token\titem_id:token\ttimestamp:float\n");
    for (u, seq) in data.user_keys.iter().zip(&data.sequences) {
        for (pos, &i) in seq.iter().enumerate() {
            inter.push_str(&format!(
                "{u}\t{}\t{}\n",
                data.item_keys[i as usize],
                pos + 1
            ));
        }
    }
    let mut item = String::from("item_id:token\ttitle:token_seq\n");
    for (k, t) in data.item_keys.iter().zip(&data.titles).skip(1) {
        item.push_str(&format!("{k}\t{t}\n"));
    }
    let manifest = json!({"format": "recbole-export", "source": dir.display().to_string(),
        "options": opts, "fingerprint": data.fingerprint, "tool": tool(),
        "timestamp": "1-based position in the user's sequence"});
    let tmp = scratch_beside(out)?;
    for (file, text) in [
        (format!("{name}.inter"), inter),
        (format!("{name}.item"), item),
        (
            MANIFEST.to_string(),
            serde_json::to_string_pretty(&manifest).expect("json"),
        ),
    ] {
        let p = tmp.join(file);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    replace_with(tmp, out, existing, "data export")?;
    Ok(ExportReport {
        interactions: data.num_interactions(),
        users: data.num_users(),
        items: data.num_items(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> RecboleOptions {
        RecboleOptions {
            title_field: "title".into(),
            skip_bad_lines: false,
            progress: Reporter::silent(),
        }
    }

    /// Hand-derived: u1 has (b, t=5), (a, t=3), (c, t=5) in file order -> a (3), then b and c
    /// tied at 5 in file order; u2 first appears second. Items: .item order d, a, b (d is
    /// nobody's), then c from .inter only (no title).
    #[test]
    fn orders_by_time_with_ties_in_file_order_and_keeps_the_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let inter = dir.path().join("x.inter");
        let item = dir.path().join("x.item");
        std::fs::write(
            &inter,
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             u1\tb\t5\t5\nu2\ta\t4\t1\nu1\ta\t3\t3\n\nu1\tc\t1\t5\n",
        )
        .unwrap();
        std::fs::write(
            &item,
            "item_id:token\ttitle:token_seq\nd\tDee\na\tAy\nb\tBee bee\n",
        )
        .unwrap();
        let (d, m) = import(&inter, Some(&item), &opts()).unwrap();
        // item indices: d 0, a 1, b 2, c 3
        assert_eq!(
            d.users,
            [
                ("u1".to_string(), vec![1, 2, 3]),
                ("u2".to_string(), vec![1])
            ]
        );
        let items: Vec<(&str, &str)> = d
            .items
            .iter()
            .map(|(k, t)| (k.as_str(), t.as_str()))
            .collect();
        assert_eq!(
            items,
            [("d", "Dee"), ("a", "Ay"), ("b", "Bee bee"), ("c", "")]
        );
        assert_eq!(m.counts[0].interactions, 4);
        assert_eq!(m.notes["items_only_in_inter"], 1);
        assert_eq!(m.notes["items_without_title"], 1);
    }

    #[test]
    fn bad_lines_are_named_or_counted() {
        let dir = tempfile::tempdir().unwrap();
        let inter = dir.path().join("x.inter");
        std::fs::write(
            &inter,
            "user_id:token\titem_id:token\ttimestamp:float\nu1\ta\t1\nu1\tb\nu1\tc\tsoon\n",
        )
        .unwrap();
        let e = import(&inter, None, &opts()).unwrap_err().to_string();
        assert!(
            e.contains(":3") && e.contains("2 fields, the header has 3"),
            "{e}"
        );
        let skip = RecboleOptions {
            skip_bad_lines: true,
            ..opts()
        };
        let (d, m) = import(&inter, None, &skip).unwrap();
        assert_eq!(d.users[0].1, [0], "only item a");
        assert_eq!(m.notes["bad_lines_skipped"], 2);
        std::fs::write(&inter, "user:token\titem_id:token\nu\ta\n").unwrap();
        let e = import(&inter, None, &opts()).unwrap_err().to_string();
        assert!(e.contains("no user_id field"), "{e}");
        std::fs::write(&inter, "user_id\titem_id\nu\ta\n").unwrap();
        let e = import(&inter, None, &opts()).unwrap_err().to_string();
        assert!(e.contains(":1") && e.contains("not name:type"), "{e}");
    }
}
