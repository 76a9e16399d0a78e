//! `iisan index build` / `index compact` and ranking through the ANN index, as a user runs
//! them: a trained run grown to 20,040 items (`index synth`), its index built, `recommend`
//! answering through it (every score the item's exact score, the lists close to the exact
//! ones) and with `--exact` exactly as before; `eval --exact` reporting the run's own metrics
//! and `eval` the served lists'; bad parameters refused before anything is written.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::*;
use serde_json::Value;

/// `recommend RUN --histories FILE -k 10 EXTRA` as parsed JSON lines: (id, score) per answer.
fn answers(t: &Path, run: &str, extra: &[&str]) -> Vec<Vec<(String, f64)>> {
    let mut args = vec!["recommend", run, "--histories", "h.txt", "-k", "10"];
    args.extend(extra);
    let o = iisan(t, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let items = v["items"].as_array().unwrap().iter();
            items
                .map(|x| {
                    (
                        x["id"].as_str().unwrap().into(),
                        x["score"].as_f64().unwrap(),
                    )
                })
                .collect()
        })
        .collect()
}

fn eval_json(t: &Path, run: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["eval", run, "--json"];
    args.extend(extra);
    let o = iisan(t, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    (serde_json::from_str(&stdout(&o)).unwrap(), stderr(&o))
}

#[test]
fn the_index_serves_exact_scores_close_to_the_exact_lists_and_exact_stays_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    train_run(t, &run_sets(&data, "r", "id"));
    let o = iisan(
        t,
        &[
            "index", "synth", "runs/r", "--items", "20000", "--out", "runs/big",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // 30 histories of the dataset's users (all but their last item)
    let users = std::fs::read_to_string(data.join("users.tsv")).unwrap();
    let hist: String = (users.lines().take(30))
        .map(|l| {
            let items: Vec<&str> = l.split('\t').nth(1).unwrap().split(' ').collect();
            items[..items.len() - 1].join(" ") + "\n"
        })
        .collect();
    std::fs::write(t.join("h.txt"), hist).unwrap();
    let before = answers(t, "runs/big", &[]);
    // 20,040 items: 512 lists (4 sqrt(20040) = 566 -> 2^9), 192 scanned per query
    let o = iisan(t, &["index", "build", "runs/big", "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("indexed 20040 items in 512 lists in "),
        "{}",
        stdout(&o)
    );
    // the build is deterministic: the same file on two threads
    let file = |t: &Path| {
        let rec: Value = serde_json::from_str(
            &std::fs::read_to_string(t.join("runs/big/items.ann.json")).unwrap(),
        )
        .unwrap();
        std::fs::read(t.join("runs/big").join(rec["file"].as_str().unwrap())).unwrap()
    };
    let one = file(t);
    let o = iisan(t, &["index", "build", "runs/big", "--threads", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(one == file(t), "the index differs built on two threads");
    // --exact: the scan, exactly as before the index existed
    assert_eq!(answers(t, "runs/big", &["--exact"]), before);
    // through the index: every returned score is the item's exact score, and the lists hold
    // (nearly) the exact top 10
    let exact_score: std::collections::HashMap<(usize, String), f64> = before
        .iter()
        .enumerate()
        .flat_map(|(i, a)| a.iter().map(move |(id, s)| ((i, id.clone()), *s)))
        .collect();
    let served = answers(t, "runs/big", &[]);
    let mut hits = 0;
    for (i, (a, e)) in served.iter().zip(&before).enumerate() {
        let want: HashSet<&String> = e.iter().map(|x| &x.0).collect();
        for (id, s) in a {
            if let Some(x) = exact_score.get(&(i, id.clone())) {
                assert!((s - x).abs() <= 1e-5 * x.abs().max(1.0), "{id}: {s} vs {x}");
            }
            hits += usize::from(want.contains(id));
        }
    }
    assert!(hits * 100 >= 95 * 300, "recall@10 {} / 300", hits);
    // eval --exact: the run's own full ranking, as the source run reports it; eval: the
    // served lists over the grown catalogue, said so
    let (mine, _) = eval_json(t, "runs/r", &[]);
    let (exact, _) = eval_json(t, "runs/big", &["--exact"]);
    assert_eq!(mine, exact);
    let (_, err) = eval_json(t, "runs/big", &[]);
    assert!(err.contains("ranked by the ANN index"), "{err}");
    // nothing to fold; the index already covers every row
    let o = iisan(t, &["index", "compact", "runs/big"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "20040 items: 0 folded into the base, 0 added to the ANN index"
    );
}

#[test]
fn bad_parameters_and_unfinished_runs_are_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 40, 20);
    train_run(t, &run_sets(&data, "r", "id"));
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(t.join("runs/r"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let files = listing();
    for (args, want) in [
        (vec!["--probes", "0"], "--probes"),
        (vec!["--lists", "2000000"], "--lists"),
        (vec!["--candidates", "0"], "--candidates"),
        (vec!["--storage", "i4"], "i4"),
    ] {
        let mut a = vec!["index", "build", "runs/r"];
        a.extend(args);
        let o = iisan(t, &a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    one_line_exit_2(
        &iisan(t, &["index", "build", "d"]),
        &["is not a finished run"],
    );
    assert_eq!(listing(), files);
}
