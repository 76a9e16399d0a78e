//! Parity of the decoder and CLIP-family towers with Hugging Face transformers (PyTorch, f32,
//! eager attention): tiny random-weight models of each family (`tests/fixtures/families/`,
//! written by `scripts/golden/families.py` with the golden states in
//! `tests/golden/families.json`). Every hidden state's pooled states are within 1e-4 relative
//! (Frobenius norm of the difference over the norm of the reference, per layer) for every
//! family and pooling; the images' preprocessing matches the families' processors.
//! `IISAN_TEST_DEVICE=cuda` runs the towers on that device (a `--features cuda` build; the GPU
//! check's part f, docs/GPU.md); the default is the CPU.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use iisan::backbone::encoders::{ImageEncoder, TextEncoder};
use iisan::backbone::pooling::Pooling;
use iisan::data::image::ImagePrep;
use iisan::nn::Ctx;
use serde_json::Value;

const TOL: f64 = 1e-4;

/// The device the towers run on: `IISAN_TEST_DEVICE` (`cpu`, `cuda`, `cuda:N`), else the CPU.
fn device() -> Device {
    let spec: iisan::nn::DeviceSpec = std::env::var("IISAN_TEST_DEVICE")
        .unwrap_or_else(|_| "cpu".into())
        .parse()
        .expect("IISAN_TEST_DEVICE");
    spec.open().expect("the device opens")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/families")
        .join(name)
}

fn golden() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/families.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Per hidden state: ||got - want|| / ||want|| over the batch's rows (`[B][L + 1][D]` each).
fn relative_per_layer(got: &Tensor, want: &Value) -> Vec<f64> {
    let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(want.clone()).unwrap();
    let got: Vec<Vec<Vec<f32>>> = got.to_vec3().unwrap();
    assert_eq!(
        (got.len(), got[0].len()),
        (want.len(), want[0].len()),
        "shape"
    );
    (0..want[0].len())
        .map(|k| {
            let (mut num, mut den) = (0f64, 0f64);
            for (g, w) in got.iter().zip(&want) {
                for (a, b) in g[k].iter().zip(&w[k]) {
                    num += f64::from(a - b).powi(2);
                    den += f64::from(*b).powi(2);
                }
            }
            (num / den).sqrt()
        })
        .collect()
}

fn check(what: &str, rel: &[f64]) {
    let cells: Vec<String> = rel.iter().map(|d| format!("{d:.1e}")).collect();
    println!(
        "{what:<26} {:?} relative difference per hidden state: {}",
        device().location(),
        cells.join(" ")
    );
    assert!(
        rel.iter().all(|&d| d <= TOL),
        "{what}: {rel:?} exceeds {TOL}"
    );
}

fn text_family(name: &str) {
    let g = golden();
    let f = &g["families"][name];
    let ids: Vec<Vec<u32>> = serde_json::from_value(f["ids"].clone()).unwrap();
    let lens: Vec<usize> = serde_json::from_value(f["lengths"].clone()).unwrap();
    let rows: Vec<&[u32]> = ids.iter().zip(&lens).map(|(r, &n)| &r[..n]).collect();
    let width = ids[0].len();
    for (key, pooling) in [
        ("mean", Pooling::Mean),
        ("mean_unmasked", Pooling::MeanUnmasked),
        ("last", Pooling::Last),
    ] {
        let tower =
            TextEncoder::load(&fixture(name), Some(pooling), &device(), DType::F32).unwrap();
        assert_eq!(tower.num_states(), f["layers"].as_u64().unwrap() as usize);
        let got = tower.states(&rows, width, &Ctx::eval()).unwrap();
        check(
            &format!("{name} {key}"),
            &relative_per_layer(&got, &f["pooling"][key]),
        );
    }
}

#[test]
fn llama_with_llama3_rope_and_grouped_queries_matches_transformers() {
    text_family("llama");
}

#[test]
fn mistral_matches_transformers() {
    text_family("mistral");
}

#[test]
fn qwen2_with_qkv_biases_matches_transformers() {
    text_family("qwen2");
}

#[test]
fn qwen3_with_query_key_norms_and_wide_heads_matches_transformers() {
    text_family("qwen3");
}

