//! Datasets in the field's public formats, read into IISAN's TSV format (`data import`) and
//! written out of it (`data export`): Amazon Reviews 2023 and 2018 ([`amazon`], their lines in
//! [`amazon_lines`]) and RecBole atomic files ([`recbole`]). Every import writes a
//! `manifest.json` beside the TSV files: the source files with their SHA-256, the counts before
//! and after each step, the options and the tool version; the output directory is written beside
//! and renamed, and an existing directory without a manifest is never replaced
//! ([`super::output`]). Inputs are read line by line ([`lines`]: gzip or plain, recognised by
//! content), so memory follows the distinct users and items and the interactions, not the file
//! size.

pub mod amazon;
pub mod amazon_lines;
pub mod line_bound;
pub mod lines;
pub mod recbole;

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde::Serialize;

use super::ids;
use super::output::{check_out, replace_with, scratch_beside};
use crate::error::{Error, Result};

/// The marker of an import's output directory.
pub const MANIFEST: &str = "manifest.json";

/// The command an import's output directory records (data::output).
pub const IMPORT: &str = "data import";

/// One source file of an import.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// As given on the command line.
    pub path: PathBuf,
    /// SHA-256 of its bytes (compressed bytes for a gzip file).
    pub sha256: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// One step of an import and what was left after it.
#[derive(Debug, Clone, Serialize)]
pub struct Count {
    /// What the step did.
    pub step: String,
    /// Interactions after it.
    pub interactions: usize,
    /// Users after it.
    pub users: usize,
    /// Items after it.
    pub items: usize,
}

/// `manifest.json` of an imported dataset.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The source format (`recbole`, ...).
    pub format: String,
    /// The source files.
    pub sources: Vec<Source>,
    /// The options the import ran with.
    pub options: serde_json::Value,
    /// Counts before and after each step, in order.
    pub counts: Vec<Count>,
    /// Lines left out by `--skip-bad-lines`, and other events worth a number.
    pub notes: serde_json::Value,
    /// `iisan <version>`.
    pub tool: String,
}

/// An imported dataset in IISAN's format.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    /// `(item id, title)`, in the order items.tsv lists them.
    pub items: Vec<(String, String)>,
    /// `(user id, indices into items, oldest first)`.
    pub users: Vec<(String, Vec<u32>)>,
    /// `(index into items, image file)`: copied (hard-linked where the file system allows) to
    /// `images/<item id>.<extension of the file>`.
    pub images: Vec<(u32, PathBuf)>,
}

impl Imported {
    /// The interactions (sum of the sequence lengths).
    pub fn interactions(&self) -> usize {
        self.users.iter().map(|(_, s)| s.len()).sum()
    }
}

/// Ids interned in order of first appearance (each key stored once; hashed with foldhash,
/// several times faster than the standard SipHash on these short ids).
#[derive(Debug, Default)]
pub struct Interner {
    index: HashMap<Rc<str>, u32, foldhash::fast::RandomState>,
    keys: Vec<Rc<str>>,
}

impl Interner {
    /// The id of `k`, a new one (the next integer) if unseen.
    pub fn id(&mut self, k: &str) -> u32 {
        if let Some(&i) = self.index.get(k) {
            return i;
        }
        let i = self.keys.len() as u32;
        let key: Rc<str> = Rc::from(k);
        self.index.insert(key.clone(), i);
        self.keys.push(key);
        i
    }

    /// The id of `k` if seen.
    pub fn get(&self, k: &str) -> Option<u32> {
        self.index.get(k).copied()
    }

    /// The key of id `i`.
    pub fn key(&self, i: u32) -> &str {
        &self.keys[i as usize]
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// No keys yet.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Write `rows` to `path` through a buffer.
fn write_lines(path: &Path, rows: impl Iterator<Item = String>) -> Result<()> {
    let f = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    for r in rows {
        w.write_all(r.as_bytes()).map_err(|e| Error::io(path, e))?;
    }
    w.into_inner()
        .map_err(|e| Error::io(path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::io(path, e))
}

/// Hard-link `src` to `dst`, or copy it where linking is refused (another file system); `dst`
/// is always a new file: an existing one (two ids naming one file) is an error, never
/// overwritten.
fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::io(dst, e));
        }
        Err(_) => {}
    }
    let mut from = std::fs::File::open(src).map_err(|e| Error::io(src, e))?;
    let mut to = (std::fs::OpenOptions::new().write(true).create_new(true))
        .open(dst)
        .map_err(|e| Error::io(dst, e))?;
    std::io::copy(&mut from, &mut to).map_err(|e| Error::io(dst, e))?;
    Ok(())
}

/// Write `data` and `manifest` as the dataset directory `out` (items.tsv, users.tsv, images/,
/// manifest.json), beside it first and renamed into place; `out` may not be or lie in a source
/// file or one of the `folders` the import read (an images folder).
pub fn write_dataset(
    out: &Path,
    data: &Imported,
    manifest: &Manifest,
    folders: &[&Path],
) -> Result<()> {
    let mut sources: Vec<&Path> = manifest.sources.iter().map(|s| s.path.as_path()).collect();
    sources.extend(folders);
    let existing = check_out(out, IMPORT, &sources)?;
    let tmp = scratch_beside(out)?;
    let items = data.items.iter().map(|(k, t)| format!("{k}\t{t}\n"));
    write_lines(&tmp.join("items.tsv"), items)?;
    let users = data.users.iter().map(|(u, seq)| {
        let keys: Vec<&str> = seq
            .iter()
            .map(|&i| data.items[i as usize].0.as_str())
            .collect();
        format!("{u}\t{}\n", keys.join(" "))
    });
    write_lines(&tmp.join("users.tsv"), users)?;
    if !data.images.is_empty() {
        let dir = tmp.join("images");
        std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for (i, src) in &data.images {
            // the id passed data::ids (no separator, not . or ..): the name stays in `dir`
            let ext = src.extension().unwrap_or_default();
            let ext = ext.to_string_lossy().to_ascii_lowercase();
            link_or_copy(
                src,
                &dir.join(format!("{}.{ext}", data.items[*i as usize].0)),
            )?;
        }
    }
    let json = serde_json::to_string_pretty(manifest).expect("serialisable") + "\n";
    let p = tmp.join(MANIFEST);
    std::fs::write(&p, json).map_err(|e| Error::io(&p, e))?;
    replace_with(tmp, out, existing, IMPORT)
}

/// An item or user id that cannot be one (data::ids: a path separator, a control character,
/// white space in an item id, ...), as an error at `path:line`.
pub fn check_field(path: &Path, line: usize, what: &str, v: &str, item: bool) -> Result<()> {
    // a user id may hold spaces in IISAN TSV, but an imported one is kept to the item rule's
    // white space too (sources separate their fields by it)
    let problem = if item {
        ids::item_id_problem(v)
    } else {
        let space = v
            .contains(char::is_whitespace)
            .then_some("holds white space");
        ids::user_id_problem(v).or(space)
    };
    match problem {
        Some(p) => Err(Error::line(
            path,
            line,
            format!("{what} {} {p}", ids::shown(v)),
        )),
        None => Ok(()),
    }
}

/// This tool's name and version, for manifests.
pub fn tool() -> String {
    format!("iisan {}", env!("CARGO_PKG_VERSION"))
}
