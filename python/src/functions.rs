//! The module's functions: training, resuming, encoding (long tasks, run through
//! [`crate::driver::drive`] so that Ctrl-C stops them resumably) and the dataset tools.

use std::path::PathBuf;

use pyo3::prelude::*;

use iisan::Config;
use iisan::api::data::{self, AmazonOptions, DataOptions, Edition, RecboleOptions, SynthConfig};
use iisan::api::{self, EncodeJob, ReportOptions, TrainOptions};
use iisan::data::MissingTitle;
use iisan::efficiency::tpme::TpmeWeights;
use iisan::eval::{Breakdown, Mask};

use crate::convert::{named, to_python};
use crate::driver::drive;
use crate::errors::{OrRaise, input};
use crate::run::Run;

/// The configuration: a TOML file (`config_path`), a dict given as its JSON text
/// (`config_json`), or the defaults; then the `key=value` overrides.
fn config(
    py: Python<'_>,
    config_path: Option<PathBuf>,
    config_json: Option<&str>,
    overrides: Vec<String>,
) -> PyResult<Config> {
    match (config_path, config_json) {
        (Some(p), _) => Config::load(Some(&p), &overrides).or_raise(py),
        (None, Some(json)) => {
            let table: toml::Table = serde_json::from_str(json)
                .map_err(|e| input(py, format!("config: not a TOML-like dict: {e}")))?;
            let origin = std::path::Path::new("the config dict");
            Config::from_table(table, Some(origin), &overrides).or_raise(py)
        }
        (None, None) => Config::load(None, &overrides).or_raise(py),
    }
}

/// Train a configuration into a new run directory and return the finished run (see
/// `iisan.train`).
#[pyfunction]
#[pyo3(signature = (config_path = None, config_json = None, overrides = Vec::new(), progress = None, restart = false))]
pub(crate) fn train(
    py: Python<'_>,
    config_path: Option<PathBuf>,
    config_json: Option<&str>,
    overrides: Vec<String>,
    progress: Option<&Bound<'_, PyAny>>,
    restart: bool,
) -> PyResult<Run> {
    let cfg = config(py, config_path, config_json, overrides)?;
    let run = drive(py, progress, move |reporter| {
        let opts = TrainOptions {
            restart,
            progress: reporter,
        };
        api::train(cfg, &opts)
    })?;
    Ok(Run::new(run))
}

/// Continue an interrupted run to the uninterrupted result (see `iisan.resume`).
#[pyfunction]
#[pyo3(signature = (path, progress = None))]
pub(crate) fn resume(
    py: Python<'_>,
    path: PathBuf,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Run> {
    let run = drive(py, progress, move |reporter| api::resume(&path, &reporter))?;
    Ok(Run::new(run))
}

/// The preprocessing options.
fn prep(min_seq_len: usize, max_seq_len: usize, keep_missing_titles: bool) -> DataOptions {
    DataOptions {
        min_seq_len,
        max_seq_len,
        missing_title: if keep_missing_titles {
            MissingTitle::Empty
        } else {
            MissingTitle::Error
        },
    }
}

/// Run the frozen towers once over every item of a dataset into the hidden-state caches
/// (see `iisan.encode`).
#[pyfunction]
#[pyo3(signature = (dataset, out, text_model = None, image_model = None, dtype = "f32", batch = 32, max_tokens = 30, image_size = 224, missing_images = "error", device = "cpu", tower_dtype = "f32", pooling = None, shard = None, min_seq_len = 5, max_seq_len = 10, keep_missing_titles = false, progress = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    out: PathBuf,
    text_model: Option<PathBuf>,
    image_model: Option<PathBuf>,
    dtype: &str,
    batch: usize,
    max_tokens: usize,
    image_size: usize,
    missing_images: &str,
    device: &str,
    tower_dtype: &str,
    pooling: Option<&str>,
    shard: Option<&str>,
    min_seq_len: usize,
    max_seq_len: usize,
    keep_missing_titles: bool,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut job = EncodeJob::new(dataset, out);
    job.data_options = prep(min_seq_len, max_seq_len, keep_missing_titles);
    job.text_model = text_model;
    job.image_model = image_model;
    job.dtype = named(py, "dtype", dtype)?;
    job.batch = batch;
    job.max_tokens = max_tokens;
    job.image_size = image_size;
    job.missing_images = named(py, "missing_images", missing_images)?;
    job.device = device.parse().map_err(|e: String| input(py, e))?;
    job.tower_dtype = named(py, "tower_dtype", tower_dtype)?;
    job.pooling = pooling.map(|p| named(py, "pooling", p)).transpose()?;
    job.shard = shard
        .map(|s| s.parse().map_err(|e: String| input(py, e)))
        .transpose()?;
    let reports = drive(py, progress, move |reporter| {
        job.progress = reporter;
        api::encode(&job)
    })?;
    to_python(py, &reports)
}

/// A dataset's statistics after preprocessing (see `iisan.data.stats`).
#[pyfunction]
#[pyo3(signature = (dataset, min_seq_len = 5, max_seq_len = 10, keep_missing_titles = false))]
pub(crate) fn stats<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    min_seq_len: usize,
    max_seq_len: usize,
    keep_missing_titles: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let o = prep(min_seq_len, max_seq_len, keep_missing_titles);
    let s = py.detach(|| data::stats(&dataset, &o)).or_raise(py)?;
    to_python(py, &s)
}

