//! Nothing lost (issue 12): a run owns its directory (a second training of the same name is
//! refused, an interrupted one is kept until `--restart`, default names never collide); dataset
//! commands replace only their own output; non-finite settings and a diverging run stop with
//! exit 2 and say where; a byte-order mark is not part of an id; bad run names are refused
//! before anything is written.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn train_args<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["train", "--quiet", "--set", data, "--set", "train.epochs=1"];
    a.extend(extra);
    a
}

#[test]
fn a_run_directory_belongs_to_one_training() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let named = train_args(&set, &["--set", "run.name=\"r\""]);
    // a training of "r" is running: its partial directory is locked
    let partial = t.join("runs/.r.partial");
    fs::create_dir_all(&partial).unwrap();
    let lock = fs::File::create(partial.join("run.lock")).unwrap();
    lock.lock().unwrap();
    fs::write(partial.join("metrics.jsonl"), "{}\n").unwrap();
    let o = iisan(t, &named);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("another training of run \"r\" is writing it now"),
        "{}",
        stderr(&o)
    );
    // it was killed: the lock is free, the directory kept until --restart
    drop(lock);
    let o = iisan(t, &named);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("an interrupted run \"r\" is here: continue it with `iisan train --resume"),
        "{}",
        stderr(&o)
    );
    assert!(partial.join("metrics.jsonl").exists());
    let mut restart = named.clone();
    restart.push("--restart");
    let o = iisan(t, &restart);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.join("runs/r/summary.json").exists() && !partial.exists());
    assert!(!t.join("runs/r/run.lock").exists());
    // a finished run is never overwritten, even with --restart
    let o = iisan(t, &restart);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    // two default-named runs started together get two directories
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_iisan"))
            .args(train_args(&set, &["--set", "run.dir=\"many\""]))
            .current_dir(t)
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let runs: Vec<_> = fs::read_dir(t.join("many")).unwrap().collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
}

