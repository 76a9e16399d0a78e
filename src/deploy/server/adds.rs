//! `POST /v1/items` under load: additions that arrive while another is being embedded are
//! grouped (a group commit). Each request joins the queue of pending additions and waits for
//! the writer; whoever takes the writer embeds every pending request's items in one pass of
//! the towers and appends them in one segment commit, then answers each request. The towers'
//! fixed cost per call (building them, reading the side network's weights) is paid once per
//! group instead of once per request, so under a steady stream of additions the queue drains
//! instead of growing.
//!
//! A request is answered as if alone: ids repeated across requests of a group refuse the
//! later request only, as do items the run cannot embed (checked before the towers run); when
//! the group's embedding or append fails all the same (one request's image does not decode,
//! say), each request of it is tried alone, so only the faulty one fails.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, oneshot};

use crate::deploy::new_items::{ItemEmbedder, NewItem, add_items};
use crate::error::{Error, Result};
use crate::model::ServedModel;

/// One request's items, waiting for the writer, and where its answer goes.
struct PendingAdd {
    id: u64,
    items: Vec<NewItem>,
    done: oneshot::Sender<Result<Arc<ServedModel>>>,
}

/// What the group commit needs of the server that holds it.
pub trait Writes: Send + Sync + 'static {
    /// The run directory served.
    fn run(&self) -> &std::path::Path;
    /// The model requests are answered with now.
    fn current(&self) -> Arc<ServedModel>;
    /// Serve `model` from now on.
    fn swap(&self, model: ServedModel) -> Arc<ServedModel>;
    /// The writer and the queue.
    fn additions(&self) -> &Additions;
    /// Items one group holds at most (a request's own limit).
    fn max_batch(&self) -> usize;
}

/// The writer (the item embedder, opened by the first addition, whose lock serialises every
/// write to the run: additions, reloads, follows) and the additions waiting for it.
#[derive(Default)]
pub struct Additions {
    /// The writer.
    pub writer: Mutex<Option<Arc<ItemEmbedder>>>,
    pending: std::sync::Mutex<Vec<PendingAdd>>,
}

/// Run `f` on tokio's blocking threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("worker thread failed: {e}")))?
}

/// Numbers pending additions.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A request's place in the queue: a request given up before its group was taken (its client
/// gone, its time out) leaves the queue, so that no later group adds its items.
struct Queued<'a> {
    additions: &'a Additions,
    id: u64,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        let mut pending = self.additions.pending.lock().expect("pending lock");
        pending.retain(|p| p.id != self.id);
    }
}

/// Embed `items`, append them to the run's catalogue and serve it (with the items of the
/// requests grouped with this one).
pub async fn add<S: Writes>(s: &Arc<S>, items: Vec<NewItem>) -> Result<Arc<ServedModel>> {
    // ids the served catalogue already has are refused before queueing; the append checks
    // again against the catalogue on disk, under its lock
    let keys: Vec<String> = items.iter().map(|i| i.key.clone()).collect();
    s.current().catalogue().check_new_keys(&keys)?;
    let (done, answer) = oneshot::channel();
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let additions = s.additions();
    let _queued = Queued { additions, id };
    (additions.pending.lock().expect("pending lock")).push(PendingAdd { id, items, done });
    // the group is committed by a task of its own: a request given up meanwhile does not stop
    // a commit that other requests wait for
    let state = Arc::clone(s);
    tokio::spawn(async move { commit_pending(&*state).await });
    answer
        .await
        .map_err(|_| Error::Internal("an item addition was dropped".into()))?
}

/// Take the writer, then the pending requests, and commit them (nothing when an earlier
/// holder took them all).
async fn commit_pending<S: Writes>(s: &S) {
    let mut writer = s.additions().writer.lock().await;
    let group = take_group(s);
    if group.is_empty() {
        return;
    }
    match embedder(s, &mut writer).await {
        Ok(e) => commit_group(s, e, group).await,
        Err(e) => {
            let msg = e.to_string();
            for p in group {
                let _ = p.done.send(Err(Error::Input(msg.clone())));
            }
        }
    }
}

/// The pending requests, oldest first, up to `max_batch` items (at least one request; the
/// rest wait for the next holder of the writer, which each of them will be in turn).
fn take_group<S: Writes>(s: &S) -> Vec<PendingAdd> {
    let mut pending = s.additions().pending.lock().expect("pending lock");
    let (mut n, mut take) = (0, 0);
    for p in pending.iter() {
        if take > 0 && n + p.items.len() > s.max_batch() {
            break;
        }
        n += p.items.len();
        take += 1;
    }
    pending.drain(..take).collect()
}

/// The item embedder held in `writer`, opened on first use. A run that cannot embed items
/// (the id method, no recorded towers, a changed tower) makes the request unprocessable, not
/// the server faulty.
async fn embedder<S: Writes>(
    s: &S,
    writer: &mut Option<Arc<ItemEmbedder>>,
) -> Result<Arc<ItemEmbedder>> {
    if let Some(e) = writer.as_ref() {
        return Ok(e.clone());
    }
    let run = s.run().to_path_buf();
    let opened = blocking(move || ItemEmbedder::open(&run)).await;
    let e = Arc::new(opened.map_err(|e| Error::Input(e.to_string()))?);
    *writer = Some(e.clone());
    Ok(e)
}

/// Embed and append `group` as one batch and answer each request; requests repeating ids
/// served or of an earlier request, or with items the run cannot embed, are refused alone,
/// and a batch that fails anyway (an image that does not decode) is retried request by
/// request.
async fn commit_group<S: Writes>(s: &S, embedder: Arc<ItemEmbedder>, group: Vec<PendingAdd>) {
    let served = s.current();
    let mut seen: HashSet<String> = HashSet::new();
    let mut ok = Vec::with_capacity(group.len());
    for p in group {
        let known = |k: &String| seen.contains(k) || served.catalogue().row_of(k).is_some();
        let again: Vec<String> = (p.items.iter().map(|i| &i.key))
            .filter(|k| known(k))
            .cloned()
            .collect();
        if !again.is_empty() {
            let _ = p.done.send(Err(Error::DuplicateItems { ids: again }));
        } else if let Err(e) = embedder.check(&p.items) {
            let _ = p.done.send(Err(e));
        } else {
            seen.extend(p.items.iter().map(|i| i.key.clone()));
            ok.push(p);
        }
    }
    let all: Vec<NewItem> = ok.iter().flat_map(|p| p.items.iter().cloned()).collect();
    match append(s, &embedder, all).await {
        Ok(model) => {
            for p in ok {
                let _ = p.done.send(Ok(model.clone()));
            }
        }
        Err(e) if ok.len() == 1 => {
            let _ = ok.pop().expect("one").done.send(Err(e));
        }
        Err(_) => {
            for p in ok {
                let r = append(s, &embedder, p.items).await;
                let _ = p.done.send(r);
            }
        }
    }
}

/// Embed `items`, append them to the catalogue on disk and serve it.
async fn append<S: Writes>(
    s: &S,
    embedder: &Arc<ItemEmbedder>,
    items: Vec<NewItem>,
) -> Result<Arc<ServedModel>> {
    let (current, run, embedder) = (s.current(), s.run().to_path_buf(), embedder.clone());
    let model = blocking(move || {
        let next = add_items(&run, current.catalogue(), &embedder, &items)?;
        current.with_catalogue(next)
    })
    .await?;
    Ok(s.swap(model))
}
