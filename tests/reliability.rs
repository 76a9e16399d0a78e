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
        stderr(&o).contains("an interrupted run \"r\" is here: pass --restart"),
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
    assert!(stderr(&o).contains("no synth.json"), "{}", stderr(&o));
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
    assert!(stderr(&o).contains("no subset.json"), "{}", stderr(&o));
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