fn image_family(name: &str) {
    let g = golden();
    let f = &g["families"][name];
    let shape: Vec<usize> = serde_json::from_value(f["shape"].clone()).unwrap();
    let px: Vec<f32> = serde_json::from_value(f["pixels"].clone()).unwrap();
    let px = Tensor::from_vec(px, shape.as_slice(), &device()).unwrap();
    let tower = ImageEncoder::load(&fixture(name), shape[2], &device(), DType::F32).unwrap();
    let got = tower.states(&px, &Ctx::eval()).unwrap();
    check(name, &relative_per_layer(&got, &f["states"]));
    // preprocessing: the family's processor (Pillow bicubic; CLIP: shortest edge + centre
    // crop) on a 48 x 40 photo with hard-edged rectangles. Where the bicubic kernel overshoots
    // at a hard edge, fast_image_resize's two passes round and clip their intermediate in
    // another order than Pillow's, a few 8-bit levels apart (docs/MODEL.md section 2); a
    // wrong crop offset, filter or normalisation moves the mean and the maximum far more.
    let prep = ImagePrep::from_model_dir(&fixture(name), shape[2] as u32).unwrap();
    let ours = prep.load(&fixture("photo.png")).unwrap();
    let want: Vec<f32> = serde_json::from_value(f["preprocessed"].clone()).unwrap();
    assert_eq!(ours.len(), want.len());
    let level = 1.0 / 255.0 / prep.std.iter().cloned().fold(f32::MAX, f32::min);
    let diffs: Vec<f32> = ours
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / level)
        .collect();
    let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let worst = diffs.iter().cloned().fold(0f32, f32::max);
    println!("{name} preprocessing: mean {mean:.3}, max {worst:.2} 8-bit levels from Pillow's");
    assert!(
        mean <= 0.25 && worst <= 8.0,
        "{name}: mean {mean}, max {worst} levels"
    );
}

#[test]
fn clip_vision_class_token_states_match_transformers() {
    image_family("clip");
}

#[test]
fn siglip_vision_mean_states_match_transformers() {
    image_family("siglip");
}

#[test]
fn a_decoder_refuses_cls_and_an_encoder_refuses_mean() {
    let e = TextEncoder::check(&fixture("qwen2"), Some(Pooling::Cls)).unwrap_err();
    assert!(e.to_string().contains("no [CLS]"), "{e}");
    assert_eq!(
        TextEncoder::check(&fixture("qwen2"), None).unwrap(),
        Pooling::Mean
    );
}

/// LoRA on a decoder's query and value (the LoRA baseline's placement): the tower starts at the
/// pretrained function (B = 0) and the loss's gradient reaches every B through the frozen
/// layers, rotary positions and RMSNorm.
#[test]
fn lora_on_a_decoder_starts_at_the_pretrained_function_and_trains() {
    use iisan::backbone::decoder::Decoder;
    use iisan::backbone::decoder_config::DecoderConfig;
    use iisan::backbone::peft::{PeftBuilder, TowerTuning};
    let dir = fixture("qwen2");
    let file = dir.join("config.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let config = DecoderConfig::from_json(v, &file).unwrap();
    let vb = iisan::backbone::open_weights(&dir, &Device::Cpu, DType::F32).unwrap();
    let mut store = iisan::nn::ParamStore::new(3, Device::Cpu);
    let mut peft = PeftBuilder {
        store: &mut store,
        tuning: TowerTuning::Lora { r: 4, alpha: 8.0 },
        prefix: "text".into(),
    };
    let lora = Decoder::with_peft(vb, config, &file, Some(&mut peft)).unwrap();
    assert_eq!(
        store.params().len(),
        2 * 2 * 2,
        "A and B on query and value of 2 layers"
    );
    let plain = TextEncoder::load(&dir, Some(Pooling::Mean), &Device::Cpu, DType::F32).unwrap();
    let ids = Tensor::new(&[[5u32, 9, 300, 7], [11, 2, 0, 0]], &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1f32, 1., 1., 1.], [1., 1., 0., 0.]], &Device::Cpu).unwrap();
    let ctx = Ctx::train(0);
    let got = lora
        .pooled_states(&ids, &mask, Pooling::Mean, &ctx)
        .unwrap();
    let rows: [&[u32]; 2] = [&[5, 9, 300, 7], &[11, 2]];
    let want = plain.states(&rows, 4, &Ctx::eval()).unwrap();
    let diff = (&got - &want)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff < 1e-5,
        "LoRA at B = 0 differs from the tower by {diff}"
    );
    let loss = got
        .narrow(1, 2, 1)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    let (grads, _) = store.backward(&loss).unwrap();
    for p in store.params().iter().filter(|p| p.name.ends_with(".b")) {
        let g = grads.get(&p.var).unwrap().abs().unwrap().sum_all().unwrap();
        assert!(
            g.to_scalar::<f32>().unwrap() > 0.0,
            "{} has no gradient",
            p.name
        );
    }
}
