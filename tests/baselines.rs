//! The in-backbone baselines on the real towers (MiniLM, DINOv2-S from `scripts/fetch-models.sh`):
//! LoRA at its initial B = 0 and adapters with a zero up-projection reproduce the pretrained
//! towers exactly; each method trains exactly its intended parameter set, every one of them
//! receiving a gradient; BitFit's tower count equals the towers' bias count.

mod common;

use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{Device, Tensor};
use common::{assert_every_param_has_gradient, model_dir};
use iisan::Config;
use iisan::backbone::peft::{PeftBuilder, TowerTuning};
use iisan::backbone::{bert::Bert, vit::Vit};
use iisan::data::image::ImagePrep;
use iisan::data::text::TextPrep;
use iisan::data::{DataOptions, Dataset};
use iisan::efficiency::Profile;
use iisan::nn::{Ctx, ParamStore};
use iisan::train::Trainer;

/// (key, element count) of every tensor in a model folder's weights.
fn file_tensors(dir: &Path) -> Vec<(String, usize)> {
    let st = unsafe { MmapedSafetensors::new(dir.join("model.safetensors")) }.unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| (k, v.shape().iter().product()))
        .collect()
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn zero_up_projections(store: &ParamStore) {
    for p in store.params() {
        if p.name.contains(".up.") {
            p.var.set(&p.var.zeros_like().unwrap()).unwrap();
        }
    }
}

#[test]
fn lora_at_init_and_zero_adapters_reproduce_the_pretrained_towers_exactly() {
    let dev = Device::Cpu;
    let text = model_dir("minilm");
    let tb = TextPrep::from_model_dir(&text, 30)
        .unwrap()
        .batch(&["Mettler Toledo analytical balance", "glass beaker 250 ml"])
        .unwrap();
    let ids = Tensor::from_vec(tb.ids.clone(), (tb.batch, tb.len), &dev).unwrap();
    let mask = Tensor::from_vec(tb.mask.clone(), (tb.batch, tb.len), &dev).unwrap();
    let want = flat(
        &Bert::load(&text, &dev)
            .unwrap()
            .cls_states(&ids, &mask, &Ctx::eval())
            .unwrap(),
    );
    for tuning in [
        TowerTuning::Lora { r: 8, alpha: 1.0 },
        TowerTuning::Adapter { r: 64 },
    ] {
        let mut store = ParamStore::new(3, dev.clone());
        let (bert, taken) = {
            let mut pb = PeftBuilder {
                store: &mut store,
                tuning,
                prefix: "text".into(),
            };
            Bert::load_tuned(&text, &dev, &mut pb).unwrap()
        };
        assert!(
            taken.lock().unwrap().is_empty(),
            "{tuning:?} made pretrained weights trainable"
        );
        // 6 layers x 2 sites: LoRA A [8,384] + B [384,8]; adapter 384*64+64 + 64*384+384
        let per = match tuning {
            TowerTuning::Lora { .. } => 2 * 8 * 384,
            _ => 2 * 384 * 64 + 64 + 384,
        };
        assert_eq!(store.num_trainable(), 12 * per, "{tuning:?}");
        zero_up_projections(&store);
        let got = flat(&bert.cls_states(&ids, &mask, &Ctx::eval()).unwrap());
        assert_eq!(got, want, "{tuning:?} changed the pretrained function");
    }
    // the image tower, 28 px (2 x 2 patches of DINOv2-S/14)
    let image = model_dir("dinov2-small");
    let prep = ImagePrep::from_model_dir(&image, 28).unwrap();
    let img = image::RgbImage::from_fn(28, 28, |x, y| image::Rgb([x as u8 * 9, y as u8 * 9, 128]));
    let px = Tensor::from_vec(prep.from_rgb(&img).unwrap(), (1, 3, 28, 28), &dev).unwrap();
    let want = flat(
        &Vit::load(&image, 28, &dev)
            .unwrap()
            .cls_states(&px, &Ctx::eval())
            .unwrap(),
    );
    for tuning in [
        TowerTuning::Lora { r: 8, alpha: 1.0 },
        TowerTuning::Adapter { r: 64 },
    ] {
        let mut store = ParamStore::new(3, dev.clone());
        let (vit, _) = {
            let mut pb = PeftBuilder {
                store: &mut store,
                tuning,
                prefix: "image".into(),
            };
            Vit::load_tuned(&image, 28, &dev, &mut pb).unwrap()
        };
        zero_up_projections(&store);
        let got = flat(&vit.cls_states(&px, &Ctx::eval()).unwrap());
        assert_eq!(got, want, "{tuning:?} changed the pretrained image tower");
    }
}

