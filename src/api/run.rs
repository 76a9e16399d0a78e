//! A run directory opened for use: its configuration and summary, and the trained model that
//! ranks items for histories, embeds users and items, takes new items and is evaluated again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use super::evaluation::{self, EvalOptions, Evaluation};
use super::on_compute_pool;
use crate::catalogue::SearchMode;
use crate::config::{Config, Plan};
use crate::data::image::MissingImage;
use crate::deploy::new_items::{ItemEmbedder, NewItem, add_items};
use crate::error::{Error, Result};
use crate::model::{Method, Scored, ServedModel};
use crate::nn::DeviceSpec;
use crate::run::Summary;
use crate::run::finished::{
    FinishedRun, open_finished, open_served, read_epochs, read_plan, read_summary,
};
use crate::run::summary::EpochRecord;

/// A row-major `f32` matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f32>,
}

/// What [`Run::add_items`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedItems {
    /// Items added.
    pub added: usize,
    /// Items in the catalogue now.
    pub total: usize,
    /// Seconds the towers and the append took.
    pub seconds: f64,
    /// The towers the items went through, as `modality path`.
    pub towers: Vec<String>,
}

/// A run directory opened for use. A finished run (`summary.json` present) answers every
/// query; an interrupted one (its partial directory) has a configuration and epochs, and its
/// queries are an error saying to resume it.
///
/// Item rows are stable: row `r` (1-based; 0 is padding) names the same item for the life of
/// the directory, since items are only ever appended. A `Run` is `Send + Sync`: threads can
/// rank at once while another adds items (each query sees the catalogue before or after the
/// addition, never a mix).
pub struct Run {
    dir: PathBuf,
    plan: Plan,
    summary: Option<Summary>,
    served: RwLock<Option<Arc<ServedModel>>>,
    embedder: Mutex<Option<ItemEmbedder>>,
    finished: Mutex<Option<Arc<FinishedRun>>>,
}

impl Run {
    /// Open the run directory `dir`: a finished run (`summary.json`), or an interrupted one
    /// (`config.toml` and `run.lock`, no summary).
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// let run = iisan::Run::open("runs/iisan-scientific".as_ref())?;
    /// println!("{} items of width {}", run.num_items()?, run.dim());
    /// # Ok(())
    /// # }
    /// ```
    pub fn open(dir: &Path) -> Result<Run> {
        Run::open_with(dir, SearchMode::Auto)
    }

