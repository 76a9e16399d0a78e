//! The cache file's header: what produced the states (model, tower record, preprocessing,
//! images), their shape and element type, and the dataset they belong to; its byte layout and
//! the checks every reader applies.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::shard::Shard;
use crate::error::{Error, Result};
use crate::provenance::TowerRecord;

pub(super) const MAGIC: &[u8; 8] = b"IISANHS1";
const ALIGN: usize = 64;

/// Element type of the stored states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheDtype {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (half the size; about 3 significant digits).
    F16,
}

impl CacheDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            CacheDtype::F32 => 4,
            CacheDtype::F16 => 2,
        }
    }
}

/// The cache header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHeader {
    /// Model identifier (folder name and config summary).
    pub model: String,
    /// `text` or `image`.
    pub modality: String,
    /// Hidden states per item (layers + 1).
    pub states: usize,
    /// State width.
    pub width: usize,
    /// Element type.
    pub dtype: CacheDtype,
    /// Real items N (rows = N + 1).
    pub items: usize,
    /// Fingerprint of the dataset's items (keys and titles in id order).
    pub items_fingerprint: String,
    /// Preprocessing that produced the states (tokens or image size), for the record.
    pub preprocessing: String,
    /// The tower folder (absolute) and the content hash of what it held
    /// ([`crate::provenance`]); absent in caches written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tower: Option<TowerRecord>,
    /// Image caches: SHA-256 over every item's image file (its bytes, or a mark that it is
    /// missing), so a changed, added or restored image makes the cache stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_sha256: Option<String>,
    /// A shard file (`iisan encode --shard`): the slice of items it holds, without the padding
    /// row; absent in a whole cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
}

impl CacheHeader {
    pub(super) fn row_bytes(&self) -> usize {
        self.states * self.width * self.dtype.size()
    }

    /// Rows the file holds: items + 1 (row 0 is padding), or a shard's items.
    pub(super) fn file_rows(&self) -> usize {
        self.shard.map_or(self.items + 1, |s| s.len)
    }

    /// The item id of the file's first row: 0 (padding), or a shard's first item.
    pub(super) fn first_row(&self) -> usize {
        self.shard.map_or(0, |s| s.first)
    }

    /// The real items the file holds: `1..items + 1`, or a shard's slice.
    pub fn item_range(&self) -> std::ops::Range<usize> {
        self.first_row().max(1)..self.first_row() + self.file_rows()
    }

    /// The size of the data, `rows x states x width x element size` bytes (rows: items + 1, or
    /// a shard's items), after checking every field it depends on (positive, the product within
    /// `usize`, a shard inside the items); the reason otherwise.
    pub(super) fn data_bytes(&self) -> std::result::Result<usize, String> {
        for (name, v) in [
            ("states", self.states),
            ("width", self.width),
            ("items", self.items),
        ] {
            if v == 0 {
                return Err(format!("{name} is 0"));
            }
        }
        if self.modality != "text" && self.modality != "image" {
            return Err(format!("modality {:?} is not text or image", self.modality));
        }
        if let Some(s) = self.shard
            && (s.index >= s.count
                || s.first == 0
                || (s.first.checked_add(s.len)).is_none_or(|e| e > self.items.saturating_add(1)))
        {
            return Err(format!(
                "shard {}/{} of items {}..{} is not within {} items",
                s.index,
                s.count,
                s.first,
                s.first.saturating_add(s.len),
                self.items
            ));
        }
        let rows = self.items.checked_add(1).map(|_| self.file_rows());
        rows.and_then(|rows| {
            [self.states, self.width, self.dtype.size()]
                .into_iter()
                .try_fold(rows, |acc, v| acc.checked_mul(v))
        })
        .ok_or_else(|| {
            format!(
                "{} items x {} states x {} wide does not fit in memory",
                self.items, self.states, self.width
            )
        })
    }

    /// The header as it starts a cache file: magic, length, JSON, zero padding to 64 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("serialisable");
        let mut out = MAGIC.to_vec();
        out.extend((json.len() as u64).to_le_bytes());
        out.extend(json);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
        out
    }

    /// Parse and check the header at the start of `bytes` (`path` names the file in errors);
    /// returns it and the data offset. What [`HiddenStateCache::open`] and `cache-info` check
    /// (and the cache header's fuzz target calls).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<(CacheHeader, usize)> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(Error::file(
                path,
                "not an iisan hidden-state cache (bad magic)",
            ));
        }
        let n = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes")) as usize;
        let json = 16usize
            .checked_add(n)
            .and_then(|end| bytes.get(16..end))
            .ok_or_else(|| Error::file(path, "truncated cache header"))?;
        let h: CacheHeader = serde_json::from_slice(json)
            .map_err(|e| Error::file(path, format!("invalid cache header: {e}")))?;
        h.data_bytes()
            .map_err(|why| Error::file(path, format!("invalid cache header: {why}")))?;
        Ok((h, (16 + n).div_ceil(ALIGN) * ALIGN))
    }
}
