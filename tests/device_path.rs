//! The device path (candle ops, autograd, the tensor Adam: what a GPU runs), run on the CPU,
//! equals the CPU path (hand-written kernels, in-place Adam) for every method: the loss and every
//! parameter's gradient on two batches with dropout on (both draw their masks from the same
//! stream on the CPU), each followed by an Adam step, and the parameters after them
//! (`train::device_check`, docs/GPU.md). Also: `--device cuda` on a build without CUDA, and a
//! half-precision dtype asked of a tower that trains, are one-line errors before any work.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{iisan, stderr};
use iisan::train::device_check::compare_paths;

/// Tolerances: the loss and each gradient relative to their largest magnitude (f32 sums in
/// other orders); after the steps, the share of parameter values whose Adam steps went
/// different ways (a gradient value that is zero up to rounding steps about +lr on one path and
/// -lr on the other, so the values themselves are bounded only by 2 lr per step).
/// The gradient tolerance is `iisan check-device`'s default; measured here: at most 3.5e-5.
const LOSS: f64 = 1e-4;
const GRAD: f64 = 1e-3;
const SPLIT: f64 = 1e-3;

fn check(method: &str, data_dir: &Path, extra: &[String]) {
    let (plan, data) = common::method_plan(method, data_dir, extra);
    let g = compare_paths(&plan, &data, (&Device::Cpu, iisan::nn::TowerDType::F32), 2).unwrap();
    eprintln!("{method}: {g:?}");
    assert_eq!(g.batches, 2, "{method}");
    assert!(g.loss_rel <= LOSS, "{method}: loss {g:?}");
    assert!(g.grad_rel <= GRAD, "{method}: gradient {g:?}");
    assert!(g.param_split <= SPLIT, "{method}: parameters {g:?}");
    assert!(g.param_abs <= 2.0 * 2.0 * 4e-4 * 1.01, "{method}: {g:?}"); // 2 steps, lr <= 4e-4
}

#[test]
fn the_device_path_equals_the_cpu_kernels_for_every_method() {
    let tmp = tempfile::tempdir().unwrap();
    // cached IISAN (text + image, both intra paths and the inter path) and ID
    let data = common::encoded_synth(tmp.path(), 40, 30);
    let cache = tmp.path().join("cache");
    let mut iisan_sets = vec![format!("data.cache={:?}", cache.to_str().unwrap())];
    iisan_sets.extend(common::iisan_both_paths());
    check("iisan", &data, &iisan_sets);
    check("id", &data, &[]);
    // the full softmax over the catalogue, on both methods that allow it
    let full = "train.loss=\"full\"".to_string();
    check("id", &data, std::slice::from_ref(&full));
    let mut sets = iisan_sets.to_vec();
    sets.push(full);
    check("iisan", &data, &sets);
    // the methods that run the towers in the step (28 px images keep them quick)
    let dir = common::synth_at(&tmp.path().join("small"), 40, 30, 28);
    for method in ["iisan_uncached", "fft", "adapter", "lora", "bitfit"] {
        let mut sets = common::tower_sets(28);
        if method == "iisan_uncached" {
            sets.extend(common::iisan_both_paths());
        }
        check(method, &dir, &sets);
    }
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_on_a_cpu_build_and_half_precision_for_trained_towers_are_refused_before_work() {
    let tmp = tempfile::tempdir().unwrap();
    let o = iisan(
        tmp.path(),
        &[
            "train",
            "--set",
            "train.device=cuda",
            "--set",
            "run.dir=\"r\"",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--features cuda"), "{}", stderr(&o));
    assert!(!tmp.path().join("r").exists(), "nothing written");
    let o = iisan(
        tmp.path(),
        &[
            "encode",
            "--dataset",
            "nowhere",
            "--out",
            "c",
            "--device",
            "gpu",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("expected \"cpu\", \"cuda\" or \"cuda:N\""),
        "{}",
        stderr(&o)
    );
    let mut sets = vec![
        "model.method=\"fft\"".to_string(),
        "model.towers.dtype=\"bf16\"".into(),
    ];
    sets.extend(common::tower_sets(28));
    let mut args = vec!["train"];
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let o = iisan(tmp.path(), &args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trains its towers in the training precision"),
        "{}",
        stderr(&o)
    );
}
