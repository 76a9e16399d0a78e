//! Datasets in the field's public formats, read into IISAN's TSV format (`data import`) and
//! written out of it (`data export`): RecBole atomic files ([`recbole`]). Every import writes a
//! `manifest.json` beside the TSV files: the source files with their SHA-256, the counts before
//! and after each step, the options and the tool version; the output directory is written beside
//! and renamed, and an existing directory without a manifest is never replaced
//! ([`super::output`]). Inputs are read line by line (gzip or plain, recognised by content), so
//! memory follows the interactions kept, not the file size.

pub mod recbole;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::output::{check_out, replace_with, scratch_beside};
use crate::error::{Error, Result};
use crate::provenance::hash_stream;

/// The marker of an import's output directory.
pub const MANIFEST: &str = "manifest.json";

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

impl Source {
    /// Hash `path` (read in 1 MiB blocks).
    pub fn of(path: &Path) -> Result<Source> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut h = Sha256::new();
        let bytes = hash_stream(&mut h, &mut f, path, &mut vec![0u8; 1 << 20])?;
        Ok(Source {
            path: path.to_path_buf(),
            sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
            bytes,
        })
    }
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

/// An imported dataset in IISAN's format: items in id order, each user's items oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Imported {
    /// `(item id, title)`.
    pub items: Vec<(String, String)>,
    /// `(user id, items oldest first)`.
    pub users: Vec<(String, Vec<String>)>,
}

/// The lines of `path`, gunzipped when the file starts with gzip's magic bytes.
pub fn open_lines(path: &Path) -> Result<Box<dyn BufRead>> {
    let mut f = BufReader::with_capacity(
        1 << 20,
        std::fs::File::open(path).map_err(|e| Error::io(path, e))?,
    );
    let gz = f
        .fill_buf()
        .map_err(|e| Error::io(path, e))?
        .starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(f),
        ))
    } else {
        Box::new(f)
    })
}

/// Write `data` and `manifest` as the dataset directory `out` (items.tsv, users.tsv,
/// manifest.json), beside it first and renamed into place; `sources` may not contain `out`.
pub fn write_dataset(out: &Path, data: &Imported, manifest: &Manifest) -> Result<()> {
    let sources: Vec<&Path> = manifest.sources.iter().map(|s| s.path.as_path()).collect();
    let existing = check_out(out, MANIFEST, &sources)?;
    let tmp = scratch_beside(out)?;
    let mut items = String::new();
    for (k, t) in &data.items {
        items.push_str(&format!("{k}\t{t}\n"));
    }
    let mut users = String::new();
    for (u, seq) in &data.users {
        users.push_str(&format!("{u}\t{}\n", seq.join(" ")));
    }
    let json = serde_json::to_string_pretty(manifest).expect("serialisable");
    for (name, text) in [("items.tsv", items), ("users.tsv", users), (MANIFEST, json)] {
        let p = tmp.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    replace_with(&tmp, out, existing)
}

/// A field value that IISAN's TSV format cannot hold (a tab or a line break; white space inside
/// an id), as an error at `path:line`.
pub fn check_field(path: &Path, line: usize, what: &str, v: &str, id: bool) -> Result<()> {
    let bad =
        v.contains(['\t', '\n', '\r']) || (id && (v.is_empty() || v.contains(char::is_whitespace)));
    if bad {
        return Err(Error::line(
            path,
            line,
            format!(
                "{what} {v:?} cannot be written as IISAN TSV (empty, or holds white space / tabs)"
            ),
        ));
    }
    Ok(())
}

/// This tool's name and version, for manifests.
pub fn tool() -> String {
    format!("iisan {}", env!("CARGO_PKG_VERSION"))
}
