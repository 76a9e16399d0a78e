//! The item side of a run directory, as serving reads it and `iisan items add` extends it:
//!
//! ```text
//! items.safetensors   tensor `items`, f32 [rows, d]; row 0 the zero padding row
//! item_ids.txt        the external id of row r on line r (from 1)
//! ```
//! `item_ids.txt` is the commit point: a writer replaces the matrix first and the ids second
//! (each written beside its name and renamed), and a reader uses only the first
//! `1 + lines(item_ids.txt)` rows. An append interrupted between the two renames therefore
//! leaves the previous index intact (its rows are unchanged; the extra rows are ignored and
//! overwritten by the next append). Appends hold an exclusive lock on `items.lock`, so two
//! writers (two `items add`, or a server and a command) never interleave.

use std::collections::HashSet;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::atomic::{write_tensors, write_text};
use crate::data::ids;
use crate::error::{Error, Result};

/// The item ids (row order, `keys[0]` the padding row's `<pad>`) and the matrix `[N + 1, d]`.
#[derive(Debug, Clone)]
pub struct ItemIndex {
    /// External ids by row.
    pub keys: Vec<String>,
    /// Item embeddings, f32 `[keys.len(), d]`.
    pub items: Tensor,
}

const MATRIX: &str = "items.safetensors";
const IDS: &str = "item_ids.txt";

impl ItemIndex {
    /// Write the index into `dir`: the matrix, then the ids (the commit point).
    pub fn write(&self, dir: &Path) -> Result<()> {
        let (rows, _) = self.items.dims2()?;
        if rows != self.keys.len() {
            return Err(Error::Internal(format!(
                "{rows} item rows for {} ids",
                self.keys.len()
            )));
        }
        let items = self.items.to_dtype(DType::F32)?;
        let tensors = std::collections::HashMap::from([("items".to_string(), items)]);
        write_tensors(&dir.join(MATRIX), &tensors)?;
        let ids: String = self.keys[1..].iter().map(|k| format!("{k}\n")).collect();
        write_text(&dir.join(IDS), &ids)
    }

    /// Read the index of run directory `dir`.
    pub fn read(dir: &Path) -> Result<ItemIndex> {
        let path = dir.join(MATRIX);
        if !path.exists() {
            return Err(Error::file(
                &path,
                "missing: runs trained before items.safetensors existed cannot be served",
            ));
        }
        let items = candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| Error::file(&path, format!("cannot read: {e}")))?
            .remove("items")
            .ok_or_else(|| Error::file(&path, "no tensor named items"))?;
        let ids_path = dir.join(IDS);
        let text = std::fs::read_to_string(&ids_path).map_err(|e| Error::io(&ids_path, e))?;
        let keys: Vec<String> = std::iter::once("<pad>".to_string())
            .chain(text.lines().map(str::to_string))
            .collect();
        let rows = items.dim(0)?;
        if keys.len() > rows || items.dtype() != DType::F32 {
            return Err(Error::file(
                &ids_path,
                format!(
                    "{} ids for {} item rows ({:?}) in {MATRIX}",
                    keys.len() - 1,
                    rows.saturating_sub(1),
                    items.dtype()
                ),
            ));
        }
        let items = items.narrow(0, 0, keys.len())?;
        Ok(ItemIndex { keys, items })
    }

    /// Append the items `keys` with embeddings `rows` `[keys.len(), d]` to the index of run
    /// directory `dir`, under its lock; returns the new index. Empty ids, ids with white space
    /// (a history could not name them), ids repeated in `keys` or already in the index are an
    /// error naming them, and nothing is written.
    pub fn append(dir: &Path, keys: &[String], rows: &Tensor) -> Result<ItemIndex> {
        let lock_path = dir.join("items.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        let old = ItemIndex::read(dir)?;
        check_new_keys(&old.keys, keys)?;
        let (n, d) = rows.dims2()?;
        if n != keys.len() || d != old.items.dim(1)? {
            return Err(Error::Internal(format!(
                "{n} x {d} new rows for {} ids of width {}",
                keys.len(),
                old.items.dim(1)?
            )));
        }
        let items = Tensor::cat(&[&old.items, &rows.to_dtype(DType::F32)?], 0)?;
        let mut all = old.keys;
        all.extend(keys.iter().cloned());
        let new = ItemIndex { keys: all, items };
        new.write(dir)?;
        drop(lock);
        Ok(new)
    }
}

