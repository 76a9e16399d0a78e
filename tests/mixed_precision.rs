//! Mixed-precision training (`train.precision = "bf16" | "f16"`, docs/GPU.md): for every
//! method, the step in half precision (candle ops and autograd, f32 masters, f16 with its loss
//! scale) against the CPU's f32 step on the same batches and weights, within
//! `device_check::Limits`; a run in f16 trains, records its precision and resumes exactly; the
//! CPU path refuses it with one line.

mod common;

use std::path::Path;

use candle_core::Device;
use common::stderr;
use iisan::nn::TowerDType;
use iisan::train::device_check::{Limits, compare_paths};

fn check(method: &str, data_dir: &Path, extra: &[String], precisions: &[TowerDType]) {
    let (plan, data) = common::method_plan(method, data_dir, extra);
    for &p in precisions {
        let g = compare_paths(&plan, &data, (&Device::Cpu, p), 2).unwrap();
        eprintln!("{method} {}: {g:?}", p.name());
        assert_eq!(g.batches, 2, "{method}");
        assert!(
            Limits::of(p, None).holds(&g),
            "{method} {}: {g:?}",
            p.name()
        );
        // a step in half precision is still a step of the same function: not the f32 one's
        // figures to the bit
        assert!(g.grad_rel > 0.0, "{method} {}: {g:?}", p.name());
    }
}

#[test]
fn a_half_precision_step_is_within_its_limits_of_the_f32_step_for_every_method() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::encoded_synth(tmp.path(), 40, 30);
    let cache = tmp.path().join("cache");
    let mut iisan_sets = vec![format!("data.cache={:?}", cache.to_str().unwrap())];
    iisan_sets.extend(common::iisan_both_paths());
    let both = [TowerDType::Bf16, TowerDType::F16];
    check("iisan", &data, &iisan_sets, &both);
    check("id", &data, &[], &both);
    let dir = common::synth_at(&tmp.path().join("small"), 40, 30, 28);
    for method in ["iisan_uncached", "fft", "adapter", "lora", "bitfit"] {
        let mut sets = common::tower_sets(28);
        if method == "iisan_uncached" {
            sets.extend(common::iisan_both_paths());
        }
        check(method, &dir, &sets, &[TowerDType::F16]);
        // candle's CPU convolution has no bf16 product (a GPU's has): bf16 with the text tower
        let mut text = vec![sets[0].clone()];
        if method == "iisan_uncached" {
            text.push("model.iisan.modality=\"text\"".into());
        }
        check(method, &dir, &text, &[TowerDType::Bf16]);
    }
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn iisan_fault(cwd: &Path, args: &[&str], fault: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_iisan"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "2")
        .env("IISAN_FAULT", fault)
        .output()
        .unwrap()
}

/// An f16 run (the GPU's code on the CPU backend) trains, records its precision and the steps
/// its loss scale skipped, and resumes after a crash to the same bits (the loss scale is in the
/// checkpoint); the CPU kernels refuse a half precision before any work.
#[test]
fn an_f16_run_trains_records_its_precision_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = common::small_synth(t, "d", 120, 50);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let run = |name: &str| -> Vec<String> {
        [
            "train",
            "--quiet",
            "--set",
            &set,
            "--set",
            "train.epochs=3",
            "--set",
            "train.precision=\"f16\"",
            "--set",
            "train.kernels=\"autograd\"",
            "--set",
            name,
        ]
        .map(String::from)
        .to_vec()
    };
    let o = common::iisan(t, &args(&run("run.name=\"ref\"")));
    assert!(o.status.success(), "{}", stderr(&o));
    // the run's table names its precision
    let out = common::stdout(&o);
    assert!(out.contains("| id (f16) |"), "{out}");
    let k = run("run.name=\"k\"");
    assert!(!iisan_fault(t, &args(&k), "after-epoch:2").status.success());
    let o = common::iisan(t, &["train", "--quiet", "--resume", "k"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (t.join("runs/ref"), t.join("runs/k"));
    for f in ["best.safetensors", "items.safetensors"] {
        let read = |p: &Path| std::fs::read(p.join(f)).unwrap();
        assert_eq!(read(&a), read(&b), "{f}");
    }
    let summary = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p.join("summary.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (summary(&a), summary(&b));
    assert_eq!(sa["test"], sb["test"]);
    assert_eq!(sa["efficiency"]["precision"], "f16");
    let skipped = &sa["efficiency"]["skipped_steps"];
    assert!(skipped.is_u64(), "{sa}");
    assert_eq!(skipped, &sb["efficiency"]["skipped_steps"]);
    let hr = sa["test"]["history"]["HR@10"].as_f64().unwrap();
    assert!(hr.is_finite() && hr > 0.0, "{sa}");
    // the CPU kernels train in f32 only
    let o = common::iisan(
        t,
        &[
            "train",
            "--set",
            &set,
            "--set",
            "train.precision=\"bf16\"",
            "--set",
            "run.name=\"x\"",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("train.precision") && e.contains("for a GPU"),
        "{e}"
    );
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(!t.join("runs/x").exists() && !t.join("runs/.x.partial").exists());
}
