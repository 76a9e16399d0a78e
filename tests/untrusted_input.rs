//! What the author of a data file cannot do (docs/SECURITY.md): make an id a path out of the
//! output folder or a terminal escape, expand a small compressed file into one huge line in
//! memory, or have an import delete a directory it did not write. Each case is a class, tried
//! through the real binary on files the test writes.

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/amazon2023")
}

/// The fixture's reviews with `from` replaced by `to` in every line, written to `d/name`.
fn edited_reviews(d: &Path, name: &str, from: &str, to: &str) -> PathBuf {
    let text = fs::read_to_string(fixture().join("Fixture.jsonl")).unwrap();
    let p = d.join(name);
    fs::write(&p, text.replace(from, to)).unwrap();
    p
}

/// Everything below `d`, for "nothing was written" checks.
fn tree(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        }
        out.push(p);
    }
    out.sort();
    out
}

#[test]
fn ids_that_are_paths_or_control_characters_are_refused_where_they_enter() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let meta = fixture().join("meta_Fixture.jsonl");
    // an item id with a path out of the images folder: refused at its line, nothing written
    let escape = edited_reviews(
        d,
        "escape.jsonl",
        "\"parent_asin\": \"P1\"",
        "\"parent_asin\": \"../../P1\"",
    );
    let before = tree(d);
    let o = import_2023(d, &escape, &meta, &["--out", "out"]);
    one_line_exit_2(
        &o,
        &[
            "escape.jsonl:1:",
            "item id \"../../P1\" holds a path separator",
        ],
    );
    assert_eq!(tree(d), before, "the import wrote something");
    // JSON escapes decode to control characters: ESC in a user id, NUL in an item id
    let esc = edited_reviews(
        d,
        "esc.jsonl",
        "\"user_id\": \"u1\"",
        "\"user_id\": \"u\\u001b[2J1\"",
    );
    let o = import_2023(d, &esc, &meta, &["--out", "out"]);
    one_line_exit_2(
        &o,
        &[
            "esc.jsonl:1:",
            "user id \"u\\u{1b}[2J1\" holds a control character",
        ],
    );
    assert!(
        !stderr(&o).contains('\u{1b}'),
        "the escape reached the terminal"
    );
    let nul = edited_reviews(
        d,
        "nul.jsonl",
        "\"parent_asin\": \"P2\"",
        "\"parent_asin\": \"P\\u00002\"",
    );
    let o = import_2023(d, &nul, &meta, &["--out", "out"]);
    one_line_exit_2(&o, &["nul.jsonl:2:", "holds a control character"]);
    // a dataset file and `items add` hold ids to the same rules
    let data = small_synth(d, "data", 20, 10);
    let items = data.join("items.tsv");
    let text = fs::read_to_string(&items).unwrap();
    fs::write(&items, format!("{text}a/../../x\tt\n")).unwrap();
    let o = iisan(d, &["data", "stats", "--dataset", data.to_str().unwrap()]);
    one_line_exit_2(&o, &["items.tsv:", "holds a path separator"]);
    fs::write(&items, text).unwrap();
    train_run(d, &run_sets(&data, "r", "id"));
    fs::write(d.join("new.tsv"), "N\u{1b}1\ttitle\n").unwrap();
    let o = iisan(d, &["items", "add", "runs/r", "--items", "new.tsv"]);
    one_line_exit_2(&o, &["new.tsv:1:", "holds a control character"]);
}

#[test]
fn a_compressed_file_with_one_huge_line_is_refused_at_the_line_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // 40 MiB of one line compress to about 40 KiB; the bound is 16 MiB
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(fixture().join("Fixture.jsonl").to_str().unwrap().as_bytes())
        .unwrap();
    let mut reviews = fs::read(fixture().join("Fixture.jsonl")).unwrap();
    reviews.extend(std::iter::repeat_n(b'x', 40 << 20));
    let mut enc2 = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc2.write_all(&reviews).unwrap();
    let gz = d.join("huge.jsonl.gz");
    fs::write(&gz, enc2.finish().unwrap()).unwrap();
    assert!(fs::metadata(&gz).unwrap().len() < 1 << 20);
    drop(enc);
    let o = import_2023(
        d,
        &gz,
        &fixture().join("meta_Fixture.jsonl"),
        &["--out", "out"],
    );
    one_line_exit_2(
        &o,
        &[
            "huge.jsonl.gz:12:",
            "longer than 16 MiB, the limit of a line",
        ],
    );
    assert!(!d.join("out").exists());
}

#[test]
fn an_output_is_replaced_only_when_the_same_command_wrote_all_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (reviews, meta) = (
        fixture().join("Fixture.jsonl"),
        fixture().join("meta_Fixture.jsonl"),
    );
    let args = ["--min-interactions", "1", "--out", "out"];
    // another program's folder that happens to hold a manifest.json is not ours
    fs::create_dir_all(d.join("out")).unwrap();
    fs::write(
        d.join("out/manifest.json"),
        "{\"name\": \"someone else's\"}",
    )
    .unwrap();
    let o = import_2023(d, &reviews, &meta, &args);
    one_line_exit_2(
        &o,
        &["out: exists and was not written by `iisan data import`"],
    );
    assert!(d.join("out/manifest.json").exists());
    fs::remove_dir_all(d.join("out")).unwrap();
    // our own import is replaced by the next one ...
    assert!(import_2023(d, &reviews, &meta, &args).status.success());
    assert!(import_2023(d, &reviews, &meta, &args).status.success());
    // ... unless the user put a file there
    fs::write(d.join("out/notes.txt"), "mine").unwrap();
    let o = import_2023(d, &reviews, &meta, &args);
    one_line_exit_2(
        &o,
        &["holds \"notes.txt\", which `iisan data import` did not write"],
    );
    assert_eq!(fs::read_to_string(d.join("out/notes.txt")).unwrap(), "mine");
    fs::remove_file(d.join("out/notes.txt")).unwrap();
    // an export does not replace an import, nor an import an export
    let data = small_synth(d, "data", 20, 10);
    let data = data.to_str().unwrap();
    let export = |out: &str| {
        let args = ["data", "export", "recbole", "--dataset", data, "--out", out];
        iisan(d, &args)
    };
    let o = export("exported");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = export("out");
    one_line_exit_2(
        &o,
        &["holds the output of `iisan data import`, not of `iisan data export`"],
    );
    let o = import_2023(
        d,
        &reviews,
        &meta,
        &["--min-interactions", "1", "--out", "exported"],
    );
    one_line_exit_2(&o, &["holds the output of `iisan data export`"]);
    // nothing half-written is left beside the outputs
    let hidden: Vec<_> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}
