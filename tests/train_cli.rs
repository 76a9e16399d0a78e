//! `iisan train` end to end on a small synthetic dataset: the run directory, determinism,
//! early stopping, learning, and configuration errors.

mod common;

use common::*;
use std::fs;
use std::path::Path;

fn train(cwd: &Path, data: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let data_set = format!("data.dir={:?}", data.to_str().unwrap());
    let name_set = format!("run.name={name:?}");
    let mut args = vec![
        "train",
        "--quiet",
        "--set",
        &data_set,
        "--set",
        &name_set,
        "--set",
        "run.dir=\"runs\"",
    ];
    for e in extra {
        args.push("--set");
        args.push(e);
    }
    let o = iisan(cwd, &args);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let run = cwd.join("runs").join(name);
    assert!(stdout(&o).contains("| id "), "{}", stdout(&o));
    serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn same_seed_same_metrics_and_a_complete_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_synth(tmp.path(), "d", 150, 60);
    let a = train(tmp.path(), &data, "a", &["train.epochs=2"]);
    let b = train(tmp.path(), &data, "b", &["train.epochs=2"]);
    assert_eq!(a["test"], b["test"]);
    assert_eq!(a["valid"], b["valid"]);
    let losses = |n: &str| -> Vec<f64> {
        fs::read_to_string(tmp.path().join("runs").join(n).join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    assert_eq!(losses("a"), losses("b"));
    assert_eq!(losses("a").len(), 2);
    let c = train(tmp.path(), &data, "c", &["train.epochs=2", "train.seed=7"]);
    assert_ne!(losses("a"), losses("c"));
    assert_ne!(a["valid"], c["valid"]);
    for f in [
        "config.toml",
        "dataset.json",
        "metrics.jsonl",
        "best.safetensors",
        "summary.json",
    ] {
        assert!(tmp.path().join("runs/a").join(f).exists(), "{f}");
    }
    assert!(!tmp.path().join("runs/.a.partial").exists());
    assert_eq!(a["dataset"]["synthetic"], true);
    assert_eq!(a["method"], "id");
    let eff = &a["efficiency"];
    assert!(eff["trainable_params"].as_u64().unwrap() > 0);
    assert!(eff["seconds_per_epoch"].as_f64().unwrap() > 0.0);
    assert!(eff["peak_rss_mib"].as_f64().unwrap() > 1.0);
    // the resolved config is a valid config that reproduces the run's settings
    let cfg = fs::read_to_string(tmp.path().join("runs/a/config.toml")).unwrap();
    assert!(cfg.contains("epochs = 2"), "{cfg}");
    // `iisan report` puts runs side by side
    let o = iisan(tmp.path(), &["report", "runs/a", "runs/c"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.starts_with("| id "))
            .count(),
        4,
        "{}",
        stdout(&o)
    );
    let o = iisan(tmp.path(), &["report", "runs/nothing"]);
    assert_eq!(o.status.code(), Some(2));
    // a run name is never overwritten
    let o = iisan(
        tmp.path(),
        &[
            "train",
            "--quiet",
            "--set",
            &format!("data.dir={:?}", data.to_str().unwrap()),
            "--set",
            "run.name=\"a\"",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"));
}

#[test]
fn early_stopping_and_test_at_the_best_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_synth(tmp.path(), "d", 150, 60);
    // patience 0 stops at the first epoch that does not improve; a tiny learning rate makes
    // that early.
    let s = train(
        tmp.path(),
        &data,
        "p",
        &["train.epochs=30", "train.patience=0", "train.lr=1e-7"],
    );
    let run = s["epochs_run"].as_u64().unwrap();
    let best = s["best_epoch"].as_u64().unwrap();
    assert!(s["stopped_early"].as_bool().unwrap());
    assert_eq!(
        run,
        best + 1,
        "stops one epoch after the best with patience 0"
    );
    // the summary's validation metrics are those of the best epoch's line in metrics.jsonl
    let lines: Vec<serde_json::Value> = fs::read_to_string(tmp.path().join("runs/p/metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[(best - 1) as usize]["valid"], s["valid"]);
}

#[test]
fn the_id_model_learns_the_synthetic_sequences() {
    // 1,499-item default scale is too slow for a test; 300 users x 120 items. Random ranking
    // gives HR@10 ~ 10/120 = 0.083; popularity alone does better; the trained model must
    // clearly beat random after a few epochs.
    let tmp = tempfile::tempdir().unwrap();
    let data = small_synth(tmp.path(), "d", 300, 120);
    let s = train(
        tmp.path(),
        &data,
        "l",
        &["train.epochs=8", "train.batch=32"],
    );
    let hr = s["test"]["none"]["HR@10"].as_f64().unwrap();
    assert!(hr > 0.2, "test HR@10 {hr}");
}

#[test]
fn config_errors_exit_2_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    for (set, want) in [
        ("train.bach=3", "unknown field `bach`"),
        ("model.method=\"lora2\"", "unknown variant `lora2`"),
        ("train.batch=0", "train.batch"),
        ("data.dir=\"nowhere\"", "nowhere/items.tsv"),
    ] {
        let o = iisan(tmp.path(), &["train", "--quiet", "--set", set]);
        assert_eq!(o.status.code(), Some(2), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{set}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim_end().lines().count(), 1, "{}", stderr(&o));
    }
    assert!(
        !tmp.path().join("runs").exists(),
        "no run directory for a failed start"
    );
    fs::write(tmp.path().join("bad.toml"), "[train\nbatch = 3").unwrap();
    let o = iisan(tmp.path(), &["train", "--config", "bad.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.toml"), "{}", stderr(&o));
}

#[test]
fn checks_that_need_the_data_run_before_the_run_directory_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_synth(tmp.path(), "d", 150, 60);
    let data_set = format!("data.dir={:?}", data.to_str().unwrap());
    // 150 users in batches of 64: 3 steps an epoch; patience 10 -> the shortest run is 11
    // epochs = 33 steps, so a warm-up of 33 steps could leave no timed step.
    for (set, want) in [
        (
            "train.warmup_steps=33",
            "train.warmup_steps = 33 leaves no timed step",
        ),
        ("model.method=\"iisan\"", "needs data.cache"),
        ("train.select_metric=\"MAP@10\"", "not a metric"),
    ] {
        let o = iisan(
            tmp.path(),
            &["train", "--quiet", "--set", &data_set, "--set", set],
        );
        assert_eq!(o.status.code(), Some(2), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{set}: {}", stderr(&o));
        assert!(!tmp.path().join("runs").exists(), "{set}: a run directory");
    }
    // one step less of warm-up leaves one timed step: the run starts
    let s = train(
        tmp.path(),
        &data,
        "w",
        &["train.warmup_steps=32", "train.epochs=11"],
    );
    assert!(s["efficiency"]["seconds_per_epoch"].as_f64().unwrap() > 0.0);
}

#[test]
fn eval_reproduces_a_finished_runs_test_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_synth(tmp.path(), "d", 150, 60);
    let s = train(
        tmp.path(),
        &data,
        "e",
        &["train.epochs=3", "eval.ks=[5,10]"],
    );
    let o = iisan(tmp.path(), &["eval", "runs/e", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        got, s["test"],
        "eval of the best checkpoint vs summary.json"
    );
    // one mask, other cut-offs
    let o = iisan(
        tmp.path(),
        &["eval", "runs/e", "--mask", "none", "--ks", "1,10", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(got["HR@10"], s["test"]["none"]["HR@10"]);
    assert!(got["HR@1"].as_f64().unwrap() <= got["HR@10"].as_f64().unwrap());
    assert!(got.get("HR@5").is_none());
    // the report table
    let o = iisan(tmp.path(), &["eval", "runs/e", "--mask", "history"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("| id ")).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(rows[0].contains("| history |"), "{}", rows[0]);
    let o = iisan(tmp.path(), &["eval", "runs/missing"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("runs/missing/summary.json"),
        "{}",
        stderr(&o)
    );
}
