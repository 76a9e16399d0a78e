//! The crate's errors as Python exceptions: one class per kind (`iisan.errors`, written in
//! Python so that each can also derive from the matching built-in: `ValueError`, `OSError`),
//! carrying the command line's one-line message, its exit code, and the file and line where
//! there is one. An interruption is Python's own `KeyboardInterrupt`.

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use iisan::Error;

/// Turn a library result into a Python one.
pub(crate) trait OrRaise<T> {
    /// The value, or the error raised as its `iisan.errors` class.
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for iisan::Result<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}

/// The exception of `e`.
pub(crate) fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let (class, path, line) = match &e {
        Error::Line { file, line, .. } => ("DataError", Some(file.as_path()), Some(*line)),
        Error::File { file, .. } => ("DataError", Some(file.as_path()), None),
        Error::Config(_) => ("ConfigError", None, None),
        Error::Input(_) | Error::UnknownItems { .. } | Error::DuplicateItems { .. } => {
            ("InputError", None, None)
        }
        Error::Diverged(_) => ("DivergedError", None, None),
        Error::Io { path, .. } => ("IoError", Some(path.as_path()), None),
        Error::Interrupted(_) => return PyKeyboardInterrupt::new_err(e.one_line()),
        Error::Tensor(_) | Error::Internal(_) => ("InternalError", None, None),
    };
    let raised = (|| -> PyResult<PyErr> {
        let cls = py.import("iisan.errors")?.getattr(class)?;
        let value = cls.call1((e.one_line(),))?;
        value.setattr("path", path.map(|p| p.display().to_string()))?;
        value.setattr("line", line)?;
        value.setattr("exit_code", e.exit_code())?;
        Ok(PyErr::from_value(value))
    })();
    raised.unwrap_or_else(|err| err)
}

/// An `iisan.errors.InputError` with `msg`: a Python argument the library cannot take.
pub(crate) fn input(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    to_py(py, Error::Input(msg.into()))
}
