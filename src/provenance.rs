//! Which frozen tower produced a thing: a tower folder referenced by its absolute path and a
//! content hash of the files the loaders read, so a tower changed under the same name is
//! detected instead of silently used (by the hidden-state cache, a run directory's
//! `towers.json`, and `iisan items add`, which runs the towers again on new items).
//!
//! The hash is SHA-256 over, for each of [`MODEL_FILES`] present in the folder in that order,
//! the file name, a zero byte, the length (u64 little-endian) and the bytes. Other files
//! (READMEs, sentence-transformers extras) do not change it: nothing reads them.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The files of a Hugging Face tower folder that `iisan` reads (weights, shape, tokenizer,
/// image preprocessing).
pub const MODEL_FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "preprocessor_config.json",
];

/// One frozen tower as a run or a cache used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TowerRecord {
    /// `text` or `image`.
    pub modality: String,
    /// The folder, absolute.
    pub path: PathBuf,
    /// [`hash_model_dir`] of the folder when it was used.
    pub sha256: String,
    /// Tokens per title (text towers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Image side in pixels (image towers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// How token states were pooled into an item's, by name (text towers other than
    /// [CLS]-pooled encoders; none: [CLS]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
}

impl TowerRecord {
    /// The record of the tower folder `dir` as it is now (absolute path, content hash).
    pub fn of(
        modality: &str,
        dir: &Path,
        max_tokens: Option<usize>,
        image_size: Option<usize>,
    ) -> Result<TowerRecord> {
        let path = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
        let sha256 = hash_model_dir(&path)?;
        Ok(TowerRecord {
            modality: modality.into(),
            path,
            sha256,
            max_tokens,
            image_size,
            pooling: None,
        })
    }

    /// Check that the folder still holds what was recorded; a changed or missing tower is an
    /// error naming it (`what` says who recorded it, e.g. the run directory).
    pub fn verify(&self, what: &str) -> Result<()> {
        if !self.path.is_dir() {
            return Err(Error::file(
                &self.path,
                format!("the {} tower {what} recorded is gone", self.modality),
            ));
        }
        let now = hash_model_dir(&self.path)?;
        if now != self.sha256 {
            return Err(Error::file(
                &self.path,
                format!(
                    "the {} tower changed since {what} used it (sha256 {} now, {} then)",
                    self.modality,
                    short(&now),
                    short(&self.sha256)
                ),
            ));
        }
        Ok(())
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(16)]
}

/// Feed everything `f` (the file `path`, for errors) yields into `h`, through `buf`; returns
/// the bytes read.
pub fn hash_stream(h: &mut Sha256, f: &mut impl Read, path: &Path, buf: &mut [u8]) -> Result<u64> {
    let mut bytes = 0u64;
    loop {
        let n = f.read(buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(bytes);
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
}

/// SHA-256 (hex) of the [`MODEL_FILES`] of tower folder `dir` (see the module doc); a folder
/// with none of them is an error.
pub fn hash_model_dir(dir: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut found = 0;
    let mut buf = vec![0u8; 1 << 20];
    for name in MODEL_FILES {
        let path = dir.join(name);
        let Ok(mut f) = std::fs::File::open(&path) else {
            continue;
        };
        found += 1;
        let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(len.to_le_bytes());
        hash_stream(&mut h, &mut f, &path, &mut buf)?;
    }
    if found == 0 {
        return Err(Error::file(
            dir,
            format!("not a tower folder: none of {}", MODEL_FILES.join(", ")),
        ));
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_covers_read_files_only_and_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        assert!(hash_model_dir(p).is_err());
        std::fs::write(p.join("config.json"), b"{}").unwrap();
        // by hand: sha256("config.json" 0x00 2u64le "{}")
        let mut h = Sha256::new();
        h.update(b"config.json\0");
        h.update(2u64.to_le_bytes());
        h.update(b"{}");
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hash_model_dir(p).unwrap(), want);
        std::fs::write(p.join("README.md"), b"ignored").unwrap();
        assert_eq!(hash_model_dir(p).unwrap(), want);
        let rec = TowerRecord::of("text", p, Some(30), None).unwrap();
        rec.verify("the run").unwrap();
        std::fs::write(p.join("model.safetensors"), b"w").unwrap();
        let e = rec.verify("the run").unwrap_err().to_string();
        assert!(
            e.contains("the text tower changed since the run used it"),
            "{e}"
        );
    }
}