/// Import Amazon Reviews 2023 or 2018 files (see `iisan.data.import_amazon2023`).
#[pyfunction]
#[pyo3(signature = (edition, reviews, meta, out, images = None, min_interactions = 5, max_users = None, seed = 42, skip_bad_lines = false, require_meta = false, progress = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn import_amazon<'py>(
    py: Python<'py>,
    edition: &str,
    reviews: PathBuf,
    meta: PathBuf,
    out: PathBuf,
    images: Option<PathBuf>,
    min_interactions: usize,
    max_users: Option<usize>,
    seed: u64,
    skip_bad_lines: bool,
    require_meta: bool,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let edition = match edition {
        "2023" => Edition::Amazon2023,
        "2018" => Edition::Amazon2018,
        e => return Err(input(py, format!("edition {e:?}: 2023 or 2018"))),
    };
    let mut o = AmazonOptions::new(edition);
    o.images = images;
    o.min_interactions = min_interactions;
    o.max_users = max_users;
    o.seed = seed;
    o.skip_bad_lines = skip_bad_lines;
    o.require_meta = require_meta;
    let r = drive(py, progress, move |reporter| {
        o.progress = reporter;
        data::import_amazon(&reviews, &meta, &out, &o)
    })?;
    to_python(py, &r)
}

/// Import RecBole atomic files (see `iisan.data.import_recbole`).
#[pyfunction]
#[pyo3(signature = (inter, out, item = None, title_field = "title", skip_bad_lines = false, progress = None))]
pub(crate) fn import_recbole<'py>(
    py: Python<'py>,
    inter: PathBuf,
    out: PathBuf,
    item: Option<PathBuf>,
    title_field: &str,
    skip_bad_lines: bool,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let title_field = title_field.to_string();
    let r = drive(py, progress, move |reporter| {
        let o = RecboleOptions {
            title_field,
            skip_bad_lines,
            progress: reporter,
        };
        data::import_recbole(&inter, item.as_deref(), &out, &o)
    })?;
    to_python(py, &r)
}

/// Write the embedded synthetic multimodal dataset (see `iisan.data.synth`); true when it was
/// written, false when `out` already held it.
#[pyfunction]
#[pyo3(signature = (out, users = None, items = None, seed = None, image_size = None, force = false))]
pub(crate) fn synth(
    py: Python<'_>,
    out: PathBuf,
    users: Option<usize>,
    items: Option<usize>,
    seed: Option<u64>,
    image_size: Option<u32>,
    force: bool,
) -> PyResult<bool> {
    let d = SynthConfig::default();
    let cfg = SynthConfig {
        users: users.unwrap_or(d.users),
        items: items.unwrap_or(d.items),
        seed: seed.unwrap_or(d.seed),
        image_size: image_size.unwrap_or(d.image_size),
        ..d
    };
    let w = py.detach(|| data::synth(&cfg, &out, force)).or_raise(py)?;
    Ok(matches!(w, data::Written::Created))
}

/// The cold-start version of a dataset (see `iisan.data.split_cold`).
#[pyfunction]
#[pyo3(signature = (dataset, out, frac = 0.1, seed = 2024))]
pub(crate) fn split_cold<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    out: PathBuf,
    frac: f64,
    seed: u64,
) -> PyResult<Bound<'py, PyAny>> {
    let r = py
        .detach(|| data::split_cold(&dataset, &out, frac, seed))
        .or_raise(py)?;
    to_python(py, &r)
}

/// The dataset as RecBole atomic files (see `iisan.data.export_recbole`).
#[pyfunction]
#[pyo3(signature = (dataset, out, min_seq_len = 5, max_seq_len = 10, keep_missing_titles = false))]
pub(crate) fn export_recbole<'py>(
    py: Python<'py>,
    dataset: PathBuf,
    out: PathBuf,
    min_seq_len: usize,
    max_seq_len: usize,
    keep_missing_titles: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let o = prep(min_seq_len, max_seq_len, keep_missing_titles);
    let r = py
        .detach(|| data::export_recbole(&dataset, &o, &out))
        .or_raise(py)?;
    to_python(py, &r)
}

/// Write the HTML report of finished runs (see `iisan.report`).
#[pyfunction]
#[pyo3(signature = (runs, out, mask = "history", weights = "0.45,0.1,0.45", breakdowns = true, progress = None))]
pub(crate) fn report(
    py: Python<'_>,
    runs: Vec<PathBuf>,
    out: PathBuf,
    mask: &str,
    weights: &str,
    breakdowns: bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let o = ReportOptions {
        mask: named::<Mask>(py, "mask", mask)?,
        weights: TpmeWeights::parse(weights).or_raise(py)?,
        by: if breakdowns {
            vec![Breakdown::Popularity, Breakdown::History, Breakdown::Cold]
        } else {
            Vec::new()
        },
    };
    drive(py, progress, move |reporter| {
        api::write_html_report(&runs, &out, &o, &reporter)
    })
}
