//! The crate's one error type.
//!
//! Every error a user can cause (bad input rows, a wrong config value, a missing file) names the
//! file and the place, renders on one line, and maps to exit code 2; internal failures (tensor
//! errors) map to exit code 1.

use std::path::{Path, PathBuf};

/// Errors raised by `iisan`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A malformed or inconsistent line in an input file (`line` is 1-based).
    #[error("{}:{line}: {msg}", file.display())]
    Line {
        /// The input file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with that line.
        msg: String,
    },
    /// A problem with a whole input file (empty, wrong format, truncated).
    #[error("{}: {msg}", file.display())]
    File {
        /// The input file.
        file: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// An invalid configuration value or command-line override.
    #[error("config: {0}")]
    Config(String),
    /// Invalid input given on the command line or in a request.
    #[error("{0}")]
    Input(String),
    /// Item ids the catalogue does not have (named by a history: its 1-based number in a batch).
    #[error("{}unknown item id{} {}", .history.map_or(String::new(), |h| format!("history {h}: ")), plural(.ids), .ids.join(", "))]
    UnknownItems {
        /// The unknown ids, in the order given.
        ids: Vec<String>,
        /// The history that named them, when there were several.
        history: Option<usize>,
    },
    /// Item ids to add that the catalogue already has, or that repeat among the new ones.
    #[error("item id{} already in the catalogue or repeated: {}", plural(.ids), .ids.join(", "))]
    DuplicateItems {
        /// The ids, each once.
        ids: Vec<String>,
    },
    /// Training produced a non-finite loss or gradient (the weights were not updated); the
    /// trainer adds where (epoch, step) and which checkpoint is the last good one.
    #[error("training diverged: {0}")]
    Diverged(String),
    /// An I/O failure on a named path.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The caller asked the task to stop ([`crate::progress::Progress::cancelled`]; Ctrl-C in
    /// Python): it stopped at a step boundary, and what it wrote resumes to the uninterrupted
    /// result. The text names the task.
    #[error("interrupted: {0}")]
    Interrupted(String),
    /// A tensor-library failure (shape mismatch, allocation, ...): an internal error.
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Any other internal error.
    #[error("{0}")]
    Internal(String),
}

/// `s` when there is more than one id.
fn plural(ids: &[String]) -> &'static str {
    if ids.len() > 1 { "s" } else { "" }
}

impl Error {
    /// This error as met in history `n` (1-based) of a batch: unknown ids say which history
    /// named them, other bad input is prefixed with it.
    pub fn in_history(self, n: usize) -> Error {
        match self {
            Error::UnknownItems { ids, .. } => Error::UnknownItems {
                ids,
                history: Some(n),
            },
            Error::Input(m) => Error::Input(format!("history {n}: {m}")),
            e => e,
        }
    }

    /// A line-level error in `file`.
    pub fn line(file: &Path, line: usize, msg: impl Into<String>) -> Self {
        Error::Line {
            file: file.to_path_buf(),
            line,
            msg: msg.into(),
        }
    }

    /// A file-level error in `file`.
    pub fn file(file: &Path, msg: impl Into<String>) -> Self {
        Error::File {
            file: file.to_path_buf(),
            msg: msg.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The process exit code for this error: 2 for bad input or configuration, 130 for an
    /// interruption (as a shell reports Ctrl-C), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Line { .. }
            | Error::File { .. }
            | Error::Config(_)
            | Error::Input(_)
            | Error::UnknownItems { .. }
            | Error::DuplicateItems { .. }
            | Error::Diverged(_)
            | Error::Io { .. } => 2,
            Error::Interrupted(_) => 130,
            Error::Tensor(_) | Error::Internal(_) => 1,
        }
    }

    /// The message on a single line (embedded newlines, e.g. from backtraces, are folded).
    pub fn one_line(&self) -> String {
        let s = self.to_string();
        let mut lines = s.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().unwrap_or("").to_string();
        match lines.next() {
            Some(second) => format!("{first} ({second})"),
            None => first,
        }
    }
}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_error_names_file_and_line_and_maps_to_exit_2() {
        let e = Error::line(Path::new("data/users.tsv"), 7, "no tab");
        assert_eq!(e.to_string(), "data/users.tsv:7: no tab");
        assert_eq!(e.exit_code(), 2);
    }

    /// The item errors read as the plain messages they replace: "unknown item id X" (one),
    /// "unknown item ids X, Y" (two), prefixed by the history in a batch; duplicates likewise.
    #[test]
    fn item_errors_name_the_ids_and_the_history() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let one = Error::UnknownItems {
            ids: ids(&["X"]),
            history: None,
        };
        assert_eq!(one.to_string(), "unknown item id X");
        let two = Error::UnknownItems {
            ids: ids(&["X", "Y"]),
            history: None,
        };
        assert_eq!(
            two.in_history(3).to_string(),
            "history 3: unknown item ids X, Y"
        );
        let e = Error::Input("is empty".into()).in_history(2);
        assert_eq!(e.to_string(), "history 2: is empty");
        let d = Error::DuplicateItems { ids: ids(&["A"]) };
        assert_eq!(
            d.to_string(),
            "item id already in the catalogue or repeated: A"
        );
        assert_eq!((d.exit_code(), one.exit_code()), (2, 2));
    }

    #[test]
    fn one_line_folds_multiline_messages() {
        let e = Error::Internal("first\n  second\nthird".into());
        assert_eq!(e.one_line(), "first (second)");
    }
}
