//! A run's catalogue at scale from Python: its ANN index built (`iisan.build_index`) and the
//! items added since folded into its base (`iisan.compact_items`).

use std::path::PathBuf;

use pyo3::prelude::*;

use iisan::api::{self, AnnParams, Storage};

use crate::convert::{named, to_python};
use crate::driver::drive;

/// Build the run's ANN index (see `iisan.build_index`); returns {"items", "lists", "seconds",
/// "bytes"}.
#[pyfunction]
#[pyo3(signature = (run, lists = None, probes = None, candidates = None, storage = None, threads = 0, progress = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_index<'py>(
    py: Python<'py>,
    run: PathBuf,
    lists: Option<usize>,
    probes: Option<usize>,
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
        lists: lists.unwrap_or(d.lists),
        probes: probes.unwrap_or(d.probes),
        candidates: candidates.unwrap_or(d.candidates),
        storage,
    };
    let r = drive(py, progress, move |rep| {
        api::build_index(&run, &params, threads, &rep)
    })?;
    let v = serde_json::json!({"items": r.items, "lists": r.lists, "seconds": r.seconds, "bytes": r.bytes});
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
