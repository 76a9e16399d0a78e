//! Files written so that no reader ever sees half of one: into `<name>.tmp` beside the final
//! name, then renamed over it (a rename within a directory is atomic on POSIX file systems).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Write `path` through `write`, which is given `<path>.tmp` to write to, then rename it into
/// place; when writing fails (a full disk) the temporary is removed and the old file stays.
pub fn write_beside(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let done =
        write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e)));
    if done.is_err() {
        // the temporary is this call's own
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// Write `tensors` to `path` as safetensors through [`write_beside`]; an error names the file.
pub fn write_tensors(
    path: &Path,
    tensors: &std::collections::HashMap<String, candle_core::Tensor>,
) -> Result<()> {
    write_beside(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp)
            .map_err(|e| Error::file(tmp, format!("cannot write: {e}")))
    })
}

/// The text of `path`, refused when it is larger than `max` bytes (a reader's bound).
pub fn read_bounded(path: &Path, max: u64) -> Result<String> {
    let len = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if len > max {
        return Err(Error::file(
            path,
            format!("is {len} bytes; the limit is {max}"),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Write the text `text` to `path` through [`write_beside`].
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    write_beside(path, |tmp| {
        std::fs::write(tmp, text).map_err(|e| Error::io(tmp, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, "old").unwrap();
        write_text(&p, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        // a failing writer leaves the old file as it was
        let e = write_beside(&p, |_| Err(Error::Internal("disk full".into())));
        assert!(e.is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