/// Check new item ids against the existing `keys` (see [`ItemIndex::append`]).
pub fn check_new_keys(existing: &[String], keys: &[String]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Input("no items to add".into()));
    }
    for (i, k) in keys.iter().enumerate() {
        if let Some(p) = ids::item_id_problem(k) {
            let msg = format!("item {}: id {} {p}", i + 1, ids::shown(k));
            return Err(Error::Input(msg));
        }
    }
    let old: HashSet<&str> = existing.iter().skip(1).map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut dup: Vec<&str> = Vec::new();
    for k in keys {
        if (old.contains(k.as_str()) || !seen.insert(k.as_str())) && !dup.contains(&k.as_str()) {
            dup.push(k);
        }
    }
    if !dup.is_empty() {
        return Err(Error::DuplicateItems {
            ids: dup.iter().map(|k| k.to_string()).collect(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(keys: &[&str], d: usize) -> ItemIndex {
        let n = keys.len() + 1;
        let v: Vec<f32> = (0..n * d)
            .map(|i| if i < d { 0.0 } else { i as f32 })
            .collect();
        ItemIndex {
            keys: std::iter::once("<pad>")
                .chain(keys.iter().copied())
                .map(String::from)
                .collect(),
            items: Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap(),
        }
    }

    #[test]
    fn append_extends_rows_and_ids_and_refuses_bad_ids_without_writing() {
        let dir = tempfile::tempdir().unwrap();
        index(&["A", "B"], 2).write(dir.path()).unwrap();
        let new = Tensor::new(&[[7f32, 8.0]], &Device::Cpu).unwrap();
        let got = ItemIndex::append(dir.path(), &["C".into()], &new).unwrap();
        assert_eq!(got.keys, ["<pad>", "A", "B", "C"]);
        let back = ItemIndex::read(dir.path()).unwrap();
        assert_eq!(back.keys, got.keys);
        // rows 1, 2 are [2, 3], [4, 5] (value = flat index); row 3 the new one
        assert_eq!(
            back.items.to_vec2::<f32>().unwrap(),
            [[0.0, 0.0], [2.0, 3.0], [4.0, 5.0], [7.0, 8.0]]
        );
        let before = std::fs::read(dir.path().join(IDS)).unwrap();
        for (keys, msg) in [
            (
                vec!["A".to_string()],
                "already in the catalogue or repeated: A",
            ),
            (vec!["D".into(), "D".into()], "repeated: D"),
            (vec!["".into()], "item 1: id \"\" is empty"),
            (vec!["../x".into()], "holds a path separator"),
            (vec!["x y".into()], "holds white space"),
        ] {
            let rows = Tensor::zeros((keys.len(), 2), DType::F32, &Device::Cpu).unwrap();
            let e = ItemIndex::append(dir.path(), &keys, &rows).unwrap_err();
            assert!(e.to_string().contains(msg), "{e}");
        }
        assert_eq!(std::fs::read(dir.path().join(IDS)).unwrap(), before);
    }

    #[test]
    fn rows_beyond_the_ids_of_an_interrupted_append_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        index(&["A", "B", "C"], 2).write(dir.path()).unwrap();
        // the ids of the index before C was appended: the matrix was renamed, the ids not
        std::fs::write(dir.path().join(IDS), "A\nB\n").unwrap();
        let back = ItemIndex::read(dir.path()).unwrap();
        assert_eq!(back.keys, ["<pad>", "A", "B"]);
        assert_eq!(back.items.dims(), [3, 2]);
    }
}
