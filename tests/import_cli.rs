//! `iisan data import` / `data export` end to end on the hand-written fixtures of
//! `tests/fixtures/import` (expected outputs derived in its README): Amazon 2023 and 2018, plain
//! and gzipped, bad lines, the output directory rules, the user draw (the RecBole formats:
//! `tests/recbole_cli.rs`).

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

fn image(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/images")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An images folder holding the fixture's downloads (`p4alt.png` is P4's non-MAIN image).
fn images_folder(dir: &Path) -> PathBuf {
    let img = dir.join("downloads");
    fs::create_dir_all(&img).unwrap();
    fs::copy(image("astronaut_112.png"), img.join("p1main.png")).unwrap();
    fs::copy(image("coffee_112.png"), img.join("p4main.png")).unwrap();
    fs::copy(image("astronaut_224.png"), img.join("p4alt.png")).unwrap();
    img
}

fn gzip(src: &Path, dst: &Path) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&fs::read(src).unwrap()).unwrap();
    fs::write(dst, enc.finish().unwrap()).unwrap();
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn counts(m: &serde_json::Value) -> Vec<(String, u64, u64, u64)> {
    m["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let n = |k: &str| c[k].as_u64().unwrap();
            let step = c["step"].as_str().unwrap().to_string();
            (step, n("interactions"), n("users"), n("items"))
        })
        .collect()
}

/// Import the 2023 fixture (`reviews`, `meta`) with `--min-interactions 3` and the images
/// folder into `d/out`.
fn import_fixture(d: &Path, reviews: &Path, meta: &Path, img: &Path, out: &str) -> PathBuf {
    let o = import_2023(
        d,
        reviews,
        meta,
        &["--min-interactions", "3", "--images", s(img), "--out", out],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    d.join(out)
}

/// The 2023 fixture's folder, its images folder, reviews, metadata, and its import `d/plain`.
fn plain_import(d: &Path) -> (PathBuf, PathBuf, PathBuf, PathBuf, PathBuf) {
    let fx = fixture("amazon2023");
    let img = images_folder(d);
    let (reviews, meta) = (fx.join("Fixture.jsonl"), fx.join("meta_Fixture.jsonl"));
    let out = import_fixture(d, &reviews, &meta, &img, "plain");
    (fx, img, reviews, meta, out)
}

#[test]
fn amazon2023_fixture_imports_as_derived_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let (fx, img, reviews, _, out) = plain_import(tmp.path());
    for f in ["items.tsv", "users.tsv"] {
        let want = fs::read_to_string(fx.join(format!("expected-{f}"))).unwrap();
        assert_eq!(fs::read_to_string(out.join(f)).unwrap(), want, "{f}");
    }
    for (item, file) in [("P1", "p1main.png"), ("P4", "p4main.png")] {
        let got = fs::read(out.join(format!("images/{item}.png"))).unwrap();
        assert_eq!(got, fs::read(img.join(file)).unwrap(), "{item}");
    }
    assert_eq!(fs::read_dir(out.join("images")).unwrap().count(), 2);
    let m = manifest(&out);
    let c = |step: &str, i, u, n| (step.to_string(), i, u, n);
    assert_eq!(
        counts(&m),
        [
            c("read", 10, 3, 5),
            c("with metadata", 9, 3, 4),
            c("duplicates removed", 8, 3, 4),
            c("users with >= 3 interactions", 7, 2, 4)
        ]
    );
    let notes = &m["notes"];
    assert_eq!(notes["meta_items_not_reviewed"], 1);
    assert_eq!(notes["meta_repeated_items"], 1);
    assert_eq!(notes["items_without_title"], 1);
    assert_eq!(notes["review_lines"], 11);
    let images = serde_json::json!(
        {"found": 2, "not_in_folder": 1, "no_main_image": 1, "unsupported_extension": 0});
    assert_eq!(notes["images"], images);
    assert_eq!(m["format"], "amazon2023");
    assert_eq!(
        m["sources"][0]["bytes"],
        fs::metadata(&reviews).unwrap().len()
    );
    assert_eq!(m["sources"][0]["sha256"].as_str().unwrap().len(), 64);
    assert!(m["tool"].as_str().unwrap().starts_with("iisan "));
}

