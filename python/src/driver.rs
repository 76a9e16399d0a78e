//! Long tasks (training, encoding, imports) run on a thread of their own while the calling
//! Python thread waits without the GIL, wakes every 50 ms to hand the task's progress events to
//! the Python callback, and checks for Ctrl-C. Python runs signal handlers on its main thread
//! only, and only when that thread runs Python code: a task running on the calling thread would
//! not notice Ctrl-C until it finished. Here a `KeyboardInterrupt` (or an exception raised by
//! the callback) asks the task to stop at its next step ([`iisan::progress::Progress::cancelled`])
//! and is raised once the task has stopped, so what it wrote is left resumable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use iisan::progress::{EpochEnd, Progress, Reporter, Unit};

use crate::errors::OrRaise;

/// One progress report, as sent from the task's thread.
enum Event {
    Start {
        label: String,
        unit: Unit,
        total: u64,
        done: u64,
    },
    Advance(u64),
    Message(String),
    Finish,
    Epoch(EpochEnd),
    Note(String),
}

/// The task's side: events into a channel, and the stop flag.
struct Relay {
    tx: Mutex<Sender<Event>>,
    stop: AtomicBool,
}

impl Relay {
    fn send(&self, e: Event) {
        // the receiver lives until the task has ended: a failed send cannot happen
        let _ = self.tx.lock().unwrap_or_else(|e| e.into_inner()).send(e);
    }
}

impl Progress for Relay {
    fn start(&self, label: &str, unit: Unit, total: u64, done: u64) {
        self.send(Event::Start {
            label: label.to_string(),
            unit,
            total,
            done,
        });
    }
    fn advance(&self, n: u64) {
        self.send(Event::Advance(n));
    }
    fn message(&self, msg: &str) {
        self.send(Event::Message(msg.to_string()));
    }
    fn finish(&self) {
        self.send(Event::Finish);
    }
    fn epoch(&self, end: &EpochEnd) {
        self.send(Event::Epoch(end.clone()));
    }
    fn note(&self, line: &str) {
        self.send(Event::Note(line.to_string()));
    }
    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// How long the waiting thread sleeps between looks at Ctrl-C.
const TICK: Duration = Duration::from_millis(50);

/// Run `work` on its own thread with a reporter whose events go to `callback` (called with one
/// dict per event on this thread; `None`: no calls), stopping it on Ctrl-C or on an exception
/// from the callback, which is then raised.
pub(crate) fn drive<T: Send>(
    py: Python<'_>,
    callback: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(Reporter) -> iisan::Result<T> + Send,
) -> PyResult<T> {
    let (tx, rx) = channel();
    let relay = Arc::new(Relay {
        tx: Mutex::new(tx),
        stop: AtomicBool::new(false),
    });
    let reporter = Reporter::shared(relay.clone());
    std::thread::scope(|s| {
        let task = s.spawn(move || work(reporter));
        let mut raised: Option<PyErr> = None;
        let mut rx = Some(rx);
        loop {
            // seen before the wait: every event of a finished task is in the channel by then
            let finished = task.is_finished();
            let (back, events) = py.detach(move || wait(rx.take().expect("receiver")));
            rx = Some(back);
            for e in events {
                if let (Some(cb), None) = (callback, &raised)
                    && let Err(err) = to_dict(py, e).and_then(|d| cb.call1((d,)))
                {
                    raised = Some(err);
                    relay.stop.store(true, Ordering::Relaxed);
                }
            }
            if raised.is_none()
                && let Err(err) = py.check_signals()
            {
                raised = Some(err);
                relay.stop.store(true, Ordering::Relaxed);
            }
            if finished {
                break;
            }
        }
        let out = task.join().expect("the task thread panicked");
        match (raised, out) {
            // Ctrl-C: Python's KeyboardInterrupt, saying where the task stopped
            (Some(err), Err(e @ iisan::Error::Interrupted(_)))
                if err.is_instance_of::<PyKeyboardInterrupt>(py) =>
            {
                Err(PyKeyboardInterrupt::new_err(e.one_line()))
            }
            // the caller's exception wins over what the task answered (an Interrupted, or an
            // outcome it reached before it saw the stop)
            (Some(err), _) => Err(err),
            (None, out) => out.or_raise(py),
        }
    })
}

/// Wait up to one tick for an event, then take every event that came.
fn wait(rx: Receiver<Event>) -> (Receiver<Event>, Vec<Event>) {
    let mut events = Vec::new();
    match rx.recv_timeout(TICK) {
        Ok(e) => events.push(e),
        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
    }
    events.extend(rx.try_iter());
    (rx, coalesce(events))
}

/// Consecutive advances summed into one event (a training step is a few milliseconds: the
/// callback is called once per tick, not once per step).
fn coalesce(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for e in events {
        match (out.last_mut(), e) {
            (Some(Event::Advance(n)), Event::Advance(m)) => *n += m,
            (_, e) => out.push(e),
        }
    }
    out
}

/// The dict a Python callback receives.
fn to_dict(py: Python<'_>, e: Event) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    match e {
        Event::Start {
            label,
            unit,
            total,
            done,
        } => {
            d.set_item("event", "start")?;
            d.set_item("label", label)?;
            d.set_item("unit", unit.name())?;
            d.set_item("total", total)?;
            d.set_item("done", done)?;
        }
        Event::Advance(n) => {
            d.set_item("event", "advance")?;
            d.set_item("n", n)?;
        }
        Event::Message(m) => {
            d.set_item("event", "message")?;
            d.set_item("message", m)?;
        }
        Event::Finish => d.set_item("event", "finish")?,
        Event::Epoch(e) => {
            d.set_item("event", "epoch")?;
            d.set_item("epoch", e.epoch)?;
            d.set_item("loss", e.loss)?;
            d.set_item("steps", e.steps)?;
            d.set_item("train_seconds", e.train_seconds)?;
            d.set_item("eval_seconds", e.eval_seconds)?;
            let (metric, mask, value) = match e.valid {
                Some((m, k, v)) => (Some(m), Some(k), Some(v)),
                None => (None, None, None),
            };
            d.set_item("metric", metric)?;
            d.set_item("mask", mask)?;
            d.set_item("valid", value)?;
            d.set_item("improved", e.improved)?;
        }
        Event::Note(line) => {
            d.set_item("event", "note")?;
            d.set_item("line", line)?;
        }
    }
    Ok(d)
}
