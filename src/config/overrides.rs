//! `--set key.path=value` overrides applied to the TOML table before it is parsed.

use crate::error::{Error, Result};

/// Parse one `key.path=value` override's value: a TOML value if it parses as one, else a
/// string; but what starts like a TOML array, table or quoted string must parse as one.
fn parse_value(set: &str, raw: &str) -> Result<toml::Value> {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => Ok(t.remove("v").expect("parsed key")),
        Err(e) if raw.starts_with(['[', '{', '"', '\'']) => Err(Error::Config(format!(
            "--set {set:?}: not a TOML value: {}",
            e.message().trim()
        ))),
        Err(_) => Ok(toml::Value::String(raw.to_string())),
    }
}

/// Keys whose values are text even when they look like numbers (`--set run.name=2024`).
const TEXT_KEYS: [&str; 6] = [
    "run.name",
    "run.dir",
    "data.dir",
    "data.cache",
    "model.towers.text_model",
    "model.towers.image_model",
];

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
        let raw = raw.trim();
        let mut value = parse_value(s, raw)?;
        let scalar = matches!(
            value,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_)
        );
        if scalar && TEXT_KEYS.contains(&key.trim()) {
            value = toml::Value::String(raw.to_string());
        }
        t.insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}
