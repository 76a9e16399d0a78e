//! The runs' settings side by side: every key of each run's resolved `config.toml` as a dotted
//! name (`train.lr`, `model.iisan.text_taps`), one column per run, the keys whose values differ
//! first and marked, the ones every run shares after them.

use std::collections::BTreeMap;

use super::page::{Cell, Table};

/// A resolved configuration flattened: dotted key -> value as TOML writes it.
pub type Flat = BTreeMap<String, String>;

/// Flatten the TOML `text` (a run's `config.toml`); an unreadable file gives one entry saying so.
pub fn flatten(text: &str) -> Flat {
    let mut out = Flat::new();
    match text.parse::<toml::Table>() {
        Ok(t) => walk("", &t, &mut out),
        Err(e) => {
            out.insert("(config.toml)".into(), format!("not readable: {e}"));
        }
    }
    out
}

fn walk(prefix: &str, t: &toml::Table, out: &mut Flat) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) => walk(&key, inner, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// The two tables: the keys whose values differ between the runs (or that only some runs
/// have), and the keys all runs share with one value. `labels` name the columns.
pub fn side_by_side(labels: &[String], configs: &[Flat]) -> (Table, Table) {
    let mut head = vec!["setting"];
    head.extend(labels.iter().map(String::as_str));
    let (mut differs, mut same) = (Table::new(&head), Table::new(&head));
    let mut keys: Vec<&String> = configs.iter().flat_map(|c| c.keys()).collect();
    keys.sort();
    keys.dedup();
    for key in keys {
        let values: Vec<Option<&String>> = configs.iter().map(|c| c.get(key)).collect();
        let cells: Vec<Cell> = std::iter::once(Cell::text(key.as_str()))
            .chain(
                values
                    .iter()
                    .map(|v| Cell::text(v.map_or("—", |v| v.as_str()))),
            )
            .collect();
        if values.iter().all(|v| *v == values[0]) {
            same.row(cells);
        } else {
            differs.rows.push(("differs", cells));
        }
    }
    (differs, same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_come_apart_from_the_shared_ones() {
        let a = flatten(
            "[train]\nlr = 0.0002\nbatch = 64\n[model]\nmethod = \"iisan\"\n[model.iisan]\ntext_taps = [0, 1]\n",
        );
        let b = flatten("[train]\nlr = 0.001\nbatch = 64\n[model]\nmethod = \"id\"\n");
        assert_eq!(a["model.iisan.text_taps"], "[0, 1]");
        assert_eq!(a["model.method"], "iisan", "strings without their quotes");
        let (differs, same) = side_by_side(&["a".into(), "b".into()], &[a, b]);
        let keys =
            |t: &Table| -> Vec<String> { t.rows.iter().map(|r| r.1[0].text.clone()).collect() };
        assert_eq!(
            keys(&differs),
            ["model.iisan.text_taps", "model.method", "train.lr"]
        );
        assert_eq!(keys(&same), ["train.batch"]);
        // a key only one run has shows a dash for the other
        assert_eq!(differs.rows[0].1[2].text, "—");
        assert!(flatten("not = [toml").contains_key("(config.toml)"));
    }
}
