//! `iisan encode` end to end on a small synthetic dataset with the real towers: cache rows equal
//! direct tower outputs, re-runs are no-ops, and bad input (wrong model folder, corrupt image,
//! truncated cache) is a one-line error with exit code 2. Needs `scripts/fetch-models.sh`.

mod common;

use std::fs;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use common::*;
use iisan::backbone::{bert::Bert, vit::Vit};
use iisan::cache::HiddenStateCache;
use iisan::cache::items_fingerprint;
use iisan::data::image::ImagePrep;
use iisan::data::text::TextPrep;
use iisan::data::{DataOptions, Dataset};
use iisan::nn::Ctx;

fn models() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(
        p.join("minilm/model.safetensors").exists(),
        "run scripts/fetch-models.sh first"
    );
    p
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn cache_rows_equal_direct_tower_outputs_and_reruns_are_noops() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = small_synth(tmp.path(), "d", 40, 30);
    let m = models();
    let (mini, dino) = (m.join("minilm"), m.join("dinov2-small"));
    let args = [
        "encode",
        "--dataset",
        "d",
        "--text-model",
        mini.to_str().unwrap(),
        "--image-model",
        dino.to_str().unwrap(),
        "--out",
        "cache",
        "--image-size",
        "112",
        "--batch",
        "7",
        "--quiet",
    ];
    let o = iisan(tmp.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("items/s"), "{}", stdout(&o));
    let data = Dataset::load(&data_dir, &DataOptions::default()).unwrap();
    let fp = items_fingerprint(&data);
    let text =
        HiddenStateCache::open_for(&tmp.path().join("cache/text.hsc"), data.num_items(), &fp)
            .unwrap();
    let image =
        HiddenStateCache::open_for(&tmp.path().join("cache/image.hsc"), data.num_items(), &fp)
            .unwrap();
    assert_eq!((text.header().states, text.header().width), (7, 384));
    assert_eq!((image.header().states, image.header().width), (13, 384));
    let dev = Device::Cpu;
    let ids = [1u32, 13, data.num_items() as u32];
    // text rows: each title alone through the tower
    let bert = Bert::load(&m.join("minilm"), &dev).unwrap();
    let prep = TextPrep::from_model_dir(&m.join("minilm"), 30).unwrap();
    let cached = text
        .gather(&ids, &(0..7).collect::<Vec<_>>(), &dev)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let b = prep.batch(&[&data.titles[id as usize]]).unwrap();
        let t = Tensor::from_vec(b.ids, (1, b.len), &dev).unwrap();
        let mk = Tensor::from_vec(b.mask, (1, b.len), &dev).unwrap();
        let direct = bert
            .cls_states(&t, &mk, &Ctx::eval())
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            max_diff(&direct.concat(), &cached[r].concat()) < 1e-5,
            "text row {id}"
        );
    }
    // image rows
    let vit = Vit::load(&m.join("dinov2-small"), 112, &dev).unwrap();
    let iprep = ImagePrep::from_model_dir(&m.join("dinov2-small"), 112).unwrap();
    let cached = image
        .gather(&ids, &(0..13).collect::<Vec<_>>(), &dev)
        .unwrap()
        .to_vec3::<f32>()
        .unwrap();
    for (r, &id) in ids.iter().enumerate() {
        let px = iprep
            .load(&data_dir.join(format!("images/{}.png", data.item_keys[id as usize])))
            .unwrap();
        let t = Tensor::from_vec(px, (1, 3, 112, 112), &dev).unwrap();
        let direct = vit
            .cls_states(&t, &Ctx::eval())
            .unwrap()
            .squeeze(0)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert!(
            max_diff(&direct.concat(), &cached[r].concat()) < 1e-4,
            "image row {id}"
        );
    }
    // row 0 is padding
    let zero = text
        .gather(&[0], &[0, 6], &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(zero.iter().all(|&v| v == 0.0));
    // a second run finds both caches up to date
    let o = iisan(tmp.path(), &args);
    assert!(
        stdout(&o).matches("up to date").count() == 2,
        "{}",
        stdout(&o)
    );
    // f16 caches are half the size and close to f32
    let o = iisan(
        tmp.path(),
        &[
            "encode",
            "--dataset",
            "d",
            "--text-model",
            m.join("minilm").to_str().unwrap(),
            "--out",
            "c16",
            "--dtype",
            "f16",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let t16 = HiddenStateCache::open(&tmp.path().join("c16/text.hsc")).unwrap();
    let a = t16
        .gather(&ids, &[6], &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = text
        .gather(&ids, &[6], &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(max_diff(&a, &b) < 1e-2);
}

#[test]
fn wrong_model_corrupt_image_and_truncated_cache_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    small_synth(tmp.path(), "d", 30, 20);
    let m = models();
    let dino = m.join("dinov2-small");
    let mini = m.join("minilm");
    // wrong model folder for the modality
    let o = iisan(
        tmp.path(),
        &[
            "encode",
            "--dataset",
            "d",
            "--text-model",
            dino.to_str().unwrap(),
            "--out",
            "c",
            "--quiet",
        ],
    );
    one_line_exit_2(&o, &["model_type \"dinov2\" is not bert"]);
    let o = iisan(
        tmp.path(),
        &[
            "encode",
            "--dataset",
            "d",
            "--text-model",
            "nowhere",
            "--out",
            "c",
            "--quiet",
        ],
    );
    one_line_exit_2(&o, &["nowhere: not a model folder"]);
    // corrupt image: error by default, zero image with a count on request
    fs::write(
        tmp.path().join("d/images/S0003.png"),
        b"\x89PNG\r\n\x1a\ngarbage",
    )
    .unwrap();
    let img_args = |extra: &[&str]| {
        let mut v = vec![
            "encode",
            "--dataset",
            "d",
            "--image-model",
            dino.to_str().unwrap(),
            "--out",
            "c",
            "--image-size",
            "56",
            "--quiet",
        ];
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let a = img_args(&[]);
    let o = iisan(
        tmp.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    one_line_exit_2(&o, &["S0003.png: cannot decode image"]);
    assert!(
        !tmp.path().join("c/image.hsc").exists(),
        "no half-written cache under the final name"
    );
    let a = img_args(&["--missing-images", "zero"]);
    let o = iisan(
        tmp.path(),
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("1 missing/corrupt images encoded as zeros"),
        "{}",
        stdout(&o)
    );
    // truncated cache
    let o = iisan(
        tmp.path(),
        &[
            "encode",
            "--dataset",
            "d",
            "--text-model",
            mini.to_str().unwrap(),
            "--out",
            "c",
            "--quiet",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let f = tmp.path().join("c/text.hsc");
    let len = fs::metadata(&f).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let o = iisan(tmp.path(), &["cache-info", "c/text.hsc"]);
    one_line_exit_2(&o, &["c/text.hsc: truncated or oversized cache"]);
}
