//! `iisan.Run`: a run directory opened for use from Python ([`iisan::Run`]).

use std::path::PathBuf;
use std::sync::RwLock;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};

use iisan::api::{EvalOptions, Matrix, NewItem, Scored, SearchMode};
use iisan::eval::{Breakdown, Mask};

use crate::convert::{image, named, strings, to_python};
use crate::errors::{OrRaise, input};

/// A run directory opened for use: a finished run ranks items for histories, embeds users and
/// items, takes new items without retraining and is evaluated again; an interrupted run has a
/// configuration and epochs (`iisan.resume` finishes it).
///
/// Safe to share between threads: every heavy call releases the GIL, so Python threads rank at
/// once, and a query sees the catalogue before or after a concurrent `add_items`.
#[pyclass(module = "iisan", name = "Run", frozen)]
pub(crate) struct Run {
    inner: iisan::Run,
    /// The item ids as Python strings, by row (index 0 the padding row's): made once, so the
    /// id arrays of `recommend` share them instead of copying each id.
    ids: RwLock<Vec<Py<PyString>>>,
}

impl Run {
    /// Wrap an opened run.
    pub(crate) fn new(inner: iisan::Run) -> Run {
        Run {
            inner,
            ids: RwLock::new(Vec::new()),
        }
    }

    /// The Python string of item row `row`, the table extended from the run when items were
    /// added since it was made (rows only ever grow).
    fn ids_upto(&self, py: Python<'_>, rows: usize) -> PyResult<Vec<Py<PyString>>> {
        {
            let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
            if ids.len() >= rows {
                return Ok(ids.clone_ref_all(py));
            }
        }
        let all = self.inner.item_ids().or_raise(py)?;
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        if ids.is_empty() {
            ids.push(PyString::new(py, "").unbind());
        }
        let have = ids.len() - 1;
        for k in &all[have.min(all.len())..] {
            ids.push(PyString::new(py, k).unbind());
        }
        Ok(ids.clone_ref_all(py))
    }
}

/// Clone a list of Python references (a reference count each).
trait CloneRefAll {
    fn clone_ref_all(&self, py: Python<'_>) -> Vec<Py<PyString>>;
}

impl CloneRefAll for Vec<Py<PyString>> {
    fn clone_ref_all(&self, py: Python<'_>) -> Vec<Py<PyString>> {
        self.iter().map(|s| s.clone_ref(py)).collect()
    }
}

/// A row-major matrix as a float32 array.
fn array<'py>(py: Python<'py>, m: Matrix) -> Bound<'py, PyArray2<f32>> {
    Array2::from_shape_vec((m.rows, m.cols), m.data)
        .expect("rows x cols values")
        .into_pyarray(py)
}

#[pymethods]
impl Run {
    /// Open the run directory `path`: a finished run, or an interrupted one (its partial
    /// directory `runs/.<name>.partial`). `exact`: rank every item even when the run has an
    /// ANN index (`iisan.build_index`); `probes`: lists of the index scanned per query instead
    /// of the number it was built with.
    #[staticmethod]
    #[pyo3(signature = (path, exact = false, probes = None))]
    fn open(py: Python<'_>, path: PathBuf, exact: bool, probes: Option<usize>) -> PyResult<Run> {
        let mode = SearchMode::of(exact, probes);
        let inner = py
            .detach(|| iisan::Run::open_with(&path, mode))
            .or_raise(py)?;
        Ok(Run::new(inner))
    }

    /// The run directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    /// Whether the run finished.
    #[getter]
    fn finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// The method as tables show it: `id`, `iisan:text`, `lora:text+image`, ...
    #[getter]
    fn method(&self) -> String {
        self.inner.method_label()
    }

