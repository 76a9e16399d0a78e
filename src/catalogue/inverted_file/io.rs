//! The inverted file on disk: written through safetensors straight from its slices (no copy
//! of the vectors), synced, beside its final name and renamed; opened memory-mapped and
//! checked whole before use (a file is data, and an index names rows that re-scoring reads).

use std::fs::File;

use super::*;

/// A slice as safetensors writes it.
struct Raw<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: &'a [u8],
}

impl View for Raw<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn raw<T: Plain>(s: &Slab<T>, shape: Vec<usize>) -> Raw<'_> {
    Raw {
        dtype: T::DTYPE,
        shape,
        bytes: s.bytes(),
    }
}

impl InvertedFile {
    /// Write the file to `path` (beside, synced, renamed).
    pub fn write(&self, path: &Path) -> Result<()> {
        let (n, d, l) = (self.len(), self.d, self.lists());
        let vectors = match &self.vectors {
            Vectors::F16(v) => raw(v, vec![n, d]),
            Vectors::F32(v) => raw(v, vec![n, d]),
        };
        let tensors = [
            ("centroids", raw(&self.centroids, vec![l, d])),
            ("reach", raw(&self.reach, vec![l])),
            ("offsets", raw(&self.offsets, vec![l + 1])),
            ("rows", raw(&self.rows, vec![n])),
            ("vectors", vectors),
        ];
        crate::atomic::write_beside(path, |tmp| {
            safetensors::serialize_to_file(tensors, None, tmp)
                .map_err(|e| Error::file(tmp, format!("cannot write: {e}")))?;
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(tmp, e))
        })
    }

    /// Open the file `path`, which must index `n` rows of width `d`: mapped, and checked.
    pub fn open(path: &Path, n: usize, d: usize) -> Result<InvertedFile> {
        let bad = |msg: String| Error::file(path, format!("ANN index: {msg}"));
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: index files are only ever written under a new name and renamed into
        // place, never changed in place, so the mapped bytes do not change under the reader.
        let map = Arc::new(unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?);
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let lists = st
            .tensor("reach")
            .map_err(|_| bad("no tensor reach".into()))?
            .shape()
            .first()
            .copied()
            .unwrap_or(0);
        if lists == 0 || lists > n.max(1) {
            return Err(bad(format!("{lists} lists for {n} rows")));
        }
        let vectors = match st.tensor("vectors").map(|t| t.dtype()) {
            Ok(Dtype::F32) => Vectors::F32(slab(&st, &map, "vectors", &[n, d], &bad)?),
            _ => Vectors::F16(slab(&st, &map, "vectors", &[n, d], &bad)?),
        };
        let f = InvertedFile {
            d,
            centroids: slab(&st, &map, "centroids", &[lists, d], &bad)?,
            reach: slab(&st, &map, "reach", &[lists], &bad)?,
            offsets: slab(&st, &map, "offsets", &[lists + 1], &bad)?,
            rows: slab(&st, &map, "rows", &[n], &bad)?,
            vectors,
        };
        f.check().map_err(bad)?;
        Ok(f)
    }

    /// Offsets from 0 to n in order, rows a permutation of `1..=n`, finite centroids and
    /// reaches.
    fn check(&self) -> std::result::Result<(), String> {
        let (o, n) = (self.offsets.get(), self.len());
        if o[0] != 0 || o[o.len() - 1] != n as i64 || o.windows(2).any(|w| w[0] > w[1]) {
            return Err("list offsets out of order".into());
        }
        let mut seen = vec![false; n + 1];
        for &r in self.rows.get() {
            let r = r as usize;
            if r == 0 || r > n || std::mem::replace(&mut seen[r], true) {
                return Err(format!("row {r} is not one of 1..={n} once"));
            }
        }
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if !finite(self.centroids.get()) || !finite(self.reach.get()) {
            return Err("a centroid or reach is not finite".into());
        }
        Ok(())
    }
}

/// Tensor `name` of `st` (in `map`) as a slab of T of shape `shape`: in place when aligned,
/// copied when not.
fn slab<T: Plain>(
    st: &SafeTensors,
    map: &Arc<Mmap>,
    name: &str,
    shape: &[usize],
    bad: &dyn Fn(String) -> Error,
) -> Result<Slab<T>> {
    let t = st
        .tensor(name)
        .map_err(|_| bad(format!("no tensor {name}")))?;
    if t.dtype() != T::DTYPE || t.shape() != shape {
        let msg = format!(
            "{name} is {:?} {:?}, not {:?} {shape:?}",
            t.dtype(),
            t.shape(),
            T::DTYPE
        );
        return Err(bad(msg));
    }
    let at = t.data().as_ptr() as usize - map.as_ptr() as usize;
    let size = std::mem::size_of::<T>();
    let len = t.data().len() / size;
    Ok(if at.is_multiple_of(std::mem::align_of::<T>()) {
        Slab::Mapped {
            map: Arc::clone(map),
            at,
            len,
        }
    } else {
        Slab::Owned(t.data().chunks_exact(size).map(T::read).collect())
    })
}
