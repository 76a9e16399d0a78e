//! What the server holds: the served model behind a swappable pointer, the compute batcher,
//! the writer (the lazily opened item embedder, which serialises every write: items added,
//! grouped in `super::adds`; reloads; follows), the concurrency limit and the metrics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::Semaphore;

use super::ServeOptions;
use super::adds::{Additions, Writes, blocking};
use super::batcher::Batcher;
use super::metrics::Metrics;
use crate::deploy::new_items::NewItem;
use crate::error::Result;
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
    /// The writer and the item additions waiting for it.
    additions: Additions,
    /// The compute thread.
    pub batcher: Batcher,
    /// Requests admitted at once (429 beyond).
    pub limit: Arc<Semaphore>,
    /// Counters and histograms.
    pub metrics: Arc<Metrics>,
    /// The limits.
    pub opts: ServeOptions,
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
            additions: Additions::default(),
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
        let mut writer = self.additions.writer.lock().await;
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
        let _writer = self.additions.writer.lock().await;
        let (current, run) = (self.current(), self.run.clone());
        let next = blocking(move || match current.catalogue().refresh(&run)? {
            Some(cat) => current.with_catalogue(cat).map(Some),
            None => Ok(None),
        })
        .await?;
        Ok(next.map(|m| self.swap(m).num_items()))
    }
}

impl AppState {
    /// Embed `items`, append them to the run's catalogue and serve it (grouped with the
    /// additions waiting meanwhile: `super::adds`).
    pub async fn add_items(self: &Arc<Self>, items: Vec<NewItem>) -> Result<Arc<ServedModel>> {
        super::adds::add(self, items).await
    }
}

impl Writes for AppState {
    fn run(&self) -> &Path {
        &self.run
    }
    fn current(&self) -> Arc<ServedModel> {
        AppState::current(self)
    }
    fn swap(&self, model: ServedModel) -> Arc<ServedModel> {
        AppState::swap(self, model)
    }
    fn additions(&self) -> &Additions {
        &self.additions
    }
    fn max_batch(&self) -> usize {
        self.opts.max_batch
    }
}
