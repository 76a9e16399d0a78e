//! The newer tower families end to end through the CLI: a decoder text tower (the Qwen3
//! fixture, 64 wide, with a word-level tokenizer over the data's words) beside DINOv2-S (384
//! wide) trains IISAN with asymmetric widths and derived tap lists, embeds new items through
//! both towers (`items add`) and ranks them (`recommend`); a CLIP image tower encodes; a
//! pooling a family does not have, and a tuned baseline over a decoder, are refused before
//! anything is written.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::*;

/// `dir/qwen3`: the Qwen3 parity fixture with a word-level `tokenizer.json` over the words of
/// `data`'s titles (ids below the fixture's 512-token vocabulary; 0 is `[UNK]`).
fn qwen3_with_tokenizer(dir: &Path, data: &Path) -> PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/qwen3");
    let out = dir.join("qwen3");
    fs::create_dir_all(&out).unwrap();
    for f in ["config.json", "model.safetensors"] {
        fs::copy(fixture.join(f), out.join(f)).unwrap();
    }
    let items = fs::read_to_string(data.join("items.tsv")).unwrap();
    let words: BTreeSet<&str> = items
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .flat_map(|(_, t)| t.split_whitespace())
        .collect();
    let mut vocab = serde_json::Map::new();
    vocab.insert("[UNK]".into(), 0.into());
    for (i, w) in words.into_iter().take(500).enumerate() {
        vocab.insert(w.into(), (i + 1).into());
    }
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    });
    fs::write(out.join("tokenizer.json"), tok.to_string()).unwrap();
    out
}

fn encode(
    t: &Path,
    text: Option<&Path>,
    image: Option<(&Path, &str)>,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec!["encode", "--dataset", "d", "--quiet", "--out", "cache"];
    if let Some(p) = text {
        args.extend(["--text-model", p.to_str().unwrap()]);
    }
    if let Some((p, size)) = image {
        args.extend(["--image-model", p.to_str().unwrap(), "--image-size", size]);
    }
    args.extend(extra);
    iisan(t, &args)
}

#[test]
fn a_decoder_beside_dinov2_trains_adds_items_and_recommends() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 120, 50);
    let qwen = qwen3_with_tokenizer(t, &data);

    // a decoder has no [CLS]: refused before any cache is written
    let o = encode(t, Some(&qwen), None, &["--pooling", "cls"]);
    one_line_exit_2(&o, &["is a decoder", "no [CLS]"]);
    assert!(!t.join("cache/text.hsc").exists());

    let dino = model_dir("dinov2-small");
    let o = encode(t, Some(&qwen), Some((&dino, "112")), &["--pooling", "last"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = iisan(t, &["cache", "info", "cache/text.hsc"]);
    let header = stdout(&o);
    assert!(
        header.contains("qwen3, 2 layers x 64, last pooling"),
        "{header}"
    );
    assert!(header.contains("\"width\": 64"), "{header}");

    // taps derived from each tower's depth: 3 text states, 13 image states
    let mut sets = run_sets(&data, "r", "iisan");
    sets.retain(|s| !s.starts_with("model.iisan.image_taps"));
    train_run(t, &sets);
    let run = t.join("runs/r");
    let config = fs::read_to_string(run.join("config.toml")).unwrap();
    let compact: String = config.split_whitespace().collect();
    assert!(compact.contains("text_taps=[0,1,2,]"), "{config}");
    assert!(
        compact.contains("image_taps=[0,2,4,6,8,10,12,]"),
        "{config}"
    );
    let towers = fs::read_to_string(run.join("towers.json")).unwrap();
    assert!(towers.contains("\"pooling\": \"last\""), "{towers}");

    // new items through both towers (the live decoder pools as the cache did), then ranked
    fs::create_dir_all(t.join("new")).unwrap();
    let items = fs::read_to_string(data.join("items.tsv")).unwrap();
    let title = items.lines().next().unwrap().split_once('\t').unwrap().1;
    fs::write(t.join("new/items.tsv"), format!("COPY\t{title}\n")).unwrap();
    fs::copy(data.join("images/S0001.png"), t.join("new/COPY.png")).unwrap();
    let o = iisan(
        t,
        &[
            "items",
            "add",
            "runs/r",
            "--items",
            "new/items.tsv",
            "--images",
            "new",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let score = recommend_scores(t, "runs/r", "S0003 S0004", 51);
    // the copy (same title, same image) scores as the original: the live towers match the cache
    assert!((score["COPY"] - score["S0001"]).abs() < 1e-3, "{score:?}");

    // the tuned baselines tune BERT-family towers: a decoder is refused before any work
    let tower = format!("model.towers.text_model={:?}", qwen.to_str().unwrap());
    let mut args = vec!["train", "--quiet", "--set", &tower];
    let sets = run_sets(&data, "lora", "lora");
    for s in &sets {
        args.extend(["--set", s.as_str()]);
    }
    let o = iisan(t, &args);
    one_line_exit_2(&o, &["method lora tunes BERT-family text towers only"]);
    assert!(!t.join("runs/lora").exists());
}

#[test]
fn a_clip_tower_encodes_at_its_own_size_and_refuses_another() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    small_synth(t, "d", 40, 20);
    let clip = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/families/clip");
    let o = encode(t, None, Some((&clip, "224")), &[]);
    one_line_exit_2(&o, &["runs at its pretrained 32 px"]);
    let o = encode(t, None, Some((&clip, "32")), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let header = stdout(&iisan(t, &["cache", "info", "cache/image.hsc"]));
    assert!(header.contains("clip, 3 layers x 64"), "{header}");
    assert!(
        header.contains("bicubic shortest edge and centre crop 32x32"),
        "{header}"
    );
}
