//! Keys of configurations written by earlier versions, read as today's: run directories keep
//! their `config.toml`, so `iisan eval` must load what older `iisan train` wrote.
//!
//! Before the one kernels switch, `model.iisan.kernels` and `model.user.kernels` (`"fused"` or
//! `"autograd"`) chose the IISAN tower's and the user side's computation; they are read as
//! `train.kernels` (`"fused"` is `"cpu"`). Two different values cannot be expressed any more.

use crate::error::{Error, Result};

/// Move the old kernels keys of `table` to `train.kernels`.
pub(super) fn migrate(table: &mut toml::Table) -> Result<()> {
    let mut found: Vec<(String, String)> = Vec::new();
    if let Some(model) = table.get_mut("model").and_then(|m| m.as_table_mut()) {
        for part in ["iisan", "user"] {
            let old = model
                .get_mut(part)
                .and_then(|p| p.as_table_mut())
                .and_then(|p| p.remove("kernels"));
            if let Some(v) = old {
                let v = v.as_str().map(str::to_string).ok_or_else(|| {
                    Error::Config(format!("model.{part}.kernels must be a string"))
                })?;
                let now = if v == "fused" { "cpu".to_string() } else { v };
                found.push((format!("model.{part}.kernels"), now));
            }
        }
    }
    let Some((_, value)) = found.first().cloned() else {
        return Ok(());
    };
    let train = table
        .entry("train")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::Config("train is not a table".into()))?;
    if let Some(t) = train.get("kernels").and_then(|v| v.as_str()) {
        found.push(("train.kernels".into(), t.to_string()));
    }
    if let Some((key, other)) = found.iter().find(|(_, v)| *v != value) {
        return Err(Error::Config(format!(
            "{} = {value:?} and {key} = {other:?}: the kernels are one switch now, train.kernels",
            found[0].0
        )));
    }
    train.insert("kernels".into(), toml::Value::String(value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use crate::model::Kernels;

    fn load(text: &str) -> crate::error::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), &[])
    }

    #[test]
    fn old_kernels_keys_read_as_train_kernels() {
        let c = load("[model.iisan]\nkernels = \"fused\"\n[model.user]\nkernels = \"fused\"\n");
        assert_eq!(c.unwrap().train.kernels, Kernels::Cpu);
        let c = load("[model.user]\nkernels = \"autograd\"\n").unwrap();
        assert_eq!(c.train.kernels, Kernels::Autograd);
        let e = load("[model.iisan]\nkernels = \"fused\"\n[model.user]\nkernels = \"autograd\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("one switch now, train.kernels"), "{e}");
        let e = load("[model.user]\nkernels = \"autograd\"\n[train]\nkernels = \"cpu\"\n");
        assert!(e.is_err());
        // today's key alone is untouched
        let c = load("[train]\nkernels = \"autograd\"\n").unwrap();
        assert_eq!(c.train.kernels, Kernels::Autograd);
    }
}