#[test]
fn data_stats_on_the_2023_import_and_a_gzipped_copy_imports_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (_, img, reviews, meta, out) = plain_import(d);
    // P3's empty title needs --keep-missing-titles
    let stats = |extra: &[&str]| {
        let mut a = vec!["data", "stats", "--dataset", "plain", "--min-seq-len", "3"];
        a.extend(extra);
        iisan(d, &a)
    };
    let o = stats(&["--json"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(stderr(&o).contains("P3"), "{}", stderr(&o));
    let o = stats(&["--json", "--keep-missing-titles"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let got = (&v["users"], &v["items"], &v["interactions"]);
    assert_eq!(got, (&2.into(), &4.into(), &7.into()));
    println!("{}", stdout(&stats(&["--keep-missing-titles"])));
    // the same files gzipped, under names without .gz: gzip is recognised by content
    gzip(&reviews, &d.join("reviews.data"));
    gzip(&meta, &d.join("meta.data"));
    let gz = import_fixture(d, &d.join("reviews.data"), &d.join("meta.data"), &img, "gz");
    for f in ["items.tsv", "users.tsv", "images/P1.png", "images/P4.png"] {
        assert_eq!(
            fs::read(gz.join(f)).unwrap(),
            fs::read(out.join(f)).unwrap(),
            "{f}"
        );
    }
    let sha = |dir: &Path| manifest(dir)["sources"][0]["sha256"].clone();
    assert_ne!(sha(&gz), sha(&out));
}

#[test]
fn amazon2018_fixture_imports_as_derived_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture("amazon2018");
    let o = iisan(
        tmp.path(),
        &[
            "data",
            "import",
            "amazon2018",
            "--quiet",
            "--reviews",
            s(&fx.join("Fixture_5.json")),
            "--meta",
            s(&fx.join("meta_Fixture.json")),
            "--min-interactions",
            "2",
            "--out",
            "out",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["items.tsv", "users.tsv"] {
        let want = fs::read_to_string(fx.join(format!("expected-{f}"))).unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("out").join(f)).unwrap(),
            want,
            "{f}"
        );
    }
    let m = manifest(&tmp.path().join("out"));
    assert_eq!(m["options"]["time_unit"], "seconds");
    assert_eq!(m["notes"]["images"], "not requested");
}

/// Expect exit 2, one stderr line containing every one of `want`, and no `out` directory.
fn expect_bad(o: &std::process::Output, out: &Path, want: &[&str]) {
    one_line_exit_2(o, want);
    assert!(!out.exists(), "{} was written", out.display());
}

#[test]
fn bad_lines_name_file_and_line_or_are_counted_and_missing_metadata_can_be_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fx = fixture("amazon2023");
    let meta = fx.join("meta_Fixture.jsonl");
    let text = fs::read_to_string(fx.join("Fixture.jsonl")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines[2] = "{\"user_id\": \"u2\", \"parent_asin\": \"P1\", \"timest"; // truncated
    lines[6] = "{\"user_id\": \"u3\", \"parent_asin\": \"P2\"}"; // no timestamp
    let reviews = d.join("bad.jsonl");
    fs::write(&reviews, lines.join("\n") + "\n").unwrap();
    let out = d.join("out");
    let o = import_2023(d, &reviews, &meta, &["--out", "out"]);
    expect_bad(&o, &out, &["bad.jsonl:3:", "EOF while parsing"]);
    let o = import_2023(
        d,
        &reviews,
        &meta,
        &[
            "--min-interactions",
            "1",
            "--skip-bad-lines",
            "--out",
            "out",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let m = manifest(&out);
    assert_eq!(m["notes"]["bad_lines_skipped"]["reviews"], 2);
    assert_eq!(counts(&m)[0].1, 8, "10 reviews, 2 bad");
    fs::remove_dir_all(&out).unwrap();
    lines[2] = "{\"user_id\": \"u2\", \"parent_asin\": \"P1\", \"timestamp\": 5000}";
    fs::write(&reviews, lines.join("\n") + "\n").unwrap();
    let o = import_2023(d, &reviews, &meta, &["--out", "out"]);
    expect_bad(&o, &out, &["bad.jsonl:7:", "missing field `timestamp`"]);
    let o = import_2023(
        d,
        &fx.join("Fixture.jsonl"),
        &meta,
        &["--require-meta", "--out", "out"],
    );
    expect_bad(
        &o,
        &out,
        &["Fixture.jsonl:6:", "\"PX\"", "meta_Fixture.jsonl"],
    );
    // a white-space id cannot be written as TSV
    lines[6] = "{\"user_id\": \"u 3\", \"parent_asin\": \"P2\", \"timestamp\": 1}";
    fs::write(&reviews, lines.join("\n") + "\n").unwrap();
    let o = import_2023(d, &reviews, &meta, &["--out", "out"]);
    expect_bad(&o, &out, &["bad.jsonl:7:", "user id \"u 3\""]);
    let o = import_2023(
        d,
        &fx.join("Fixture.jsonl"),
        &meta,
        &["--min-interactions", "9", "--out", "out"],
    );
    expect_bad(
        &o,
        &out,
        &[
            "Fixture.jsonl: no interactions left",
            "users with >= 9 interactions 0",
        ],
    );
    let o = import_2023(d, &d.join("nope.jsonl"), &meta, &["--out", "out"]);
    expect_bad(&o, &out, &["nope.jsonl"]);
}

#[test]
fn an_import_replaces_only_its_own_output_and_draws_the_same_users_for_a_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let fx = fixture("amazon2023");
    let (reviews, meta) = (fx.join("Fixture.jsonl"), fx.join("meta_Fixture.jsonl"));
    let theirs = d.join("theirs");
    fs::create_dir_all(&theirs).unwrap();
    fs::write(theirs.join("notes.txt"), "keep").unwrap();
    let o = import_2023(d, &reviews, &meta, &["--out", "theirs"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("refusing to replace it"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 1);
    assert_eq!(
        fs::read_to_string(theirs.join("notes.txt")).unwrap(),
        "keep"
    );
    let draw = |seed: &str, out: &str| {
        let a = [
            "--min-interactions",
            "1",
            "--max-users",
            "2",
            "--seed",
            seed,
            "--out",
            out,
        ];
        let o = import_2023(d, &reviews, &meta, &a);
        assert!(o.status.success(), "{}", stderr(&o));
        fs::read_to_string(d.join(out).join("users.tsv")).unwrap()
    };
    let first = draw("1", "drawn");
    assert_eq!(first.lines().count(), 2);
    assert_eq!(
        draw("1", "drawn"),
        first,
        "re-import over its own output, same draw"
    );
    let m = manifest(&d.join("drawn"));
    let last = counts(&m).pop().unwrap();
    assert_eq!(
        (last.0.as_str(), last.2),
        ("at most 2 users drawn with seed 1", 2)
    );
    let seeds: std::collections::HashSet<String> =
        (0..8).map(|k| draw(&k.to_string(), "other")).collect();
    assert!(seeds.len() > 1, "8 seeds drew the same 2 of 3 users");
    assert_eq!(
        fs::read_dir(d).unwrap().count(),
        3,
        "no scratch directories left"
    );
}

/// Write a catalogue of 16 items with MAIN images (downloaded into `d/downloads`) and 12 users
/// of 6 reviews each as `d/r.jsonl` and `d/m.jsonl`; returns the number of items.
fn write_catalogue(d: &Path) -> usize {
    let img = d.join("downloads");
    fs::create_dir_all(&img).unwrap();
    let (mut meta, mut reviews) = (String::new(), String::new());
    let words = [
        "Microscope",
        "Beaker",
        "Pipette",
        "Gloves",
        "Flask",
        "Notebook",
        "Scale",
        "Lens",
    ];
    let n = 2 * words.len();
    for k in 0..n {
        let t = words[k % words.len()];
        let src = ["astronaut_112.png", "coffee_112.png"][k % 2];
        fs::copy(image(src), img.join(format!("m{k}.png"))).unwrap();
        let url = format!("https://m.media-amazon.com/images/I/m{k}.png");
        meta += &format!(
            "{{\"title\": \"{t} {k}\", \"images\": [{{\"large\": \"{url}\", \"variant\": \"MAIN\"}}], \"parent_asin\": \"P{k}\"}}\n"
        );
    }
    for u in 0..12 {
        for j in 0..6 {
            let item = (u + 3 * j) % n; // 6 distinct items per user
            let t = 1_600_000_000_000u64 + (u * 100 + j) as u64 * 1000;
            reviews += &format!(
                "{{\"user_id\": \"U{u}\", \"parent_asin\": \"P{item}\", \"timestamp\": {t}}}\n"
            );
        }
    }
    fs::write(d.join("r.jsonl"), reviews).unwrap();
    fs::write(d.join("m.jsonl"), meta).unwrap();
    n
}

/// An imported catalogue with images goes through the whole pipeline: import -> encode (MiniLM
/// titles, DINOv2-S images) -> train IISAN (text + image) -> report.
#[test]
fn an_imported_catalogue_with_images_encodes_trains_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let items = write_catalogue(d);
    let (r, m) = (d.join("r.jsonl"), d.join("m.jsonl"));
    let o = import_2023(d, &r, &m, &["--images", "downloads", "--out", "cat"]);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{}", stdout(&o));
    assert_eq!(fs::read_dir(d.join("cat/images")).unwrap().count(), items);
    println!("{}", encode_both(d, "cat"));
    train_run(d, &run_sets(&d.join("cat"), "imported", "iisan"));
    // the text taps were left out: derived from MiniLM's 6 layers and saved with the run
    let cfg = fs::read_to_string(d.join("runs/imported/config.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&cfg).unwrap();
    let taps = |k: &str| -> Vec<i64> {
        let v = cfg["model"]["iisan"][k].as_array().unwrap();
        v.iter().map(|t| t.as_integer().unwrap()).collect()
    };
    assert_eq!(taps("text_taps"), [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(taps("image_taps"), [0, 4, 8, 12]);
    let summary = fs::read_to_string(d.join("runs/imported/summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["dataset"]["stats"]["users"], 12);
    assert_eq!(summary["dataset"]["stats"]["items"], items);
    let hr = summary["test"]["history"]["HR@10"].as_f64();
    assert!(hr.is_some(), "{summary}");
    let o = iisan(d, &["report", "runs/imported"]);
    assert!(o.status.success(), "{}", stderr(&o));
    println!("{}", stdout(&o));
    assert!(
        stdout(&o).contains("| iisan:intra_inter | cat "),
        "{}",
        stdout(&o)
    );
}