    /// The width d of user and item embeddings.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The item ids in row order: row i of `item_embeddings()` is `item_ids[i]`.
    #[getter]
    fn item_ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let n = self.inner.num_items().or_raise(py)?;
        let ids = self.ids_upto(py, n + 1)?;
        PyList::new(py, &ids[1..=n])
    }

    /// The resolved configuration (config.toml) as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, self.inner.config())
    }

    /// summary.json as a dict (test metrics under both masks, efficiency figures), or None for
    /// an interrupted run.
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.inner.summary() {
            Some(s) => to_python(py, s),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// The epochs trained so far (metrics.jsonl): one dict each, with the training loss and
    /// the validation metrics.
    fn epochs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let e = self.inner.epochs().or_raise(py)?;
        to_python(py, &e)
    }

    /// The item embedding matrix: a float32 array (N, d), row i the item `item_ids[i]`, the
    /// values of items.safetensors (the padding row left out).
    fn item_embeddings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let m = py.detach(|| self.inner.item_embeddings()).or_raise(py)?;
        Ok(array(py, m))
    }

    /// The user state of each history: a float32 array (B, d), the vectors `recommend` scores
    /// items with. `histories`: B lists of item ids, oldest first.
    fn user_embeddings<'py>(
        &self,
        py: Python<'py>,
        histories: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let h = crate::convert::histories(py, histories)?;
        let m = py.detach(|| self.inner.user_embeddings(&h)).or_raise(py)?;
        Ok(array(py, m))
    }

    /// The k best items for each history (B lists of item ids, oldest first; the model reads
    /// the last max_seq_len). Returns `(ids, scores)`: an object array (B, k) of item ids, best
    /// first, and a float32 array (B, k) of their scores (the dot product of the user state and
    /// the item embedding; ties go to the earlier item). With `exclude_history` the history's
    /// own items are left out. A row with fewer than k items to give (a catalogue smaller than
    /// k) ends with None ids and NaN scores.
    #[pyo3(signature = (histories, k = 10, exclude_history = false))]
    fn recommend<'py>(
        &self,
        py: Python<'py>,
        histories: &Bound<'py, PyAny>,
        k: usize,
        exclude_history: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray2<f32>>)> {
        let h = crate::convert::histories(py, histories)?;
        let top = py
            .detach(|| self.inner.recommend(&h, k, exclude_history))
            .or_raise(py)?;
        let rows = top.iter().flatten().map(|s| s.item as usize).max();
        let ids = self.ids_upto(py, rows.map_or(0, |r| r + 1))?;
        id_and_score_arrays(py, &top, k, &ids)
    }

    /// Embed new items with the run's model (its frozen towers and trained side network, or
    /// its tuned towers; no retraining) and add them to the catalogue: the next
    /// `recommend` ranks them. `ids` and `titles`: lists of str; `images`: one per item, a
    /// path, the bytes of a PNG / JPEG / WebP file, a uint8 array (H, W, 3) or None (for runs
    /// whose model reads images). `missing_images`: "error" or "zero" (default: the run's).
    /// Returns the number of items in the catalogue. A known or repeated id, an empty title or
    /// an undecodable image raises InputError and nothing is added.
    #[pyo3(signature = (ids, titles, images = None, missing_images = None))]
    fn add_items(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        titles: &Bound<'_, PyAny>,
        images: Option<&Bound<'_, PyAny>>,
        missing_images: Option<&str>,
    ) -> PyResult<usize> {
        let ids = strings(py, "ids", ids)?;
        let titles = strings(py, "titles", titles)?;
        if titles.len() != ids.len() {
            return Err(input(
                py,
                format!("{} ids but {} titles", ids.len(), titles.len()),
            ));
        }
        let pictures = match images {
            None => vec![None; ids.len()],
            Some(obj) => {
                let list: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
                if list.len() != ids.len() {
                    return Err(input(
                        py,
                        format!("{} ids but {} images", ids.len(), list.len()),
                    ));
                }
                let mut out = Vec::with_capacity(list.len());
                for (i, x) in list.iter().enumerate() {
                    out.push(image(py, i, x)?);
                }
                out
            }
        };
        let missing = missing_images
            .map(|m| named(py, "missing_images", m))
            .transpose()?;
        let items: Vec<NewItem> = ids
            .into_iter()
            .zip(titles)
            .zip(pictures)
            .map(|((key, title), image)| NewItem { key, title, image })
            .collect();
        let added = py
            .detach(|| self.inner.add_items(&items, missing))
            .or_raise(py)?;
        Ok(added.total)
    }

    /// The test metrics of the best checkpoint, as `iisan eval --json` prints them: with
    /// `mask` "history" (the paper's) or "none" a dict {"HR@10": ..., "NDCG@10": ..., "MRR":
    /// ...}; with mask None both, {"history": {...}, "none": {...}}. `ks`: the cut-offs
    /// (default: the run's eval.ks). `cold_items`: a file of item ids (cold_items.txt of
    /// `iisan data split-cold`): the users are reported as groups {"all", "warm", "cold"}, each
    /// {"users": n, "history": {...}, "none": {...}}. `by`: "popularity", "history" or "cold"
    /// adds the groups of that breakdown ("head"/"torso"/"tail", "<=7"/"8-10"/"11+",
    /// "warm"/"cold"; those that are sets of items also carry "items": n). Reads the dataset
    /// the run was trained on (its data.dir, relative to the working directory).
    /// `exact`: the full ranking of every item even when the run has an ANN index (without
    /// it, a run with an index is evaluated on the lists it serves).
    #[pyo3(signature = (ks = None, mask = Some("history"), cold_items = None, device = None, by = None, exact = false))]
    #[allow(clippy::too_many_arguments)]
    fn evaluate<'py>(
        &self,
        py: Python<'py>,
        ks: Option<Vec<usize>>,
        mask: Option<&str>,
        cold_items: Option<PathBuf>,
        device: Option<&str>,
        by: Option<&str>,
        exact: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mask: Option<Mask> = mask.map(|m| named(py, "mask", m)).transpose()?;
        let by: Option<Breakdown> = by.map(|b| named(py, "by", b)).transpose()?;
        let device = device
            .map(|d| d.parse().map_err(|e: String| input(py, e)))
            .transpose()?;
        let o = EvalOptions {
            ks,
            cold_items: cold_items.clone(),
            by,
            device,
            exact,
        };
        let ev = py.detach(|| self.inner.evaluate(&o)).or_raise(py)?;
        if cold_items.is_some() || by.is_some() {
            let groups: serde_json::Map<String, serde_json::Value> = ev
                .groups
                .iter()
                .map(|g| {
                    let mut v = serde_json::json!({
                        "users": g.users,
                        "history": g.metrics.get(Mask::History),
                        "none": g.metrics.get(Mask::None),
                    });
                    if let Some(n) = g.items {
                        v["items"] = n.into();
                    }
                    (g.name.clone(), v)
                })
                .collect();
            return to_python(py, &groups);
        }
        let all = &ev.groups[0].metrics;
        match mask {
            Some(m) => to_python(py, all.get(m)),
            None => to_python(py, all),
        }
    }

    fn __repr__(&self) -> String {
        let state = if self.inner.is_finished() {
            "finished"
        } else {
            "interrupted"
        };
        format!(
            "iisan.Run({:?}, method={:?}, {state})",
            self.inner.dir().display().to_string(),
            self.inner.method_label()
        )
    }
}

/// The (B, k) arrays of ids (object) and scores (float32) of `recommend`, short rows padded
/// with None and NaN.
fn id_and_score_arrays<'py>(
    py: Python<'py>,
    top: &[Vec<Scored>],
    k: usize,
    ids: &[Py<PyString>],
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyArray2<f32>>)> {
    let b = top.len();
    let mut scores = Vec::with_capacity(b * k);
    let mut names: Vec<Py<PyAny>> = Vec::with_capacity(b * k);
    for row in top {
        for s in row {
            scores.push(s.score);
            names.push(ids[s.item as usize].clone_ref(py).into_any());
        }
        for _ in row.len()..k {
            scores.push(f32::NAN);
            names.push(py.None());
        }
    }
    let scores = Array2::from_shape_vec((b, k), scores).expect("b x k");
    let names = Array2::from_shape_vec((b, k), names).expect("b x k");
    Ok((names.into_pyarray(py).into_any(), scores.into_pyarray(py)))
}
