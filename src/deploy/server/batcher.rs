//! One compute thread that answers recommendation requests in micro-batches: requests queue
//! while a batch is computed, and the next batch takes every waiting request (up to
//! `max_rows` histories) through the user encoder and the item matrix in one matrix product
//! ([`ServedModel::answer`]). On two cores this keeps the async threads free for I/O and turns
//! many 1 x N products into one B x N product.
//!
//! Each job carries the model it was admitted with (an `Arc` taken when its ids were resolved),
//! so a reload never mixes an old user encoder with a new item matrix, and requests admitted
//! before a reload finish on the old model.

use std::sync::Arc;
use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::model::{Query, Scored, ServedModel};

/// A request's histories (item rows) with its options and where to send the answer.
struct Job {
    model: Arc<ServedModel>,
    histories: Vec<Vec<u32>>,
    k: usize,
    exclude_history: bool,
    reply: oneshot::Sender<Result<Vec<Vec<Scored>>>>,
}

/// The handle requests are sent through.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

impl Batcher {
    /// Start the compute thread; a batch holds at most `max_rows` histories (a single larger
    /// request is answered alone). The loop runs on a rayon pool of `threads` threads (the
    /// compute thread is its first worker), so the parallel parts of a product stay on those
    /// threads: with 1, nothing is handed to other threads at all.
    pub fn start(max_rows: usize, threads: usize) -> Result<Batcher> {
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("iisan-compute-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("cannot start the compute threads: {e}")))?;
        pool.spawn(move || work(rx, max_rows.max(1)));
        Ok(Batcher { tx })
    }

    /// The top `k` of each history under `model`.
    pub async fn recommend(
        &self,
        model: Arc<ServedModel>,
        histories: Vec<Vec<u32>>,
        k: usize,
        exclude_history: bool,
    ) -> Result<Vec<Vec<Scored>>> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            model,
            histories,
            k,
            exclude_history,
            reply,
        };
        self.tx
            .send(job)
            .map_err(|_| Error::Internal("the compute thread has stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("the compute thread dropped a request".into()))?
    }
}

/// The compute loop: block for one job, take every job already waiting (up to `max_rows`
/// histories), answer them per model, repeat until every sender is gone.
fn work(rx: mpsc::Receiver<Job>, max_rows: usize) {
    while let Ok(first) = rx.recv() {
        let mut rows = first.histories.len();
        let mut jobs = vec![first];
        while rows < max_rows {
            match rx.try_recv() {
                Ok(j) => {
                    rows += j.histories.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        while !jobs.is_empty() {
            // the jobs admitted with the same model as the first one go together
            let model = jobs[0].model.clone();
            let (same, rest): (Vec<Job>, Vec<Job>) = jobs
                .into_iter()
                .partition(|j| Arc::ptr_eq(&j.model, &model));
            jobs = rest;
            answer(&model, same);
        }
    }
}

fn answer(model: &ServedModel, jobs: Vec<Job>) {
    let queries: Vec<Query> = jobs
        .iter()
        .flat_map(|j| {
            j.histories.iter().map(|h| Query {
                history: h,
                k: j.k,
                exclude_history: j.exclude_history,
            })
        })
        .collect();
    match model.answer(&queries) {
        Ok(all) => {
            let mut all = all.into_iter();
            for j in jobs {
                let mine: Vec<Vec<Scored>> = all.by_ref().take(j.histories.len()).collect();
                let _ = j.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            let msg = e.to_string();
            for j in jobs {
                let _ = j.reply.send(Err(Error::Internal(msg.clone())));
            }
        }
    }
}