    /// [`Run::open`], ranking by `mode`: through the run's ANN index when it has one
    /// ([`SearchMode::Auto`]), or every item exactly ([`SearchMode::Exact`]).
    pub fn open_with(dir: &Path, mode: SearchMode) -> Result<Run> {
        let finished = dir.join("summary.json").exists();
        if !finished && !dir.join("run.lock").exists() {
            return Err(Error::file(
                &dir.join("summary.json"),
                "missing: not a finished run (nor an interrupted one: no run.lock)",
            ));
        }
        let plan = read_plan(dir)?;
        let (summary, served) = if finished {
            (
                Some(read_summary(dir)?),
                Some(Arc::new(open_served(dir, mode)?)),
            )
        } else {
            (None, None)
        };
        Ok(Run {
            dir: dir.to_path_buf(),
            plan,
            summary,
            served: RwLock::new(served),
            embedder: Mutex::new(None),
            finished: Mutex::new(None),
        })
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the run finished (an interrupted run resumes with [`super::resume`]).
    pub fn is_finished(&self) -> bool {
        self.summary.is_some()
    }

    /// The run's resolved configuration.
    pub fn config(&self) -> &Config {
        self.plan.cfg()
    }

    /// `summary.json` of a finished run.
    pub fn summary(&self) -> Option<&Summary> {
        self.summary.as_ref()
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.plan.cfg().model.method
    }

    /// The method as tables show it (`id`, `iisan:text`, `lora:text+image`, ...).
    pub fn method_label(&self) -> String {
        self.plan.cfg().method_label()
    }

    /// The width `d` of user and item embeddings.
    pub fn dim(&self) -> usize {
        self.plan.cfg().model.user.dim
    }

    /// The epochs trained so far (`metrics.jsonl`), in order.
    pub fn epochs(&self) -> Result<Vec<EpochRecord>> {
        read_epochs(&self.dir)
    }

    /// The served model, or the error an interrupted run answers.
    fn served(&self) -> Result<Arc<ServedModel>> {
        let guard = self.served.read().unwrap_or_else(|e| e.into_inner());
        guard.clone().ok_or_else(|| {
            Error::file(
                &self.dir,
                "the run did not finish; resume it first (`iisan train --resume`, iisan.resume)",
            )
        })
    }

    /// Items in the catalogue (padding not counted).
    pub fn num_items(&self) -> Result<usize> {
        Ok(self.served()?.catalogue().num_items())
    }

    /// The item ids in row order: `item_ids()[r - 1]` is row `r`'s.
    pub fn item_ids(&self) -> Result<Vec<String>> {
        Ok(self.served()?.catalogue().ids())
    }

    /// The id of item row `row` (1-based), if there is one.
    pub fn item_id(&self, row: u32) -> Option<String> {
        let served = self.served().ok()?;
        let cat = served.catalogue();
        (row >= 1 && (row as usize) <= cat.num_items()).then(|| cat.key(row).to_string())
    }

    /// The rows of the item ids `history` (oldest first); every unknown id is named in one
    /// error.
    pub fn rows<S: AsRef<str>>(&self, history: &[S]) -> Result<Vec<u32>> {
        let keys: Vec<&str> = history.iter().map(AsRef::as_ref).collect();
        self.served()?.rows(&keys)
    }

    /// The rows of each history, an error naming the history (1-based) and its unknown ids.
    fn rows_of<H: AsRef<[S]>, S: AsRef<str>>(&self, histories: &[H]) -> Result<Vec<Vec<u32>>> {
        let served = self.served()?;
        histories
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let keys: Vec<&str> = h.as_ref().iter().map(AsRef::as_ref).collect();
                if keys.is_empty() {
                    return Err(Error::Input(format!("history {} is empty", i + 1)));
                }
                served.rows(&keys).map_err(|e| e.in_history(i + 1))
            })
            .collect()
    }

    /// The `k` best items for each history of item ids (oldest first; the user encoder reads
    /// the last `data.options.max_seq_len`), best first, ties to the lower row; with
    /// `exclude_history` the history's items are left out. A score is the dot product of the
    /// user state and the item embedding, as evaluation ranks them.
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// let run = iisan::Run::open("runs/iisan-scientific".as_ref())?;
    /// let top = run.recommend(&[vec!["B00A", "B00B"], vec!["B00C"]], 10, true)?;
    /// for s in &top[1] {
    ///     println!("{} {:.4}", run.item_id(s.item).unwrap(), s.score);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn recommend<H: AsRef<[S]>, S: AsRef<str>>(
        &self,
        histories: &[H],
        k: usize,
        exclude_history: bool,
    ) -> Result<Vec<Vec<Scored>>> {
        self.recommend_rows(&self.rows_of(histories)?, k, exclude_history)
    }

    /// [`Run::recommend`] for histories given as item rows.
    pub fn recommend_rows(
        &self,
        histories: &[Vec<u32>],
        k: usize,
        exclude_history: bool,
    ) -> Result<Vec<Vec<Scored>>> {
        if k == 0 {
            return Err(Error::Input("k must be at least 1".into()));
        }
        let served = self.served()?;
        let items = served.catalogue().num_items();
        if k > items {
            let msg = format!("k = {k} is more than the catalogue's {items} items");
            return Err(Error::Input(msg));
        }
        check_rows(histories, items + 1)?;
        served.recommend(histories, k, exclude_history)
    }

    /// The user state of each history of item ids: `[histories.len(), d]`, the vectors
    /// [`Run::recommend`] scores items with.
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// let run = iisan::Run::open("runs/iisan-scientific".as_ref())?;
    /// let users = run.user_embeddings(&[vec!["B00A", "B00B"]])?;
    /// assert_eq!((users.rows, users.cols), (1, run.dim()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn user_embeddings<H: AsRef<[S]>, S: AsRef<str>>(&self, histories: &[H]) -> Result<Matrix> {
        let rows = self.rows_of(histories)?;
        let served = self.served()?;
        let data = served.user_embeddings(&rows)?;
        Ok(Matrix {
            rows: rows.len(),
            cols: self.dim(),
            data,
        })
    }

    /// The item embedding matrix `[N, d]`: row `i` is the item `item_ids()[i]` (the padding
    /// row left out); the values of `items.safetensors`.
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// let run = iisan::Run::open("runs/iisan-scientific".as_ref())?;
    /// let items = run.item_embeddings()?;
    /// let ids = run.item_ids()?;
    /// let first = &items.data[..items.cols]; // the embedding of ids[0]
    /// println!("{} {:?}", ids[0], &first[..4]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn item_embeddings(&self) -> Result<Matrix> {
        let served = self.served()?;
        let cat = served.catalogue();
        let n = cat.num_items();
        let data = cat.to_vec().split_off(cat.dim());
        Ok(Matrix {
            rows: n,
            cols: self.dim(),
            data,
        })
    }

    /// Embed `items` with the run's model (its frozen towers and trained side network or tuned
    /// towers; no retraining) and append them to the catalogue, so that the next queries rank
    /// them. `missing_images` overrides the run's `model.towers.missing_images`. An ID run, a
    /// known or repeated id, an empty title or an undecodable image is an error, and nothing is
    /// written.
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// use iisan::api::NewItem;
    /// let run = iisan::Run::open("runs/iisan-synthetic".as_ref())?;
    /// let item = NewItem {
    ///     key: "NEW-1".into(),
    ///     title: "a lamp for the desk".into(),
    ///     image: Some(std::fs::read("lamp.png").unwrap()),
    /// };
    /// let added = run.add_items(&[item], None)?;
    /// println!("{} items now", added.total);
    /// # Ok(())
    /// # }
    /// ```
    pub fn add_items(
        &self,
        items: &[NewItem],
        missing_images: Option<MissingImage>,
    ) -> Result<AddedItems> {
        let served = self.served()?;
        let t0 = Instant::now();
        let mut guard = self.embedder.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(ItemEmbedder::open(&self.dir)?);
        }
        let embedder = guard.as_mut().expect("opened above");
        embedder.missing_images =
            missing_images.unwrap_or(self.plan.cfg().model.towers.missing_images);
        let next = add_items(&self.dir, served.catalogue(), embedder, items)?;
        let towers = embedder
            .towers()
            .iter()
            .map(|t| format!("{} {}", t.modality, t.path.display()))
            .collect();
        let total = next.num_items();
        let next = served.with_catalogue(next)?;
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(next));
        Ok(AddedItems {
            added: items.len(),
            total,
            seconds: t0.elapsed().as_secs_f64(),
            towers,
        })
    }

    /// The test metrics of the best checkpoint, as training reported them (the dataset of
    /// `data.dir`, relative to the working directory, must be the one trained on), on a pool
    /// of the threads the run trained with.
    ///
    /// ```no_run
    /// # fn main() -> iisan::Result<()> {
    /// use iisan::api::EvalOptions;
    /// use iisan::eval::{Mask, Metric};
    /// let run = iisan::Run::open("runs/iisan-scientific".as_ref())?;
    /// let o = EvalOptions { ks: Some(vec![10, 20]), ..Default::default() };
    /// let all = &run.evaluate(&o)?.groups[0];
    /// println!("HR@20 {:.4}", all.metrics.get(Mask::History).get(Metric::Hr(20)));
    /// # Ok(())
    /// # }
    /// ```
    pub fn evaluate(&self, o: &EvalOptions) -> Result<Evaluation> {
        let run = self.finished(o.device)?;
        let threads = run.summary.efficiency.threads;
        let served = self.served()?;
        let ann = (!o.exact && served.catalogue().ann().is_some()).then_some(&*served);
        on_compute_pool(threads, || evaluation::evaluate(&run, ann, o))
    }

    /// The run opened for evaluation on `device` (the one of its training when `None`, kept
    /// for the next call).
    fn finished(&self, device: Option<DeviceSpec>) -> Result<Arc<FinishedRun>> {
        self.served()?;
        Ok(match device {
            Some(d) => Arc::new(open_finished(&self.dir, Some(d))?),
            None => {
                let mut guard = self.finished.lock().unwrap_or_else(|e| e.into_inner());
                match &*guard {
                    Some(r) => r.clone(),
                    None => guard
                        .insert(Arc::new(open_finished(&self.dir, None)?))
                        .clone(),
                }
            }
        })
    }
}

/// Every history non-empty and every row an item (`1..rows`).
fn check_rows(histories: &[Vec<u32>], rows: usize) -> Result<()> {
    for (i, h) in histories.iter().enumerate() {
        if h.is_empty() {
            return Err(Error::Input(format!("history {} is empty", i + 1)));
        }
        if let Some(r) = h.iter().find(|&&r| r == 0 || r as usize >= rows) {
            return Err(Error::Input(format!(
                "history {}: row {r} is not an item row (1..={})",
                i + 1,
                rows - 1
            )));
        }
    }
    Ok(())
}
