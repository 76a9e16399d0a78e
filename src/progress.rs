//! What the library reports while it works, and how a caller stops it: training, encoding and
//! imports never print; they tell a [`Progress`] what is going on (a task of so many steps,
//! items or bytes; a finished epoch; a line for the user) and ask it, between steps, whether to
//! stop. The `iisan` binary draws these as terminal bars; the Python package hands them to a
//! callback or a tqdm bar; [`Silent`] ignores them.
//!
//! A stop asked for through [`Progress::cancelled`] ends the task with [`Error::Interrupted`]
//! at its next step boundary, leaving what it wrote as an interrupted run (or a partial cache)
//! that resumes to the uninterrupted result.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What a task counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Training steps (batches).
    Steps,
    /// Items (titles or images through a tower).
    Items,
    /// Bytes of an input file.
    Bytes,
}

impl Unit {
    /// `steps`, `items` or `bytes`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Steps => "steps",
            Unit::Items => "items",
            Unit::Bytes => "bytes",
        }
    }
}

/// One training epoch's outcome, as reported when it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochEnd {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over its steps.
    pub loss: f64,
    /// Training steps taken.
    pub steps: usize,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Seconds of validation (0 without validation).
    pub eval_seconds: f64,
    /// The validation selection metric's name, mask and value (`None`: no validation).
    pub valid: Option<(String, String, f64)>,
    /// Whether this epoch is the best so far (its parameters were saved).
    pub improved: bool,
}

/// Receives a long task's progress. Every method has a do-nothing default. Calls may come from
/// any thread (an import's reader thread counts bytes), one task at a time: `start`, any number
/// of `advance` and `message`, then `finish`.
pub trait Progress: Send + Sync {
    /// A task named `label` of `total` units starts, `done` of them already done (a resumed
    /// encode).
    fn start(&self, label: &str, unit: Unit, total: u64, done: u64) {
        let _ = (label, unit, total, done);
    }
    /// `n` more units of the current task are done.
    fn advance(&self, n: u64) {
        let _ = n;
    }
    /// A short status of the current task (e.g. the running loss).
    fn message(&self, msg: &str) {
        let _ = msg;
    }
    /// The current task ended.
    fn finish(&self) {}
    /// A training epoch ended.
    fn epoch(&self, end: &EpochEnd) {
        let _ = end;
    }
    /// A line for the user (what is being trained, a resumed run, a time profile).
    fn note(&self, line: &str) {
        let _ = line;
    }
    /// Whether the caller wants the task stopped: asked between steps.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Ignores everything, never stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {}

/// A shared handle to a [`Progress`], held by options structs; [`Reporter::silent`] by
/// default.
#[derive(Clone)]
pub struct Reporter(Arc<dyn Progress>);

impl Reporter {
    /// Report to `p`.
    pub fn new(p: impl Progress + 'static) -> Reporter {
        Reporter(Arc::new(p))
    }

    /// Report to an already shared `p`.
    pub fn shared(p: Arc<dyn Progress>) -> Reporter {
        Reporter(p)
    }

    /// Report nothing.
    pub fn silent() -> Reporter {
        Reporter::new(Silent)
    }

    /// Start a task; it finishes when the returned [`Task`] is dropped or finished.
    pub fn task(&self, label: &str, unit: Unit, total: u64, done: u64) -> Task {
        self.0.start(label, unit, total, done);
        Task {
            to: self.clone(),
            open: true,
        }
    }

    /// [`Progress::epoch`].
    pub fn epoch(&self, end: &EpochEnd) {
        self.0.epoch(end)
    }

    /// [`Progress::note`].
    pub fn note(&self, line: &str) {
        self.0.note(line)
    }

    /// [`Error::Interrupted`] saying `what` (made only then) when the caller asked to stop.
    pub fn check(&self, what: impl FnOnce() -> String) -> Result<()> {
        if self.0.cancelled() {
            return Err(Error::Interrupted(what()));
        }
        Ok(())
    }
}

impl Default for Reporter {
    fn default() -> Self {
        Reporter::silent()
    }
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reporter")
    }
}

/// A running task: counts units and finishes once (on [`Task::finish`] or when dropped, so an
/// error ends the task too).
pub struct Task {
    to: Reporter,
    open: bool,
}

impl Task {
    /// `n` more units done.
    pub fn advance(&self, n: u64) {
        self.to.0.advance(n)
    }

    /// A short status.
    pub fn message(&self, msg: &str) {
        self.to.0.message(msg)
    }

    /// End the task.
    pub fn finish(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if std::mem::take(&mut self.open) {
            self.to.0.finish();
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Default)]
    struct Log {
        calls: Mutex<Vec<String>>,
        stop: AtomicBool,
    }

    impl Progress for Arc<Log> {
        fn start(&self, label: &str, unit: Unit, total: u64, done: u64) {
            let s = format!("start {label} {} {total} {done}", unit.name());
            self.calls.lock().unwrap().push(s);
        }
        fn advance(&self, n: u64) {
            self.calls.lock().unwrap().push(format!("advance {n}"));
        }
        fn finish(&self) {
            self.calls.lock().unwrap().push("finish".into());
        }
        fn cancelled(&self) -> bool {
            self.stop.load(Ordering::Relaxed)
        }
    }

    #[test]
    fn a_task_finishes_exactly_once_whether_finished_or_dropped() {
        let log = Arc::new(Log::default());
        let r = Reporter::new(log.clone());
        let t = r.task("epoch 1", Unit::Steps, 3, 0);
        t.advance(2);
        t.finish();
        {
            let _t = r.task("text", Unit::Items, 10, 4);
            // dropped here, as when an error leaves the loop early
        }
        let calls = log.calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                "start epoch 1 steps 3 0",
                "advance 2",
                "finish",
                "start text items 10 4",
                "finish"
            ]
        );
    }

    #[test]
    fn check_turns_a_cancel_into_an_interrupted_error() {
        let log = Arc::new(Log::default());
        let r = Reporter::new(log.clone());
        assert!(r.check(|| "training".into()).is_ok());
        log.stop.store(true, Ordering::Relaxed);
        let e = r.check(|| "training".into()).unwrap_err();
        assert!(
            matches!(e, Error::Interrupted(ref w) if w == "training"),
            "{e}"
        );
        assert_eq!(e.exit_code(), 130);
        assert!(Reporter::silent().check(|| "x".into()).is_ok());
    }
}
