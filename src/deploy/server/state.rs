//! What the server holds: the served model behind a swappable pointer, the compute batcher,
//! the lazily opened item embedder (which also serialises every write: items added, reloads),
//! the concurrency limit and the metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, Semaphore};

use super::ServeOptions;
use super::batcher::Batcher;
use super::metrics::Metrics;
use crate::deploy::new_items::{ItemEmbedder, NewItem, add_items};
use crate::error::{Error, Result};
use crate::model::ServedModel;
use crate::provenance::TowerRecord;
use crate::run::finished::{open_served, read_plan, read_towers};
use crate::scorer::Scorer;

/// What the served run is, re-read with the model on every reload.
#[derive(Debug)]
pub struct RunFacts {
    /// The run's method name.
    pub method: String,
    /// The towers the run recorded (empty for `id`).
    pub towers: Vec<TowerRecord>,
}

impl RunFacts {
    fn read(run: &Path) -> Result<RunFacts> {
        let plan = read_plan(run)?;
        Ok(RunFacts {
            method: plan.cfg().model.method.name().to_string(),
            towers: read_towers(run)?,
        })
    }
}

/// The server's state, shared by every request.
pub struct AppState {
    /// The run directory served.
    pub run: PathBuf,
    facts: RwLock<Arc<RunFacts>>,
    model: RwLock<Arc<ServedModel>>,
    generation: AtomicU64,
    writer: Mutex<Option<Arc<ItemEmbedder>>>,
    /// The compute thread.
    pub batcher: Batcher,
    /// Requests admitted at once (429 beyond).
    pub limit: Arc<Semaphore>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The limits.
    pub opts: ServeOptions,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("worker thread failed: {e}")))?
}

impl AppState {
    /// Open run directory `run` for serving.
    pub fn open(run: &Path, opts: ServeOptions) -> Result<AppState> {
        let facts = RunFacts::read(run)?;
        let model = open_served(run, opts.search)?;
        let metrics = Arc::new(Metrics::new());
        metrics.show(&model);
        Ok(AppState {
            run: run.to_path_buf(),
            facts: RwLock::new(Arc::new(facts)),
            model: RwLock::new(Arc::new(model)),
            generation: AtomicU64::new(1),
            writer: Mutex::new(None),
            batcher: Batcher::start(opts.batch_rows, opts.compute_threads)?,
            limit: Arc::new(Semaphore::new(opts.max_concurrent)),
            metrics,
            opts,
        })
    }

    /// The model requests admitted now are answered with.
    pub fn current(&self) -> Arc<ServedModel> {
        self.model.read().expect("model lock").clone()
    }

    /// The served run's method and towers.
    pub fn facts(&self) -> Arc<RunFacts> {
        self.facts.read().expect("facts lock").clone()
    }

    /// How many models have been loaded (1 at start).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn swap(&self, model: ServedModel) -> Arc<ServedModel> {
        let model = Arc::new(model);
        self.metrics.show(&model);
        *self.model.write().expect("model lock") = model.clone();
        self.generation.fetch_add(1, Ordering::SeqCst);
        model
    }

    /// Re-read the run directory (user encoder and item matrix together, its method and
    /// towers) and swap it in; requests already admitted finish on the old model. The item
    /// embedder is dropped, so the next items added are embedded with the towers the run
    /// records now. On an error the old model stays.
    pub async fn reload(&self) -> Result<Arc<ServedModel>> {
        let mut writer = self.writer.lock().await;
        let (run, mode) = (self.run.clone(), self.opts.search);
        let (facts, model) =
            blocking(move || Ok((RunFacts::read(&run)?, open_served(&run, mode)?))).await?;
        *writer = None;
        *self.facts.write().expect("facts lock") = Arc::new(facts);
        Ok(self.swap(model))
    }

    /// Serve the run's catalogue as it is now on disk, if it changed (a replica following a
    /// writer); returns the items now served, or `None` when nothing changed.
    pub async fn follow(&self) -> Result<Option<usize>> {
        let _writer = self.writer.lock().await;
        let (current, run) = (self.current(), self.run.clone());
        let next = blocking(move || match current.catalogue().refresh(&run)? {
            Some(cat) => current.with_catalogue(cat).map(Some),
            None => Ok(None),
        })
        .await?;
        Ok(next.map(|m| self.swap(m).num_items()))
    }

    /// Embed `items`, append them to the run's catalogue and serve it.
    pub async fn add_items(&self, items: Vec<NewItem>) -> Result<Arc<ServedModel>> {
        let mut writer = self.writer.lock().await;
        let embedder = match writer.as_ref() {
            Some(e) => e.clone(),
            None => {
                let run = self.run.clone();
                // a run that cannot embed items (the id method, no recorded towers, a changed
                // tower) makes the request unprocessable, not the server faulty
                let opened = blocking(move || ItemEmbedder::open(&run)).await;
                let e = Arc::new(opened.map_err(|e| Error::Input(e.to_string()))?);
                *writer = Some(e.clone());
                e
            }
        };
        // ids the served catalogue already has are refused before the towers run; the
        // append checks again against the catalogue on disk, under its lock
        let current = self.current();
        let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
        current.catalogue().check_new_keys(&keys)?;
        let run = self.run.clone();
        let model = blocking(move || {
            let next = add_items(&run, current.catalogue(), &embedder, &items)?;
            current.with_catalogue(next)
        })
        .await?;
        Ok(self.swap(model))
    }
}
