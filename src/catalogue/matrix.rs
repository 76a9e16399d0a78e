//! The base item matrix, `items.safetensors` (tensor `items`, f32 `[rows, d]`, row 0 the zero
//! padding row), memory-mapped: a catalogue of 10^7 items at d = 64 is 2.5 GB that is paged in
//! as it is read and shared through the page cache by every process that serves it. The
//! header is parsed by the `safetensors` crate; the data is read in place as little-endian
//! f32 (a file whose data is not 4-byte aligned is copied into memory instead).

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// Where the rows live.
enum Storage {
    /// In the mapped file, from byte `offset`.
    Mapped { map: Mmap, offset: usize },
    /// Copied (an unaligned file).
    Owned(Vec<f32>),
}

/// The first `rows` rows of an item matrix file.
pub struct BaseMatrix {
    storage: Storage,
    rows: usize,
    dim: usize,
}

#[cfg(not(target_endian = "little"))]
compile_error!("the item matrix is read in place as little-endian f32");

impl BaseMatrix {
    /// Map the matrix `path` and keep its first `rows` rows (the rows its id file commits;
    /// later ones are left by an interrupted write and ignored).
    pub fn open(path: &Path, rows: usize) -> Result<BaseMatrix> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the matrix is only ever replaced by a rename (`crate::atomic`), never written
        // in place, so the mapped bytes do not change under the reader.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let (offset, shape) = {
            let st = SafeTensors::deserialize(&map)
                .map_err(|e| Error::file(path, format!("not a safetensors file: {e}")))?;
            let t = st
                .tensor("items")
                .map_err(|_| Error::file(path, "no tensor named items"))?;
            if t.dtype() != Dtype::F32 || t.shape().len() != 2 {
                let msg = format!(
                    "items is {:?} {:?}, not f32 [rows, d]",
                    t.dtype(),
                    t.shape()
                );
                return Err(Error::file(path, msg));
            }
            (
                t.data().as_ptr() as usize - map.as_ptr() as usize,
                t.shape().to_vec(),
            )
        };
        let (have, dim) = (shape[0], shape[1]);
        if rows > have || dim == 0 {
            let msg = format!("{} ids for {} item rows of width {dim}", rows - 1, have - 1);
            return Err(Error::file(path, msg));
        }
        let storage = if offset % 4 == 0 {
            Storage::Mapped { map, offset }
        } else {
            let bytes = &map[offset..offset + rows * dim * 4];
            let v = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Storage::Owned(v)
        };
        Ok(BaseMatrix { storage, rows, dim })
    }

    /// Rows kept (the padding row included).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Width d.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Every kept row, row-major `[rows, d]`.
    pub fn data(&self) -> &[f32] {
        match &self.storage {
            Storage::Mapped { map, offset } => {
                let bytes = &map[*offset..*offset + self.rows * self.dim * 4];
                // SAFETY: the offset is 4-byte aligned (checked in `open`; a mapping starts on
                // a page), the length a multiple of 4, and every bit pattern is an f32.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), bytes.len() / 4) }
            }
            Storage::Owned(v) => v,
        }
    }

    /// Row `r`.
    #[inline]
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data()[r * self.dim..(r + 1) * self.dim]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn maps_the_rows_the_ids_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("items.safetensors");
        // 4 rows of width 3 holding 0..12; the ids commit 3 of them
        let t = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((4, 3))
            .unwrap();
        let map = std::collections::HashMap::from([("items".to_string(), t)]);
        crate::atomic::write_tensors(&path, &map).unwrap();
        let m = BaseMatrix::open(&path, 3).unwrap();
        assert_eq!((m.rows(), m.dim()), (3, 3));
        assert_eq!(m.row(2), [6.0, 7.0, 8.0]);
        assert_eq!(m.data().len(), 9);
        let e = BaseMatrix::open(&path, 5).err().unwrap().to_string();
        assert!(e.contains("4 ids for 3 item rows"), "{e}");
    }
}
