//! What a run costs: trainable and total parameters, seconds per training epoch, evaluation
//! time and peak memory (peak resident set size of the process on CPU).

use serde::{Deserialize, Serialize};

/// Peak resident set size of this process in MiB (`VmHWM` of `/proc/self/status`); `None`
/// where the platform does not expose it.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The efficiency figures of one run, as written to its summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Efficiency {
    /// Trainable parameters.
    pub trainable_params: usize,
    /// All parameters the method uses (trainable + frozen).
    pub total_params: usize,
    /// Mean seconds per training epoch (training steps only, no evaluation).
    pub seconds_per_epoch: f64,
    /// Whether `seconds_per_epoch` was extrapolated from a capped number of steps.
    pub extrapolated: bool,
    /// Mean seconds per validation pass.
    pub eval_seconds: f64,
    /// Peak resident memory of the process over the whole run (evaluation included), MiB.
    pub peak_rss_mib: Option<f64>,
    /// Peak resident memory when the first epoch's training steps ended, before any
    /// evaluation: the training footprint, comparable between runs that evaluate and runs
    /// that do not (`eval.skip`). MiB.
    #[serde(default)]
    pub train_peak_rss_mib: Option<f64>,
    /// Peak memory on the training device over the whole run (a CUDA device's memory-pool
    /// high-water mark; none on the CPU), MiB.
    #[serde(default)]
    pub peak_device_mib: Option<f64>,
    /// The device's peak when the first epoch's training steps ended (as
    /// `train_peak_rss_mib`), MiB.
    #[serde(default)]
    pub train_peak_device_mib: Option<f64>,
    /// The device the run trained on (`cpu`, `cuda:0`).
    #[serde(default)]
    pub device: Option<String>,
    /// Compute threads used.
    pub threads: usize,
    /// The precision training computed in (`f32`, or mixed `bf16` / `f16`; absent in runs
    /// written before mixed precision, all f32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Steps skipped because their f16 gradients overflowed (dynamic loss scaling; 0 otherwise).
    #[serde(default)]
    pub skipped_steps: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_a_touched_allocation() {
        let before = peak_rss_mib().expect("linux /proc");
        // touch 64 MiB: the high-water mark must rise by most of it.
        let v = vec![1u8; 64 << 20];
        let after = peak_rss_mib().unwrap();
        assert!(v.iter().step_by(4096).all(|&b| b == 1));
        // The high-water mark never falls and covers the 64 MiB touched above.
        assert!(after >= before && after >= 64.0, "{before} -> {after}");
    }
}
