//! A run's catalogue at scale from Python: its ANN index built (`iisan.build_index`) and the
//! items added since folded into its base (`iisan.compact_items`).

use std::path::PathBuf;

use pyo3::prelude::*;

use iisan::api::{self, AnnParams, Storage};

use crate::convert::{named, to_python};
use crate::driver::drive;

/// Build the run's ANN index (see `iisan.build_index`); returns {"items", "seconds", "bytes"}.
#[pyfunction]
#[pyo3(signature = (run, connectivity = None, expansion_add = None, expansion_search = None, candidates = None, storage = None, threads = 0, progress = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_index<'py>(
    py: Python<'py>,
    run: PathBuf,
    connectivity: Option<usize>,
    expansion_add: Option<usize>,
    expansion_search: Option<usize>,
    candidates: Option<usize>,
    storage: Option<&str>,
    threads: usize,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let d = AnnParams::default();
    let storage: Storage = match storage {
        Some(s) => named(py, "storage", s)?,
        None => d.storage,
    };
    let params = AnnParams {
        connectivity: connectivity.unwrap_or(d.connectivity),
        expansion_add: expansion_add.unwrap_or(d.expansion_add),
        expansion_search: expansion_search.unwrap_or(d.expansion_search),
        candidates: candidates.unwrap_or(d.candidates),
        storage,
    };
    let r = drive(py, progress, move |rep| {
        api::build_index(&run, &params, threads, &rep)
    })?;
    let v = serde_json::json!({"items": r.items, "seconds": r.seconds, "bytes": r.bytes});
    to_python(py, &v)
}

/// Fold the items added since into the base (see `iisan.compact_items`); returns
/// {"items", "folded", "indexed"}.
#[pyfunction]
#[pyo3(signature = (run, threads = 0, progress = None))]
pub(crate) fn compact_items<'py>(
    py: Python<'py>,
    run: PathBuf,
    threads: usize,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let r = drive(py, progress, move |rep| {
        api::compact_items(&run, threads, &rep)
    })?;
    let v = serde_json::json!({"items": r.items, "folded": r.folded, "indexed": r.indexed});
    to_python(py, &v)
}
