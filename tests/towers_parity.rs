//! Parity of the frozen towers with Hugging Face transformers (PyTorch): per-layer [CLS] states
//! within 1e-4 max absolute difference in f32. Reference values: `scripts/golden/towers.py` ->
//! `tests/golden/towers.json`. Needs the model files that `scripts/fetch-models.sh` installs
//! (`.ci/run` runs it first); a missing model folder fails the test.

mod common;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use iisan::backbone::{bert::Bert, vit::Vit};
use iisan::data::image::ImagePrep;
use iisan::data::text::TextPrep;
use iisan::nn::Ctx;
use serde_json::Value;

const TOL: f32 = 1e-4;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model(name: &str) -> PathBuf {
    common::model_dir(name)
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("tests/golden/towers.json")).unwrap())
        .unwrap()
}

/// Max |a - b| per hidden state of `[L + 1, D]` states.
fn per_layer_diff(got: &[Vec<f32>], want: &Value) -> Vec<f32> {
    let want: Vec<Vec<f32>> = serde_json::from_value(want.clone()).unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(&want)
        .map(|(g, w)| {
            g.iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        })
        .collect()
}

fn report(what: &str, diffs: &[f32]) {
    let cells: Vec<String> = diffs.iter().map(|d| format!("{d:.1e}")).collect();
    println!("{what:<40} max |diff| per layer: {}", cells.join(" "));
    assert!(
        diffs.iter().all(|&d| d < TOL),
        "{what}: {diffs:?} exceeds {TOL}"
    );
}

#[test]
fn minilm_cls_states_match_transformers() {
    let g = golden();
    let dir = model("minilm");
    let bert = Bert::load(&dir, &Device::Cpu).unwrap();
    let prep = TextPrep::from_model_dir(&dir, 30).unwrap();
    let titles: Vec<String> = serde_json::from_value(g["text"]["titles"].clone()).unwrap();
    let counts: Vec<usize> = serde_json::from_value(g["text"]["token_counts"].clone()).unwrap();
    assert!(titles.len() >= 8);
    // all titles in one padded batch, as `iisan encode` does
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let b = prep.batch(&refs).unwrap();
    for (i, t) in titles.iter().enumerate() {
        assert_eq!(
            prep.encode(t).unwrap().len(),
            counts[i],
            "token count of {t:?}"
        );
    }
    let ids = Tensor::from_vec(b.ids, (b.batch, b.len), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(b.mask, (b.batch, b.len), &Device::Cpu).unwrap();
    let states = bert
        .cls_states(&ids, &mask, &Ctx::eval())
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    for (i, t) in titles.iter().enumerate() {
        let short: String = t.chars().take(30).collect();
        report(
            &format!("minilm {short:?}"),
            &per_layer_diff(&states[i], &g["text"]["cls"][i]),
        );
    }
}

#[test]
fn dinov2_cls_states_match_transformers_at_224_and_112() {
    let g = golden();
    let dir = model("dinov2-small");
    for size in [224usize, 112] {
        let vit = Vit::load(&dir, size, &Device::Cpu).unwrap();
        let prep = ImagePrep::from_model_dir(&dir, size as u32).unwrap();
        assert_eq!(prep.mean, iisan::data::image::IMAGENET_MEAN);
        for name in ["astronaut", "coffee"] {
            let key = format!("{name}_{size}");
            let px = prep
                .load(&root().join(format!("tests/fixtures/images/{key}.png")))
                .unwrap();
            let t = Tensor::from_vec(px, (1, 3, size, size), &Device::Cpu).unwrap();
            let s = vit
                .cls_states(&t, &Ctx::eval())
                .unwrap()
                .squeeze(0)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            assert_eq!(s.len(), 13);
            report(
                &format!("dinov2 {key}"),
                &per_layer_diff(&s, &g["image"][&key]),
            );
        }
    }
}

#[test]
fn bilinear_resize_matches_pillow_within_one_level() {
    // tests/fixtures/images/*_112.png were made by PIL's bilinear resize of the *_224.png files.
    let prep = ImagePrep {
        size: 112,
        mean: [0.0; 3],
        std: [1.0; 3],
        fit: iisan::data::image::Fit::Bilinear,
    };
    for name in ["astronaut", "coffee"] {
        let ours = prep
            .load(&root().join(format!("tests/fixtures/images/{name}_224.png")))
            .unwrap();
        let pil = prep
            .load(&root().join(format!("tests/fixtures/images/{name}_112.png")))
            .unwrap();
        let worst = ours
            .iter()
            .zip(&pil)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "resize 224->112 {name}: max |ours - PIL| = {:.1} levels",
            worst * 255.0
        );
        assert!(worst <= 1.0 / 255.0 + 1e-6, "{name}: {worst}");
    }
}

#[test]
fn wrong_model_folders_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Bert::load(tmp.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not a model folder: config.json is missing"),
        "{e}"
    );
    // a DINOv2 folder given as the text model
    let e = Bert::load(&model("dinov2-small"), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model_type \"dinov2\" is not bert"), "{e}");
    // a BERT folder given as the image model
    let e = Vit::load(&model("minilm"), 224, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model_type \"bert\" is not vit or dinov2"),
        "{e}"
    );
    // config present, weights missing
    std::fs::copy(
        model("minilm").join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let e = Bert::load(tmp.path(), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(e.contains("model.safetensors is missing"), "{e}");
    assert_eq!(e.lines().count(), 1);
}
