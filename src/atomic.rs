//! Files written so that no reader ever sees half of one: into `<name>.tmp` beside the final
//! name, then renamed over it (a rename within a directory is atomic on POSIX file systems).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Write `path` through `write`, which is given `<path>.tmp` to write to, then rename it into
/// place.
pub fn write_beside(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    write(&tmp)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
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
