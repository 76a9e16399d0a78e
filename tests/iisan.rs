//! IISAN over hidden-state caches built from random states (no model weights needed): the paper
//! configuration's trainable parameter count, the gates' start value, and every modality /
//! fusion option training without error.

mod common;

use std::path::Path;

use common::assert_every_param_has_gradient;

use iisan::Config;
use iisan::cache::items_fingerprint;
use iisan::cache::{CacheDtype, CacheHeader, CacheWriter};
use iisan::data::synth::{self, SynthConfig};
use iisan::data::{DataOptions, Dataset};
use iisan::efficiency::Profile;
use iisan::model::Kernels;
use iisan::train::Trainer;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Write a cache of random states `[items + 1, states, width]` for `data` to `dir/name`.
fn random_cache(
    data: &Dataset,
    dir: &Path,
    name: &str,
    modality: &str,
    states: usize,
    width: usize,
) {
    let header = CacheHeader {
        model: "random".into(),
        modality: modality.into(),
        states,
        width,
        dtype: CacheDtype::F32,
        items: data.num_items(),
        items_fingerprint: items_fingerprint(data),
        preprocessing: "random".into(),
        tower: None,
        images_sha256: None,
        shard: None,
    };
    let mut w = CacheWriter::create_or_resume(&dir.join(name), header).unwrap();
    let mut rng = StdRng::seed_from_u64(states as u64 * 31 + width as u64);
    let v: Vec<f32> = (0..data.num_items() * states * width)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    w.append(&v).unwrap();
    w.finish().unwrap();
}

fn setup(
    width_text: usize,
    states_text: usize,
    width_image: usize,
) -> (tempfile::TempDir, Dataset) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    synth::write(
        &SynthConfig {
            users: 120,
            items: 60,
            image_size: 8,
            ..Default::default()
        },
        &dir,
        false,
    )
    .unwrap();
    let data = Dataset::load(&dir, &DataOptions::default()).unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    random_cache(&data, &cache, "text.hsc", "text", states_text, width_text);
    random_cache(&data, &cache, "image.hsc", "image", 13, width_image);
    (tmp, data)
}

fn config(tmp: &Path, sets: &[&str]) -> Config {
    let mut all = vec![
        format!("data.cache={:?}", tmp.join("cache").to_str().unwrap()),
        "model.method=\"iisan\"".into(),
    ];
    all.extend(sets.iter().map(|s| s.to_string()));
    Config::load(None, &all).unwrap()
}

#[test]
fn paper_configuration_has_4_113_877_trainable_parameters() {
    // D = 768 towers with 13 states each, taps [0,2,...,12] on both, d = 64, intra_inter:
    // 21 SAN blocks x 99,136 + 21 gates + 3 heads x 639,808 + fusion 12,352 + user 100,224.
    let (tmp, data) = setup(768, 13, 768);
    let cfg = config(tmp.path(), &["model.iisan.text_taps=[0,2,4,6,8,10,12]"]);
    let (plan, model) = common::build_model(cfg, &data);
    let t = Trainer::new(&plan, &data, &model).unwrap();
    assert_eq!(t.params().num_trainable(), 4_113_877);
    let gates: Vec<_> = t
        .params()
        .params()
        .iter()
        .filter(|p| p.name.ends_with("gates.theta"))
        .collect();
    assert_eq!(gates.len(), 3);
    for g in gates {
        // theta = 0 -> g = sigmoid(0) = 0.5
        assert!(g.var.to_vec1::<f32>().unwrap().iter().all(|&v| v == 0.0));
    }
    // SAN blocks are in their own learning-rate group
    let san: usize = t
        .params()
        .params()
        .iter()
        .filter(|p| p.group == "san")
        .map(|p| p.var.elem_count())
        .sum();
    assert_eq!(san, 21 * 99_136);
}

#[test]
fn every_modality_and_fusion_trains_and_every_parameter_gets_a_gradient() {
    // MiniLM-like text (7 x 384) and a wider image tower (13 x 512): Versa width maps in use.
    let (tmp, data) = setup(384, 7, 512);
    let users: Vec<usize> = (0..32).collect();
    for (modality, fusion, first) in [
        ("intra_inter", "gate", false),
        ("intra", "gate", false),
        ("inter", "gate", false),
        ("text", "gate", false),
        ("image", "gate", false),
        ("intra_inter", "add", true),
    ] {
        let m = format!("model.iisan.modality={modality:?}");
        let f = format!("model.iisan.fusion={fusion:?}");
        let r = format!("model.iisan.remove_first={first}");
        let cfg = config(tmp.path(), &[&m, &f, &r]);
        let (plan, model) = common::build_model(cfg, &data);
        let mut t = Trainer::new(&plan, &data, &model).unwrap();
        let (_, grads) = t.gradients(&users, &mut Profile::default()).unwrap();
        assert_every_param_has_gradient(t.params(), &grads, &format!("{modality}/{fusion}"));
        let before = t.loss(&users).unwrap().to_scalar::<f32>().unwrap();
        for _ in 0..5 {
            t.step(&users).unwrap();
        }
        let after = t.loss(&users).unwrap().to_scalar::<f32>().unwrap();
        assert!(
            after.is_finite() && before.is_finite(),
            "{modality}: {before} -> {after}"
        );
        let eval = t.evaluate(iisan::data::Split::Valid).unwrap();
        assert!(eval.metrics.none.get(iisan::eval::Metric::Hr(10)) >= 0.0);
    }
}

