//! Where a training run's time goes: wall seconds accumulated per named phase (batch building,
//! cache gather, SAN paths, heads, user encoder, loss, backward, optimiser, evaluation). The CPU
//! backend is synchronous, so a phase's wall time is its compute time.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Accumulated seconds per phase, in first-seen order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// (phase, seconds, calls).
    pub phases: Vec<(String, f64, u64)>,
}

impl Profile {
    /// Add `seconds` to `phase`.
    pub fn add(&mut self, phase: &str, seconds: f64) {
        self.accumulate(phase, seconds, 1);
    }

    /// Add every phase of `other` (seconds and calls) into these.
    pub fn merge(&mut self, other: &Profile) {
        for (phase, seconds, calls) in &other.phases {
            self.accumulate(phase, *seconds, *calls);
        }
    }

    fn accumulate(&mut self, phase: &str, seconds: f64, calls: u64) {
        match self.phases.iter_mut().find(|(p, _, _)| p == phase) {
            Some(e) => {
                e.1 += seconds;
                e.2 += calls;
            }
            None => self.phases.push((phase.to_string(), seconds, calls)),
        }
    }

    /// Run `f`, charging its wall time to `phase`.
    pub fn time<T>(&mut self, phase: &str, f: impl FnOnce() -> T) -> T {
        let t0 = Instant::now();
        let out = f();
        self.add(phase, t0.elapsed().as_secs_f64());
        out
    }

    /// Seconds of `phase` (0 if never seen).
    pub fn seconds(&self, phase: &str) -> f64 {
        self.phases
            .iter()
            .find(|(p, _, _)| p == phase)
            .map_or(0.0, |e| e.1)
    }

    /// Total seconds over all phases.
    pub fn total(&self) -> f64 {
        self.phases.iter().map(|e| e.1).sum()
    }

    /// A Markdown table: phase, seconds, share of the total, calls.
    pub fn table(&self) -> String {
        let total = self.total().max(f64::MIN_POSITIVE);
        let mut s = String::from("| phase | seconds | share | calls |\n|---|---|---|---|\n");
        for (p, secs, n) in &self.phases {
            s.push_str(&format!(
                "| {p} | {secs:.2} | {:.1} % | {n} |\n",
                100.0 * secs / total
            ));
        }
        s.push_str(&format!("| total | {total:.2} | 100 % | |\n"));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_per_phase_in_order() {
        let mut p = Profile::default();
        p.add("a", 1.0);
        p.add("b", 3.0);
        p.add("a", 1.0);
        assert_eq!(p.seconds("a"), 2.0);
        assert_eq!(p.total(), 5.0);
        assert_eq!(p.phases[0], ("a".to_string(), 2.0, 2));
        // shares: a 2/5 = 40 %, b 3/5 = 60 %
        let t = p.table();
        assert!(t.contains("| a | 2.00 | 40.0 % | 2 |"), "{t}");
        assert!(t.contains("| b | 3.00 | 60.0 % | 1 |"), "{t}");
        assert_eq!(p.time("c", || 7), 7);
        assert_eq!(p.phases.len(), 3);
    }
}
