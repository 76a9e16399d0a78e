//! `--set key.path=value` overrides applied to the TOML table before it is parsed.

use crate::error::{Error, Result};

/// Parse one `key.path=value` override's value: a TOML value if it parses as one, else a string.
fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Apply `key.path=value` overrides to a TOML table.
pub(super) fn apply_overrides(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let (key, raw) = s
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set {s:?}: expected key.path=value")))?;
        let parts: Vec<&str> = key.trim().split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::Config(format!("--set {s:?}: empty key segment")));
        }
        let mut t = &mut *table;
        for p in &parts[..parts.len() - 1] {
            let entry = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            t = entry
                .as_table_mut()
                .ok_or_else(|| Error::Config(format!("--set {s:?}: {p} is not a table")))?;
        }
        t.insert(parts[parts.len() - 1].to_string(), parse_value(raw.trim()));
    }
    Ok(())
}
