//! The base of a catalogue: the item matrix `items.safetensors` (memory-mapped,
//! [`super::matrix::BaseMatrix`]) and its ids `item_ids.txt` (row r's external id on line r,
//! from 1). `item_ids.txt` is the base's commit point: a writer replaces the matrix first and
//! the ids second (each written beside its name and renamed), and a reader uses only the first
//! `1 + lines(item_ids.txt)` rows, so a write interrupted between the two renames leaves the
//! previous base intact.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::matrix::BaseMatrix;
use crate::atomic::{read_bounded, write_tensors, write_text};
use crate::data::ids::MAX_ID_BYTES;
use crate::error::{Error, Result};

/// The item matrix file.
pub const MATRIX: &str = "items.safetensors";
/// The base's ids, its commit point.
pub const IDS: &str = "item_ids.txt";

/// The base rows, their ids and the row of each id.
pub struct Base {
    /// The rows `[1 + keys, d]`, row 0 padding.
    pub matrix: BaseMatrix,
    /// External ids by row, `keys[0]` the padding row's `<pad>`.
    pub keys: Vec<String>,
    /// Row of each id.
    pub index: HashMap<String, u32>,
}

/// Write a base into `dir`: the matrix `items` (`[keys.len(), d]`, row 0 padding), then the
/// ids `keys` (`keys[0]` the padding row's, not written), the commit point.
pub fn write_base(dir: &Path, keys: &[String], items: &Tensor) -> Result<()> {
    let (rows, _) = items.dims2()?;
    if rows != keys.len() {
        return Err(Error::Internal(format!(
            "{rows} item rows for {} ids",
            keys.len()
        )));
    }
    let items = items.to_dtype(DType::F32)?;
    let tensors = HashMap::from([("items".to_string(), items)]);
    write_tensors(&dir.join(MATRIX), &tensors)?;
    let ids: String = keys[1..].iter().map(|k| format!("{k}\n")).collect();
    write_text(&dir.join(IDS), &ids)
}

impl Base {
    /// Which base this is (a segment records the base it extends, [`super::segment::BaseId`]):
    /// its item count, last id, and first and last rows, hashed.
    pub fn id(&self) -> super::segment::BaseId {
        use sha2::{Digest, Sha256};
        let b = self.keys.len() - 1;
        let mut h = Sha256::new();
        h.update((b as u64).to_le_bytes());
        h.update(self.keys[b].as_bytes());
        for r in [b.min(1), b] {
            for v in self.matrix.row(r) {
                h.update(v.to_le_bytes());
            }
        }
        super::segment::BaseId {
            items: b,
            fingerprint: format!("{:x}", h.finalize())[..16].to_string(),
        }
    }

    /// Read the base of run directory `dir`. The ids file is read up to
    /// `(MAX_ID_BYTES + 1)` bytes per matrix row (the most the rows it can name take).
    pub fn read(dir: &Path) -> Result<Base> {
        let path = dir.join(MATRIX);
        if !path.exists() {
            return Err(Error::file(
                &path,
                "missing: runs trained before items.safetensors existed cannot be served",
            ));
        }
        let len = std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
        let ids_path = dir.join(IDS);
        // a matrix of r rows of width >= 1 is at least 4 r bytes long
        let text = read_bounded(&ids_path, (len / 4 + 1) * (MAX_ID_BYTES as u64 + 1))?;
        let keys: Vec<String> = std::iter::once("<pad>".to_string())
            .chain(text.lines().map(str::to_string))
            .collect();
        let matrix = BaseMatrix::open(&path, keys.len())?;
        let index = keys
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, k)| (k.clone(), i as u32))
            .collect();
        Ok(Base {
            matrix,
            keys,
            index,
        })
    }
}
