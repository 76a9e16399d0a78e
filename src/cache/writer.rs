//! Writing a cache file (or a shard file) row by row into `<file>.partial`, resumable after the
//! last whole row, one writer per file at a time, renamed into place when complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use half::f16;

use crate::error::{Error, Result};

use super::CacheDtype;
use super::header::CacheHeader;

/// The file a cache is written to before it is complete: `<path>.partial`.
pub(super) fn partial_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Lock `<path>.lock` (created if needed) for the writer of the cache file `path`: a second
/// concurrent encode of the same file is refused instead of truncating the first one's work.
fn lock_writer(path: &Path) -> Result<File> {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(&lock_path, e))?;
    f.try_lock().map_err(|_| {
        Error::file(
            path,
            "another `iisan encode` is writing this cache now; run again when it is done",
        )
    })?;
    Ok(f)
}

/// Writes a cache file row by row, resumable.
pub struct CacheWriter {
    file: File,
    /// `<file>.lock`, locked while this writer lives: one encode per cache file at a time.
    _lock: File,
    header: CacheHeader,
    path: PathBuf,
    partial: PathBuf,
    /// Rows in the file so far (a whole cache's padding row included).
    rows_done: usize,
}

impl CacheWriter {
    /// Start `path` (via `<path>.partial`). If a partial file with the same header exists, it
    /// continues after its last complete row; otherwise it starts afresh. A whole cache's row 0
    /// (padding) is written at once; a shard file holds only its items.
    pub fn create_or_resume(path: &Path, header: CacheHeader) -> Result<CacheWriter> {
        let lock = lock_writer(path)?;
        let partial = partial_path(path);
        let head = header.encode();
        let row = header.row_bytes();
        if partial.exists() {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&partial)
                .map_err(|e| Error::io(&partial, e))?;
            let mut start = vec![0u8; head.len()];
            let same = f.read_exact(&mut start).is_ok() && start == head;
            if same {
                let len = f.metadata().map_err(|e| Error::io(&partial, e))?.len() as usize;
                let rows = ((len - head.len()) / row).min(header.file_rows());
                f.set_len((head.len() + rows * row) as u64)
                    .map_err(|e| Error::io(&partial, e))?;
                f.seek(SeekFrom::End(0))
                    .map_err(|e| Error::io(&partial, e))?;
                if rows > 0 {
                    return Ok(CacheWriter {
                        file: f,
                        _lock: lock,
                        header,
                        path: path.to_path_buf(),
                        partial,
                        rows_done: rows,
                    });
                }
            }
        }
        let mut f = File::create(&partial).map_err(|e| Error::io(&partial, e))?;
        f.write_all(&head).map_err(|e| Error::io(&partial, e))?;
        let padding = usize::from(header.shard.is_none());
        f.write_all(&vec![0u8; row * padding])
            .map_err(|e| Error::io(&partial, e))?;
        Ok(CacheWriter {
            file: f,
            _lock: lock,
            header,
            path: path.to_path_buf(),
            partial,
            rows_done: padding,
        })
    }

    /// The next item id to write (a whole cache's rows so far, padding included; a shard's first
    /// item plus its rows so far).
    pub fn next_item(&self) -> usize {
        self.header.first_row() + self.rows_done
    }

    /// The header being written.
    pub fn header(&self) -> &CacheHeader {
        &self.header
    }

    /// Append the states of the next `rows` items, `[rows, states, width]` f32 row-major.
    pub fn append(&mut self, values: &[f32]) -> Result<()> {
        let per = self.header.states * self.header.width;
        if !values.len().is_multiple_of(per) {
            return Err(Error::Internal(format!(
                "cache rows of {per} values, got {}",
                values.len()
            )));
        }
        let bytes: Vec<u8> = match self.header.dtype {
            CacheDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            CacheDtype::F16 => values
                .iter()
                .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                .collect(),
        };
        self.append_bytes(&bytes)
    }

    /// Append whole rows already in the file's element type and byte order (what
    /// [`super::merge`] copies from shard files).
    pub fn append_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        let row = self.header.row_bytes();
        if !bytes.len().is_multiple_of(row) || self.rows_done + bytes.len() / row > self.rows() {
            return Err(Error::Internal(format!(
                "{} bytes are not whole rows of {row} within the file's {} rows",
                bytes.len(),
                self.rows()
            )));
        }
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.partial, e))?;
        self.rows_done += bytes.len() / row;
        Ok(())
    }

    fn rows(&self) -> usize {
        self.header.file_rows()
    }

    /// Check completeness, flush and rename into place.
    pub fn finish(self) -> Result<PathBuf> {
        if self.rows_done != self.rows() {
            return Err(Error::Internal(format!(
                "cache has {} of {} rows",
                self.rows_done,
                self.rows()
            )));
        }
        self.file
            .sync_all()
            .map_err(|e| Error::io(&self.partial, e))?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.path)
    }
}
