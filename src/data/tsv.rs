//! IISAN's raw TSV format (docs/MODEL.md section 6).
//!
//! * items file: one item per line, `ID<TAB>title` (the title may be empty; whether that is
//!   allowed is decided later, by [`super::split`]).
//! * users file: one user per line, `user<TAB>ID ID ID ...`, interactions in chronological order.
//!
//! Blank lines are skipped. A line without a tab, an empty id, a duplicate item id, or a file
//! with no records is an error naming the file and the 1-based line number.

use std::collections::HashMap;
use std::path::Path;

use super::ids;
use crate::error::{Error, Result};

/// One raw item line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawItem {
    /// The item's external id (ASIN for Amazon data).
    pub key: String,
    /// The item's title without surrounding white space, otherwise verbatim (HTML entities are
    /// left as they are, as in the paper's data).
    pub title: String,
    /// 1-based line number in the items file.
    pub line: usize,
}

/// One raw user line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawUser {
    /// The user's external id.
    pub key: String,
    /// The user's interactions, oldest first, as external item ids.
    pub items: Vec<String>,
    /// 1-based line number in the users file.
    pub line: usize,
}

/// The raw catalog: items in file order plus an index from key to position.
#[derive(Debug, Clone, Default)]
pub struct RawItems {
    /// Items in file order.
    pub items: Vec<RawItem>,
    /// Position of each key in `items`.
    pub index: HashMap<String, usize>,
}

/// Read `path` as UTF-8 text without a leading byte-order mark (editors on Windows write one);
/// invalid bytes are an error naming the line.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        Error::line(path, line, "not valid UTF-8")
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Split a line at its first tab; `None` if there is none.
fn split_tab(line: &str) -> Option<(&str, &str)> {
    line.split_once('\t')
}

/// Parse an items file held in memory; `path` only names it in errors.
pub fn parse_items(path: &Path, text: &str) -> Result<RawItems> {
    let mut out = RawItems::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let (key, title) = split_tab(raw)
            .ok_or_else(|| Error::line(path, line, "expected `ID<TAB>title`, found no tab"))?;
        let key = key.trim();
        if let Some(p) = ids::item_id_problem(key) {
            let msg = format!("item id {} {p}", ids::shown(key));
            return Err(Error::line(path, line, msg));
        }
        if let Some(&prev) = out.index.get(key) {
            return Err(Error::line(
                path,
                line,
                format!(
                    "duplicate item id {key:?} (first on line {})",
                    out.items[prev].line
                ),
            ));
        }
        out.index.insert(key.to_string(), out.items.len());
        out.items.push(RawItem {
            key: key.to_string(),
            title: title.trim().to_string(),
            line,
        });
    }
    if out.items.is_empty() {
        return Err(Error::file(path, "no items (empty file)"));
    }
    Ok(out)
}

/// Parse a users file held in memory; `path` only names it in errors.
pub fn parse_users(path: &Path, text: &str) -> Result<Vec<RawUser>> {
    let mut out = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let (key, seq) = split_tab(raw).ok_or_else(|| {
            Error::line(
                path,
                line,
                "expected `user<TAB>item item ...`, found no tab",
            )
        })?;
        let key = key.trim();
        if let Some(p) = ids::user_id_problem(key) {
            let msg = format!("user id {} {p}", ids::shown(key));
            return Err(Error::line(path, line, msg));
        }
        if let Some(first) = seen.insert(key.to_string(), line) {
            return Err(Error::line(
                path,
                line,
                format!("user {key:?} again (first on line {first}): one line per user"),
            ));
        }
        let items: Vec<String> = seq.split_whitespace().map(str::to_string).collect();
        if items.is_empty() {
            return Err(Error::line(
                path,
                line,
                format!("user {key:?} has no items"),
            ));
        }
        out.push(RawUser {
            key: key.to_string(),
            items,
            line,
        });
    }
    if out.is_empty() {
        return Err(Error::file(path, "no users (empty file)"));
    }
    Ok(out)
}

/// Read and parse an items file.
pub fn read_items(path: &Path) -> Result<RawItems> {
    parse_items(path, &read_text(path)?)
}

/// Read and parse a users file.
pub fn read_users(path: &Path) -> Result<Vec<RawUser>> {
    parse_users(path, &read_text(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("x.tsv")
    }

    #[test]
    fn items_parse_keys_titles_and_lines() {
        let r = parse_items(p(), "A\tfirst title\n\nB\t\nC\tthird\r\n").unwrap();
        let keys: Vec<_> = r.items.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["A", "B", "C"]);
        assert_eq!(r.items[1].title, "");
        assert_eq!(r.items[2].title, "third");
        assert_eq!(r.items[2].line, 4);
        assert_eq!(r.index["C"], 2);
    }

    #[test]
    fn items_errors_name_the_line() {
        let e = parse_items(p(), "A\tx\nB no tab\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.tsv:2: expected `ID<TAB>title`, found no tab"
        );
        let e = parse_items(p(), "A\tx\n\tno id\n").unwrap_err();
        assert_eq!(e.to_string(), "x.tsv:2: item id \"\" is empty");
        let e = parse_items(p(), "A\tx\nA\ty\n").unwrap_err();
        assert!(e.to_string().starts_with("x.tsv:2: duplicate item id"));
        let e = parse_items(p(), "\n\n").unwrap_err();
        assert_eq!(e.to_string(), "x.tsv: no items (empty file)");
    }

    #[test]
    fn users_parse_and_errors() {
        let u = parse_users(p(), "u1\tA B  C\nu2\tB\n").unwrap();
        assert_eq!(u[0].items, ["A", "B", "C"]);
        assert_eq!(u[1].line, 2);
        let e = parse_users(p(), "u1\tA\nu2\t  \n").unwrap_err();
        assert_eq!(e.to_string(), "x.tsv:2: user \"u2\" has no items");
        let e = parse_users(p(), "u1 A\n").unwrap_err();
        assert!(e.to_string().starts_with("x.tsv:1: expected"));
        assert!(parse_users(p(), "").is_err());
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_id_and_users_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("items.tsv");
        std::fs::write(&f, "\u{feff}A\ttitle\nB\tb\n").unwrap();
        let r = read_items(&f).unwrap();
        assert_eq!(r.items[0].key, "A");
        assert!(r.index.contains_key("A"));
        let e = parse_users(p(), "u1\tA\nu2\tB\nu1\tB\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.tsv:3: user \"u1\" again (first on line 1): one line per user"
        );
    }
}
