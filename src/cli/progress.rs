//! Progress on the terminal: the library's reports ([`iisan::progress::Progress`]) drawn as
//! indicatif bars on stderr, epoch lines and notes printed above them.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

use iisan::progress::{EpochEnd, Progress, Reporter, Unit};

/// Terminal bars; at most one task runs at a time.
#[derive(Default)]
pub(crate) struct Bars {
    bar: Mutex<Option<ProgressBar>>,
}

/// Bars on stderr, or nothing with `quiet`.
pub(crate) fn reporter(quiet: bool) -> Reporter {
    if quiet {
        Reporter::silent()
    } else {
        Reporter::new(Bars::default())
    }
}

fn template(unit: Unit) -> &'static str {
    match unit {
        Unit::Steps => "{prefix:>10} [{bar:30}] {pos}/{len} steps {msg} {elapsed}<{eta}",
        Unit::Items => "{prefix:>6} [{bar:30}] {pos}/{len} items {per_sec} {elapsed}<{eta}",
        Unit::Bytes => "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {msg} {elapsed}<{eta}",
    }
}

impl Bars {
    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(pb) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            f(pb)
        }
    }

    /// `line` on stderr, above the bar when one is drawn.
    fn print(&self, line: &str) {
        match &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(pb) => pb.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, unit: Unit, total: u64, done: u64) {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template(template(unit))
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        pb.set_position(done);
        pb.reset_eta();
        let old = self
            .bar
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(pb);
        if let Some(old) = old {
            old.finish_and_clear();
        }
    }

    fn advance(&self, n: u64) {
        self.with_bar(|pb| pb.inc(n));
    }

    fn message(&self, msg: &str) {
        self.with_bar(|pb| pb.set_message(msg.to_string()));
    }

    fn finish(&self) {
        let old = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(pb) = old {
            pb.finish_and_clear();
        }
    }

    fn epoch(&self, e: &EpochEnd) {
        self.print(&epoch_line(e));
    }

    fn note(&self, line: &str) {
        self.print(line);
    }
}

/// The line printed when an epoch ends.
pub(crate) fn epoch_line(e: &EpochEnd) -> String {
    let (epoch, t) = (e.epoch, e.train_seconds);
    match &e.valid {
        None => format!(
            "epoch {epoch:>3}  loss {:.4}  train {t:.1}s ({} steps; no evaluation)",
            e.loss, e.steps
        ),
        Some((metric, mask, score)) => format!(
            "epoch {epoch:>3}  loss {:.4}  valid {metric} {score:.4} (mask {mask})  train {t:.1}s  eval {:.1}s{}",
            e.loss,
            e.eval_seconds,
            if e.improved { "  *" } else { "" }
        ),
    }
}