/// Everything on the CPU kernels (`train.kernels = "cpu"`: the IISAN tower of
/// `model/iisan/fusion.rs`, the user encoder, the loss) against candle autograd: equal loss and equal gradients for every parameter, in every modality and fusion,
/// with Versa width maps (text 384 vs image 512) in the inter path. Both trainers share the
/// seed, so the user encoder draws the same dropout masks.
#[test]
fn cpu_kernels_match_autograd_for_every_option() {
    let (tmp, data) = setup(384, 7, 512);
    let users: Vec<usize> = (0..48).collect();
    for (modality, fusion, first) in [
        ("intra_inter", "gate", false),
        ("intra", "gate", false),
        ("inter", "gate", false),
        ("text", "gate", false),
        ("image", "add", false),
        ("intra_inter", "add", true),
        // the intra paths start from state 0: the gates' gradient is d x . (h_k - s_k-1)
        ("intra_inter", "gate", true),
    ] {
        let m = format!("model.iisan.modality={modality:?}");
        let f = format!("model.iisan.fusion={fusion:?}");
        let r = format!("model.iisan.remove_first={first}");
        let run = |kernels: &str| {
            let k = format!("train.kernels={kernels:?}");
            let cfg = config(tmp.path(), &[&m, &f, &r, &k]);
            let (plan, model) = common::build_model(cfg, &data);
            loss_and_gradients(&Trainer::new(&plan, &data, &model).unwrap(), &users)
        };
        let what = format!("{modality}/{fusion}/remove_first={first}");
        assert_same_gradients(&what, run("cpu"), run("autograd"), 1e-5, 2e-4);
    }
}

/// The training loss of `users` and every parameter's gradient, by name.
fn loss_and_gradients(t: &Trainer, users: &[usize]) -> (f32, Vec<(String, Vec<f32>)>) {
    let (loss, grads) = t.gradients(users, &mut Profile::default()).unwrap();
    let g = t
        .params()
        .params()
        .iter()
        .map(|p| {
            let v = grads.get(p.var.as_tensor()).expect("gradient");
            (p.name.clone(), v.flatten_all().unwrap().to_vec1().unwrap())
        })
        .collect();
    (loss, g)
}

/// Losses within `loss_tol`, and each parameter's gradients within `rel` of its largest entry.
fn assert_same_gradients(
    what: &str,
    (la, ga): (f32, Vec<(String, Vec<f32>)>),
    (lb, gb): (f32, Vec<(String, Vec<f32>)>),
    loss_tol: f32,
    rel: f32,
) {
    assert!((la - lb).abs() < loss_tol, "{what}: loss {la} vs {lb}");
    for ((name, a), (_, b)) in ga.iter().zip(&gb) {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= rel * scale,
            "{what}: {name} max |diff| {diff:e} (max |grad| {scale:e})"
        );
    }
}

/// The user encoder and in-batch loss on their CPU kernels (`model/sasrec/encoder.rs`,
/// `train/loss/in_batch.rs`) against candle autograd, with dropout active (both draw the same
/// masks from the same seed): equal loss and equal gradients for every parameter, under an
/// item tower with its own backward (IISAN's tower on its CPU kernels) and one differentiated by autograd
/// (the ID embedding table), over several steps so that the Adam updates are compared too.
#[test]
fn user_kernels_match_autograd_with_dropout() {
    let (tmp, data) = setup(384, 7, 512);
    let users: Vec<usize> = (0..64).collect();
    for method in ["iisan", "id"] {
        let m = format!("model.method={method:?}");
        // On one thread and on two (where the tower and the user encoder each process
        // two halves of the batch at once and the matrix products split into blocks).
        let run = |kernels: &str, threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let k = format!("train.kernels={kernels:?}");
                let cfg = config(tmp.path(), &[&m, &k, "model.user.dropout=0.2"]);
                // the item tower on its CPU kernels in both arms: only the user side differs
                let (plan, model) = common::build_model_with(cfg, &data, Kernels::Cpu);
                let mut t = Trainer::new(&plan, &data, &model).unwrap();
                for s in 0..2 {
                    t.step(&users[s * 16..s * 16 + 48]).unwrap();
                }
                loss_and_gradients(&t, &users)
            })
        };
        let reference = run("autograd", 1);
        for threads in [1, 2] {
            let what = format!("{method}, {threads} threads");
            assert_same_gradients(&what, run("cpu", threads), reference.clone(), 1e-4, 1e-3);
        }
    }
}
