//! `iisan items add` on finished runs: an IISAN run (text + image) embeds new items with the
//! frozen towers it recorded and its trained side network, and `recommend` ranks them; an added
//! copy of an existing item (same title, same image) gets that item's embedding and score;
//! duplicate ids, a changed tower and the ID method are refused with nothing written.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use iisan::catalogue::{Catalogue, SearchMode};

/// Every row of the run's catalogue (row 0 the padding row), as the server reads it: the base
/// matrix and the items added since.
fn rows(run: &Path) -> Vec<Vec<f32>> {
    let cat = Catalogue::open(run, SearchMode::Exact).unwrap();
    cat.to_vec()
        .chunks(cat.dim())
        .map(<[f32]>::to_vec)
        .collect()
}

/// The catalogue's item ids, one per line.
fn id_list(run: &Path) -> String {
    let ids = Catalogue::open(run, SearchMode::Exact).unwrap().ids();
    ids.iter().map(|k| format!("{k}\n")).collect()
}

/// `new/items.tsv` and `new/*.png`: S0001 again under the id COPY (same title, same image),
/// and FRESH, a new item.
fn write_new_items(t: &Path, data: &Path) {
    let items = fs::read_to_string(data.join("items.tsv")).unwrap();
    let title = items.lines().next().unwrap().split_once('\t').unwrap().1;
    fs::create_dir_all(t.join("new")).unwrap();
    fs::write(
        t.join("new/items.tsv"),
        format!("COPY\t{title}\nFRESH\tbrass desk lamp\n"),
    )
    .unwrap();
    fs::copy(data.join("images/S0001.png"), t.join("new/COPY.png")).unwrap();
    fs::copy(data.join("images/S0002.png"), t.join("new/FRESH.png")).unwrap();
}

#[test]
fn items_add_embeds_new_items_that_recommend_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = encoded_synth(t, 120, 50);
    train_run(t, &run_sets(&data, "r", "iisan"));
    let run = t.join("runs/r");
    let towers = fs::read_to_string(run.join("towers.json")).unwrap();
    assert!(towers.contains("\"image_size\": 112"), "{towers}");

    write_new_items(t, &data);
    let add: Vec<&str> = "items add runs/r --items new/items.tsv --images new"
        .split(' ')
        .collect();
    let o = iisan(t, &add);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("the catalogue has 52 items"),
        "{}",
        stdout(&o)
    );
    let m = rows(&run);
    assert_eq!(m.len(), 53);
    let ids = id_list(&run);
    assert_eq!(
        ids.lines().rev().take(2).collect::<Vec<_>>(),
        ["FRESH", "COPY"]
    );
    // row 1 is S0001 (items keep file order); the copy's row 51 matches it to f32 rounding
    let diff = m[1]
        .iter()
        .zip(&m[51])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-4, "copy differs from the original by {diff}");
    assert!(m[1].iter().any(|v| v.abs() > 1e-3));

    // recommend ranks the new items; the copy scores like the original
    let score = recommend_scores(t, "runs/r", "S0003 S0004", 52);
    assert!((score["COPY"] - score["S0001"]).abs() < 1e-3);
    assert!(score.contains_key("FRESH"));

    refusals_write_nothing(t, &run, &towers, &ids);

    // the ID method refuses
    train_run(t, &run_sets(&data, "id", "id"));
    let o = iisan(t, &["items", "add", "runs/id", "--items", "new/noimg.tsv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the id method cannot embed new items"),
        "{}",
        stderr(&o)
    );
}

/// Duplicate ids, a missing image and a changed tower: exit 2, the index unchanged.
fn refusals_write_nothing(t: &Path, run: &Path, towers: &str, ids: &str) {
    let add: Vec<&str> = "items add runs/r --items new/items.tsv --images new"
        .split(' ')
        .collect();
    // again: duplicate ids
    let o = iisan(t, &add);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already in the catalogue or repeated: COPY, FRESH"),
        "{}",
        stderr(&o)
    );
    assert_eq!(id_list(run), ids);
    // a new item without an image, for a model that reads images
    fs::write(t.join("new/noimg.tsv"), "NOIMG\tlamp\n").unwrap();
    let o = iisan(t, &["items", "add", "runs/r", "--items", "new/noimg.tsv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("item NOIMG: no image"),
        "{}",
        stderr(&o)
    );
    // a tower whose content differs from the recorded hash
    let changed = towers.replacen("\"sha256\": \"", "\"sha256\": \"00", 1);
    fs::write(run.join("towers.json"), changed).unwrap();
    let o = iisan(t, &["items", "add", "runs/r", "--items", "new/noimg.tsv"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tower changed since the run"),
        "{}",
        stderr(&o)
    );
    assert_eq!(id_list(run), ids);
}