#[test]
fn dataset_commands_replace_only_their_own_output() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    // --out . --force: refused, nothing deleted
    fs::write(t.join("precious.txt"), "keep").unwrap();
    let o = iisan(
        t,
        &[
            "data", "synth", "--out", ".", "--force", "--users", "60", "--items", "30",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("working directory"), "{}", stderr(&o));
    // a directory the command did not write: refused even with --force
    fs::create_dir_all(t.join("mine")).unwrap();
    fs::write(t.join("mine/notes.txt"), "mine").unwrap();
    let o = iisan(t, &["data", "synth", "--out", "mine", "--force"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not written by `iisan data synth`"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        fs::read_to_string(t.join("mine/notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(fs::read_to_string(t.join("precious.txt")).unwrap(), "keep");
    // subset: never into its source; its own earlier output is replaced whole
    let data = small_synth(t, "d", 60, 30);
    let sub = |out: &str, users: &str| {
        iisan(
            t,
            &[
                "data",
                "subset",
                "--dataset",
                "d",
                "--users",
                users,
                "--out",
                out,
            ],
        )
    };
    for out in ["d", "d/inner"] {
        let o = sub(out, "10");
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(stderr(&o).contains("inside the source"), "{}", stderr(&o));
    }
    assert!(sub("s", "10").status.success());
    assert!(sub("s", "20").status.success());
    assert_eq!(
        fs::read_to_string(t.join("s/users.tsv"))
            .unwrap()
            .lines()
            .count(),
        20
    );
    assert!(
        fs::read_to_string(data.join("users.tsv"))
            .unwrap()
            .lines()
            .count()
            == 60
    );
    let o = sub("mine", "10");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not written by `iisan data subset`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn non_finite_settings_and_divergence_stop_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let o = iisan(t, &train_args(&set, &["--set", "train.eps=nan"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("train.eps = NaN must be a finite number"),
        "{}",
        stderr(&o)
    );
    assert!(!t.join("runs").exists(), "refused before any run directory");
    let o = iisan(t, &train_args(&set, &["--set", "run.name=\"a/b\""]));
    assert_eq!(o.status.code(), Some(2));
    assert!(!t.join("runs").exists());
    // a learning rate that overflows the weights: stopped at the first non-finite step
    let o = iisan(
        t,
        &train_args(&set, &["--set", "train.lr=1e38", "--set", "run.name=\"x\""]),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("training diverged: ") && e.contains("at epoch 1, step "),
        "{e}"
    );
    assert!(
        t.join("runs/.x.partial").exists(),
        "the interrupted run is kept"
    );
}

#[test]
fn a_byte_order_mark_is_not_part_of_the_first_item_id() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fs::write(d.join("items.tsv"), "\u{feff}A\ta\nB\tb\nC\tc\n").unwrap();
    fs::write(d.join("users.tsv"), "u1\tA B C A B\n").unwrap();
    let o = iisan(d, &["data", "stats", "--dataset", ".", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"items\": 3"), "{}", stdout(&o));
    let _ = Path::new(".");
}

/// `iisan train` with an environment for fault injection (`IISAN_FAULT`, see
/// `src/train/fit/resume.rs`).
fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn iisan_env(cwd: &Path, args: &[&str], fault: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_iisan"))
        .args(args)
        .current_dir(cwd)
        .env("IISAN_FAULT", fault)
        .output()
        .unwrap()
}

#[test]
fn an_interrupted_run_resumes_to_the_same_bits() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 120, 50);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let run = |name: &str| {
        let mut a = vec![
            "train",
            "--quiet",
            "--set",
            set.as_str(),
            "--set",
            "train.epochs=5",
        ];
        a.extend(["--set", "train.patience=1"]);
        a.extend(["--set", name]);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let reference = run("run.name=\"ref\"");
    assert!(iisan(t, &args(&reference)).status.success());
    // crash while writing epoch 2's checkpoint, then once epoch 3's is committed
    let k = run("run.name=\"k\"");
    let o = iisan_env(t, &args(&k), "checkpoint-write:2");
    assert!(!o.status.success());
    let resume = ["train", "--quiet", "--resume", "k"];
    let o = iisan_env(t, &resume, "after-epoch:3");
    assert!(!o.status.success(), "{}", stderr(&o));
    let o = iisan(t, &resume);
    assert!(o.status.success(), "{}", stderr(&o));
    let (a, b) = (t.join("runs/ref"), t.join("runs/k"));
    for f in ["best.safetensors", "items.safetensors", "metrics.jsonl"] {
        if f == "metrics.jsonl" {
            let losses = |p: &Path| -> Vec<String> {
                fs::read_to_string(p.join(f))
                    .unwrap()
                    .lines()
                    .map(|l| l.split(",\"train_seconds").next().unwrap().to_string())
                    .collect()
            };
            assert_eq!(losses(&a), losses(&b));
            continue;
        }
        assert_eq!(
            fs::read(a.join(f)).unwrap(),
            fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    let test = |p: &Path| {
        let v: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(p.join("summary.json")).unwrap()).unwrap();
        (
            v["test"].clone(),
            v["best_epoch"].clone(),
            v["epochs_run"].clone(),
        )
    };
    assert_eq!(test(&a), test(&b));
    assert!(
        !b.join("resume.json").exists(),
        "checkpoints leave with the finished run"
    );
}

/// A resume continues the run as it began: an edited `config.toml` is refused naming the key
/// and both values, an edited `resume.json` as such; a run cut short after its summary was written is completed, not called
/// unstarted; a name that is a path is refused.
#[test]
fn a_resume_refuses_an_edited_config_and_completes_a_cut_short_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 60, 30);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let a = ["train", "--quiet", "--set", &set, "--set", "train.epochs=2"];
    let a = [&a[..], &["--set", "run.name=\"k\""]].concat();
    assert!(!iisan_env(t, &a, "after-epoch:1").status.success());
    let config = t.join("runs/.k.partial/config.toml");
    let text = fs::read_to_string(&config).unwrap();
    let lr = text
        .lines()
        .find(|l| l.starts_with("lr = "))
        .unwrap()
        .to_string();
    fs::write(&config, text.replace(&lr, "lr = 0.5")).unwrap();
    let resume = ["train", "--quiet", "--resume", "k"];
    let o = iisan(t, &resume);
    one_line_exit_2(
        &o,
        &[
            "config.toml: was edited since the run started",
            "train.lr: ",
        ],
    );
    fs::write(&config, &text).unwrap();
    // an edited checkpoint record is refused, not believed
    let record = t.join("runs/.k.partial/resume.json");
    let saved = fs::read_to_string(&record).unwrap();
    fs::write(&record, saved.replacen("\"epoch\": 1", "\"epoch\": 2", 1)).unwrap();
    let o = iisan(t, &resume);
    one_line_exit_2(
        &o,
        &["resume.json: was edited or damaged since it was written"],
    );
    fs::write(&record, &saved).unwrap();
    // cut short once the summary is written: the resume moves the run into place
    let o = iisan_env(t, &resume, "finish:2");
    assert!(!o.status.success());
    assert!(t.join("runs/.k.partial/summary.json").exists());
    let o = iisan(t, &resume);
    assert!(o.status.success(), "{}", stderr(&o));
    let done = t.join("runs/k");
    for gone in ["resume.json", "resume-2.safetensors", "run.lock"] {
        assert!(!done.join(gone).exists(), "{gone} left");
    }
    assert!(done.join("summary.json").exists() && !t.join("runs/.k.partial").exists());
    let o = iisan(t, &["train", "--quiet", "--resume", "../k"]);
    one_line_exit_2(&o, &["plain directory name"]);
}

#[test]
fn tower_config_errors_name_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_synth(t, "d", 40, 20);
    let minilm = model_dir("minilm");
    let m = t.join("m");
    fs::create_dir_all(&m).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::os::unix::fs::symlink(minilm.join(f), m.join(f)).unwrap();
    }
    let encode = || {
        iisan(
            t,
            &[
                "encode",
                "--dataset",
                "d",
                "--text-model",
                "m",
                "--out",
                "c",
                "--quiet",
            ],
        )
    };
    // fewer layers than the weights hold: refused, not a truncated tower
    let cfg = fs::read_to_string(minilm.join("config.json")).unwrap();
    let fewer = cfg.replace("\"num_hidden_layers\": 6", "\"num_hidden_layers\": 5");
    assert_ne!(fewer, cfg, "MiniLM's config.json names 6 layers");
    fs::write(m.join("config.json"), fewer).unwrap();
    let o = encode();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("m/config.json: num_hidden_layers = 5, but"),
        "{}",
        stderr(&o)
    );
    // a config.json that is not UTF-8 is named as such, not as missing
    fs::write(m.join("config.json"), [0xff, 0xfe, b'{']).unwrap();
    let o = encode();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("config.json: not valid UTF-8"),
        "{}",
        stderr(&o)
    );
}

