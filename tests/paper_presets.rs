//! The paper presets (`configs/paper/`) load, check and build with random-weight towers of the
//! paper's shapes (bert-base-uncased and ViT-B/16 from `backbone::random`, MiniLM's tokenizer),
//! and train exactly the parameters configs/paper/README.md derives by hand.

mod common;

use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use common::*;
use iisan::Config;
use iisan::backbone::random::{Layout, write_random};
use iisan::data::{DataOptions, Dataset};

/// `(tensor name, elements)` of a tower folder's weights.
fn file_tensors(dir: &Path) -> Vec<(String, usize)> {
    let st = unsafe { MmapedSafetensors::new(dir.join("model.safetensors")) }.unwrap();
    let t = st.tensors().into_iter();
    t.map(|(k, v)| (k, v.shape().iter().product())).collect()
}

/// The trainable parameters of preset `name` built for the data in `d`.
fn trainable(d: &Path, name: &str, data: &Dataset) -> usize {
    let preset = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/paper/{name}.toml"));
    let p = |s: &str| d.join(s).to_str().unwrap().to_string();
    let sets = [
        format!("data.dir={:?}", p("data")),
        format!("data.cache={:?}", p("cache")),
        format!("model.towers.text_model={:?}", p("bert")),
        format!("model.towers.image_model={:?}", p("vit")),
        "train.threads=2".to_string(),
    ];
    let cfg = Config::load(Some(&preset), &sets).unwrap();
    let (_, model) = build_model(cfg, data);
    model.params().num_trainable()
}

#[test]
fn every_paper_preset_builds_with_the_published_trainable_count() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let minilm = model_dir("minilm");
    write_random(Layout::BertBase, &d.join("bert"), 1, Some(&minilm)).unwrap();
    write_random(Layout::VitB16, &d.join("vit"), 2, None).unwrap();
    synth_at(&d.join("data"), 20, 10, 32);
    let data = Dataset::load(&d.join("data"), &DataOptions::default()).unwrap();
    let o = iisan(
        d,
        &[
            "encode",
            "--dataset",
            "data",
            "--quiet",
            "--image-size",
            "224",
            "--out",
            "cache",
            "--text-model",
            "bert",
            "--image-model",
            "vit",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // hand-derived in configs/paper/README.md and docs/MODEL.md section 3
    for (name, want) in [
        ("iisan", 4_113_877),
        ("iisan-intra", 2_776_014),
        ("iisan-inter", 1_438_151),
        ("adapter", 4_965_440),
        ("lora", 796_736),
    ] {
        assert_eq!(trainable(d, name, &data), want, "{name}");
        println!("{name}: {want} trainable");
    }
    // FFT and BitFit train the towers' own tensors: every one the towers use (BERT's pooler is
    // in the file but unused: 768 x 768 + 768) and every bias, plus the heads and user encoder
    let files: Vec<(String, usize)> =
        [file_tensors(&d.join("bert")), file_tensors(&d.join("vit"))].concat();
    let heads = 206_912;
    let pooler: usize = files
        .iter()
        .filter(|(k, _)| k.contains("pooler"))
        .map(|t| t.1)
        .sum();
    let all: usize = files.iter().map(|t| t.1).sum();
    let biases: usize = files
        .iter()
        .filter(|(k, _)| (k.ends_with(".bias") || k.ends_with(".beta")) && !k.contains("pooler"))
        .map(|t| t.1)
        .sum();
    let fft = trainable(d, "fft", &data);
    println!("fft: {fft} trainable ({all} in the files, pooler {pooler})");
    assert_eq!(fft, all - pooler + heads, "fft");
    let bitfit = trainable(d, "bitfit", &data);
    println!("bitfit: {bitfit} trainable ({biases} biases in the files)");
    assert_eq!(bitfit, biases + heads, "bitfit");
}