fn config(data_dir: &Path, method: &str) -> Config {
    let text = model_dir("minilm");
    let image = model_dir("dinov2-small");
    Config::load(
        None,
        &[
            format!("data.dir={:?}", data_dir.to_str().unwrap()),
            format!("model.method={method:?}"),
            format!("model.towers.text_model={:?}", text.to_str().unwrap()),
            format!("model.towers.image_model={:?}", image.to_str().unwrap()),
            "model.towers.image_size=28".into(),
        ],
    )
    .unwrap()
}

#[test]
fn each_method_trains_exactly_its_intended_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::synth_at(&tmp.path().join("d"), 40, 30, 28);
    let data = Dataset::load(&dir, &DataOptions::default()).unwrap();
    let (text, image) = (
        file_tensors(&model_dir("minilm")),
        file_tensors(&model_dir("dinov2-small")),
    );
    let file_total: usize = text.iter().chain(&image).map(|t| t.1).sum();
    let biases: usize = text
        .iter()
        .chain(&image)
        .filter(|(k, _)| k.ends_with(".bias") || k.ends_with(".beta"))
        .map(|t| t.1)
        .sum();
    let users: Vec<usize> = (0..12).collect();
    for method in ["fft", "adapter", "lora", "bitfit", "iisan_uncached"] {
        let cfg = config(&dir, method);
        let (plan, model) = common::build_model(cfg, &data);
        let mut t = Trainer::new(&plan, &data, &model).unwrap();
        // one update first: LoRA's A has an exactly zero gradient while B is at its zero init
        let before = t.params().snapshot().unwrap();
        t.step(&users).unwrap();
        let moved = t
            .params()
            .params()
            .iter()
            .zip(&before)
            .filter(|(p, b)| {
                let d = (p.var.as_tensor() - *b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap();
                d.to_scalar::<f32>().unwrap() > 0.0
            })
            .count();
        assert!(moved > 0, "{method}: no update");
        let (loss, grads) = t.gradients(&users, &mut Profile::default()).unwrap();
        assert!(loss.is_finite(), "{method}: loss {loss}");
        assert_every_param_has_gradient(t.params(), &grads, method);
        let params = t.params().params();
        let tower =
            |p: &&iisan::nn::Param| p.name.starts_with("text.") || p.name.starts_with("image.");
        let in_tower: usize = params
            .iter()
            .filter(tower)
            .map(|p| p.var.elem_count())
            .sum();
        let names: Vec<&str> = params
            .iter()
            .filter(tower)
            .map(|p| p.name.as_str())
            .collect();
        for p in params.iter().filter(|p| !tower(p)) {
            assert!(
                p.name.starts_with("item.") || p.name.starts_with("user."),
                "{method}: unexpected parameter {}",
                p.name
            );
        }
        match method {
            // every tensor the towers use trains; unused file tensors (MiniLM's pooler,
            // DINOv2's mask token) are all that stays frozen
            "fft" => assert!(
                in_tower <= file_total && in_tower as f64 > 0.99 * file_total as f64,
                "fft trains {in_tower} of {file_total}"
            ),
            "adapter" => assert!(names.iter().all(|n| n.contains(".adapter_")), "{names:?}"),
            "lora" => assert!(names.iter().all(|n| n.contains(".lora_")), "{names:?}"),
            // the towers' bias count: every bias both towers use (the pooler's is unused)
            "bitfit" => {
                assert!(
                    names
                        .iter()
                        .all(|n| n.ends_with(".bias") || n.ends_with(".beta"))
                );
                let pooler = 384; // MiniLM pooler.dense.bias, in the file but unused
                assert_eq!(in_tower, biases - pooler, "bitfit");
                // at each tower's own rate, as the authors (text 5e-5, image 1e-4)
                for p in params.iter().filter(tower) {
                    let want = if p.name.starts_with("text.") {
                        "text_tower"
                    } else {
                        "image_tower"
                    };
                    assert_eq!(p.group, want, "{}", p.name);
                }
            }
            // the side network only, same count as cached IISAN on 384-wide towers
            _ => {
                assert!(names.is_empty(), "{names:?}");
                assert_eq!(t.params().num_trainable(), 1_671_637);
            }
        }
    }
}

/// `iisan_uncached` with its tap lists left out takes them from the tower folders' configs:
/// MiniLM's 6 layers -> every state; DINOv2-S's 12 -> [0, 2, ..., 12].
#[test]
fn uncached_iisan_derives_its_taps_from_the_tower_configs() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = config(tmp.path(), "iisan_uncached").check().unwrap();
    let ic = plan.resolve().unwrap().cfg().model.iisan.clone();
    assert_eq!(ic.text_taps, Some((0..=6).collect()));
    assert_eq!(ic.image_taps, Some((0..=12).step_by(2).collect()));
}