/// Requests a run cannot answer are refused with a reason: k above the catalogue, serving an
/// interrupted run, a comparison written into a run directory, cold items the run trained on.
#[test]
fn requests_a_run_cannot_answer_are_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 60, 30);
    train_run(t, &run_sets(&data, "r", "id"));
    let o = iisan(
        t,
        &["recommend", "runs/r", "--history", "S0001", "-k", "31"],
    );
    one_line_exit_2(&o, &["k = 31 is more than the catalogue's 30 items"]);
    let set = format!("data.dir={:?}", data.to_str().unwrap());
    let a = ["train", "--quiet", "--set", &set, "--set", "train.epochs=2"];
    let a = [&a[..], &["--set", "run.name=\"k\""]].concat();
    assert!(!iisan_env(t, &a, "after-epoch:1").status.success());
    let o = iisan(t, &["serve", "runs/.k.partial", "--addr", "127.0.0.1:0"]);
    one_line_exit_2(&o, &["is not a finished run (no summary.json)"]);
    let o = iisan(t, &["compare", "--runs", "runs/r", "--out", "runs/r"]);
    one_line_exit_2(&o, &["runs/r: is a run directory"]);
    // S0001 is in users' training sequences of the synthetic data
    fs::write(t.join("cold.txt"), "S0001\n").unwrap();
    let o = iisan(t, &["eval", "runs/r", "--cold-items", "cold.txt"]);
    one_line_exit_2(&o, &["cold.txt", "\"S0001\" is in the training data"]);
    fs::write(t.join("cold.txt"), "NOPE\n").unwrap();
    let o = iisan(t, &["eval", "runs/r", "--cold-items", "cold.txt"]);
    one_line_exit_2(&o, &["\"NOPE\" is not in the catalogue"]);
}
