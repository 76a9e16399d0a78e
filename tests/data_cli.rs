//! `iisan data ...` end to end: the Scientific statistics, bad input, the synthetic default.

mod common;

use common::*;
use std::fs;

#[test]
fn scientific_stats_match_the_paper_preprocessing() {
    let dir = scientific();
    let o = iisan(
        &dir,
        &[
            "data",
            "stats",
            "--items",
            "items.tsv",
            "--users",
            "users.tsv",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["users"], 12_076);
    assert_eq!(v["items"], 20_314);
    assert_eq!(v["interactions"], 81_711);
    assert_eq!(v["repeated_test_targets"], 621);
    // the text form prints the same numbers
    let o = iisan(&dir, &["data", "stats", "--dataset", "."]);
    let text = stdout(&o);
    for want in ["12076", "20314", "81711", "621"] {
        assert!(text.contains(want), "{text}");
    }
}

/// Run `data stats` on the given files; expect exit code 2 and one stderr line containing `want`.
fn expect_bad(items: &str, users: &str, extra: &[&str], want: &str) {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("items.tsv"), items).unwrap();
    fs::write(tmp.path().join("users.tsv"), users).unwrap();
    let mut args = vec![
        "data",
        "stats",
        "--items",
        "items.tsv",
        "--users",
        "users.tsv",
    ];
    args.extend(extra);
    let o = iisan(tmp.path(), &args);
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {} stderr {}",
        stdout(&o),
        stderr(&o)
    );
    let err = stderr(&o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(want), "{err:?} lacks {want:?}");
    assert!(stdout(&o).is_empty());
}

#[test]
fn bad_input_is_a_one_line_error_naming_file_and_line() {
    let users = "u1\tA B C D E\n";
    expect_bad(
        "A\ta\nB b\n",
        users,
        &[],
        "items.tsv:2: expected `ID<TAB>title`, found no tab",
    );
    expect_bad(
        "A\ta\n\tb\n",
        users,
        &[],
        "items.tsv:2: item id \"\" is empty",
    );
    expect_bad(
        "A\ta\nB\tb\nC\tc\nD\td\nE\te\n",
        "u1\tA B C D E\nu2 A B\n",
        &[],
        "users.tsv:2: expected",
    );
    expect_bad(
        "A\ta\nB\tb\nC\tc\nD\td\nE\te\n",
        "u1\tA B C D E\n\tA B C D E\n",
        &[],
        "users.tsv:2: user id \"\" is empty",
    );
    expect_bad("", users, &[], "items.tsv: no items (empty file)");
    expect_bad("A\ta\n", "", &[], "users.tsv: no users (empty file)");
    // a user item without a title: empty title, or absent from the items file
    expect_bad(
        "A\ta\nB\t\nC\tc\nD\td\nE\te\n",
        users,
        &[],
        "users.tsv:1: item \"B\" of user \"u1\" has an empty title",
    );
    expect_bad(
        "A\ta\nB\tb\nC\tc\nD\td\n",
        users,
        &[],
        "users.tsv:1: item \"E\" of user \"u1\" is not in the items file",
    );
}

#[test]
fn missing_titles_can_be_kept_with_a_flag() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("items.tsv"), "A\ta\nB\t\nC\tc\nD\td\n").unwrap();
    fs::write(tmp.path().join("users.tsv"), "u1\tA B C D E\n").unwrap();
    let o = iisan(
        tmp.path(),
        &[
            "data",
            "stats",
            "--dataset",
            ".",
            "--keep-missing-titles",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["items"], 5);
}

#[test]
fn synth_is_deterministic_idempotent_and_labelled() {
    let tmp = tempfile::tempdir().unwrap();
    let a = small_synth(tmp.path(), "a", 60, 40);
    let b = small_synth(tmp.path(), "b", 60, 40);
    for f in [
        "items.tsv",
        "users.tsv",
        "attributes.tsv",
        "images/S0007.png",
    ] {
        assert_eq!(
            fs::read(a.join(f)).unwrap(),
            fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(fs::read_dir(a.join("images")).unwrap().count(), 40);
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(a.join("synth.json")).unwrap()).unwrap();
    assert_eq!(manifest["synthetic"], true);
    // same parameters again: nothing to do; different parameters: refused without --force.
    let o = iisan(
        tmp.path(),
        &[
            "data",
            "synth",
            "--out",
            "a",
            "--users",
            "60",
            "--items",
            "40",
            "--image-size",
            "16",
            "--seed",
            "11",
        ],
    );
    assert!(stdout(&o).contains("already holds"), "{}", stdout(&o));
    let o = iisan(
        tmp.path(),
        &[
            "data", "synth", "--out", "a", "--users", "61", "--items", "40",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--force"));
    // every user passes the preprocessing (lengths >= 5)
    let o = iisan(tmp.path(), &["data", "stats", "--dataset", "a", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["users"], 60);
}
