//! `iisan recommend` on a finished run: the top-K of every user's test history reproduces the
//! run's test HR@10 under both masks (the same scores as evaluation), and bad input is refused.

mod common;

use std::fs;

use common::*;
use iisan::data::{DataOptions, Dataset, Split};

#[test]
fn recommend_reproduces_the_evaluators_hits_and_refuses_unknown_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = small_synth(tmp.path(), "d", 150, 60);
    let data_set = format!("data.dir={:?}", data_dir.to_str().unwrap());
    let o = iisan(
        tmp.path(),
        &[
            "train",
            "--quiet",
            "--set",
            &data_set,
            "--set",
            "run.name=\"r\"",
            "--set",
            "train.epochs=3",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let run = tmp.path().join("runs/r");
    for f in ["items.safetensors", "item_ids.txt"] {
        assert!(run.join(f).exists(), "{f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let data = Dataset::load(&data_dir, &DataOptions::default()).unwrap();
    let users = data.num_users();
    let lines: Vec<String> = (0..users)
        .map(|u| {
            let h = data.history(u, Split::Test);
            let keys: Vec<&str> = h
                .iter()
                .map(|&i| data.item_keys[i as usize].as_str())
                .collect();
            keys.join(" ")
        })
        .collect();
    fs::write(tmp.path().join("h.txt"), lines.join("\n") + "\n").unwrap();
    for (mask, extra) in [("none", None), ("history", Some("--exclude-history"))] {
        let mut args = vec!["recommend", "runs/r", "--histories", "h.txt", "-k", "10"];
        args.extend(extra);
        let o = iisan(tmp.path(), &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = stdout(&o);
        let answers: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(answers.len(), users);
        let hits = answers
            .iter()
            .enumerate()
            .filter(|(u, a)| {
                let target = &data.item_keys[data.target(*u, Split::Test) as usize];
                let items = a["items"].as_array().unwrap();
                assert_eq!(items.len(), 10);
                items.iter().any(|it| it["id"] == target.as_str())
            })
            .count();
        let hr = hits as f64 / users as f64;
        let want = summary["test"][mask]["HR@10"].as_f64().unwrap();
        assert!(
            (hr - want).abs() < 1e-12,
            "{mask}: recommend {hr} vs evaluator {want}"
        );
    }
    // one history: a table; unknown ids named; an empty line in a file named by its line
    let first = lines[0].as_str();
    let o = iisan(
        tmp.path(),
        &["recommend", "runs/r", "--history", first, "-k", "3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
    let bad = format!("{first} NOPE");
    let o = iisan(tmp.path(), &["recommend", "runs/r", "--history", &bad]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown item id NOPE"),
        "{}",
        stderr(&o)
    );
    fs::write(tmp.path().join("bad.txt"), format!("{first}\n\n")).unwrap();
    let o = iisan(
        tmp.path(),
        &["recommend", "runs/r", "--histories", "bad.txt"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.txt:2: empty history"),
        "{}",
        stderr(&o)
    );
}
