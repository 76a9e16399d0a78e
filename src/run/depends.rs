//! What a run depends on, recorded when it starts (`started.json`: the resolved configuration
//! as it was written, and the frozen towers with their hashes): a resume is refused when the
//! run's `config.toml` was edited since, or when the caches or tower folders it reads now hold
//! other towers, naming what changed (docs/SECURITY.md, "Runs").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::atomic::write_text;
use crate::error::{Error, Result};
use crate::provenance::TowerRecord;

/// The file a run's start record lives in.
pub const STARTED: &str = "started.json";

/// A run's start record.
#[derive(Debug, Serialize, Deserialize)]
pub struct Started {
    /// `config.toml` as the run wrote it.
    pub config: String,
    /// The frozen towers the model read (empty for `id`).
    pub towers: Vec<TowerRecord>,
}

impl Started {
    /// Write the record into the run directory `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialisable");
        write_text(&dir.join(STARTED), &text)
    }

    /// The record of the run directory `dir`.
    pub fn read(dir: &Path) -> Result<Started> {
        let path = dir.join(STARTED);
        let text = crate::atomic::read_bounded(&path, 16 << 20)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("not a run's start record: {e}")))
    }

    /// Refuse to continue the run in `dir` with `config` (its `config.toml` now) and `towers`
    /// (what its caches and tower folders hold now) when either differs from the record.
    pub fn check(&self, dir: &Path, config: &str, towers: &[TowerRecord]) -> Result<()> {
        if config != self.config {
            let keys = changed_keys(&self.config, config);
            return Err(Error::file(
                &dir.join("config.toml"),
                format!(
                    "was edited since the run started ({}): a resume continues the run as it \
                     began; put the file back, or start a new run",
                    keys.join(", ")
                ),
            ));
        }
        for (then, now) in self.towers.iter().zip(towers) {
            if then != now {
                return Err(Error::file(
                    &now.path,
                    format!(
                        "the {} tower the run reads is not the one it started with (sha256 {} \
                         then, {} now; tokens {:?} then, {:?} now): encode the caches again \
                         with the recorded tower, or start a new run",
                        now.modality, then.sha256, now.sha256, then.max_tokens, now.max_tokens
                    ),
                ));
            }
        }
        if self.towers.len() != towers.len() {
            return Err(Error::file(
                dir,
                "the run now reads other towers than it started with",
            ));
        }
        Ok(())
    }
}

/// The dotted keys whose values differ between the TOML texts `a` and `b` (at most five).
fn changed_keys(a: &str, b: &str) -> Vec<String> {
    let (Ok(a), Ok(b)) = (a.parse::<toml::Table>(), b.parse::<toml::Table>()) else {
        return vec!["it no longer parses".into()];
    };
    let mut out = Vec::new();
    diff(&toml::Value::Table(a), &toml::Value::Table(b), "", &mut out);
    out.truncate(5);
    out
}

fn diff(a: &toml::Value, b: &toml::Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (toml::Value::Table(x), toml::Value::Table(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff(p, q, &path, out),
                    _ => out.push(path),
                }
            }
        }
        _ if a != b => out.push(format!("{at}: {a} -> {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An edited learning rate and seed are named with their values; a tower with another
    /// hash is named; the same config and towers pass.
    #[test]
    fn an_edited_config_or_another_tower_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let tower = |sha: &str| TowerRecord {
            modality: "text".into(),
            path: dir.path().to_path_buf(),
            sha256: sha.into(),
            max_tokens: Some(32),
            image_size: None,
            pooling: None,
        };
        let config = "[train]\nlr = 0.001\nseed = 1\nepochs = 3\n".to_string();
        let s = Started {
            config: config.clone(),
            towers: vec![tower("aa")],
        };
        s.write(dir.path()).unwrap();
        let s = Started::read(dir.path()).unwrap();
        s.check(dir.path(), &config, &[tower("aa")]).unwrap();
        let edited = "[train]\nlr = 0.01\nseed = 2\nepochs = 3\n";
        let e = s
            .check(dir.path(), edited, &[tower("aa")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.lr: 0.001 -> 0.01, train.seed: 1 -> 2"),
            "{e}"
        );
        let e = s
            .check(dir.path(), &config, &[tower("bb")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("sha256 aa then, bb now"), "{e}");
    }
}
