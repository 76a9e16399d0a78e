//! Helpers shared by the integration tests: run the `iisan` binary and build small data.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Run the `iisan` binary with `args` in `cwd`.
pub fn iisan(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iisan"))
        .args(args)
        .current_dir(cwd)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("run iisan")
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The shared Scientific dataset (CI and developer machines have `../shared`).
pub fn scientific() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/amazon-scientific");
    assert!(
        p.join("users.tsv").exists(),
        "missing {}: the shared data must be present",
        p.display()
    );
    p
}

/// Write a small synthetic dataset into `dir/name` with the binary; returns its path.
pub fn small_synth(dir: &Path, name: &str, users: usize, items: usize) -> PathBuf {
    let out = dir.join(name);
    let o = iisan(
        dir,
        &[
            "data",
            "synth",
            "--out",
            out.to_str().unwrap(),
            "--users",
            &users.to_string(),
            "--items",
            &items.to_string(),
            "--image-size",
            "16",
            "--seed",
            "11",
        ],
    );
    assert!(o.status.success(), "synth failed: {}", stderr(&o));
    out
}

/// A synthetic dataset written in-process at `dir` (`users` users, `items` items, images of
/// `image_size` px; the generator's default seed).
pub fn synth_at(dir: &Path, users: usize, items: usize, image_size: u32) -> PathBuf {
    let sc = iisan::data::synth::SynthConfig {
        users,
        items,
        image_size,
        ..Default::default()
    };
    iisan::data::synth::write(&sc, dir, false).expect("synthetic data");
    dir.to_path_buf()
}

/// Assert that every trainable parameter of `params` has a non-zero gradient in `grads`
/// (`what` labels the failure).
pub fn assert_every_param_has_gradient(
    params: &iisan::nn::ParamStore,
    grads: &candle_core::backprop::GradStore,
    what: &str,
) {
    for p in params.params() {
        let g = grads
            .get(&p.var)
            .unwrap_or_else(|| panic!("{what}: {} has no gradient", p.name));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "{what}: {} has a zero gradient", p.name);
    }
}

/// A model folder installed by `scripts/fetch-models.sh` (or under `$IISAN_MODELS`); panics
/// with the fix when it is missing, so a test needing it never silently skips.
pub fn model_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("IISAN_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    let p = base.join(name);
    assert!(
        p.join("model.safetensors").exists(),
        "missing {}: run scripts/fetch-models.sh",
        p.display()
    );
    p
}

/// Check `cfg` and build its model for `data` (what `iisan train` does before a run starts).
pub fn build_model(
    cfg: iisan::Config,
    data: &iisan::data::Dataset,
) -> (iisan::config::Plan, iisan::model::TrainedModel) {
    let plan = cfg.check().expect("valid config");
    let model = plan.build_model(data).expect("model builds");
    (plan, model)
}

/// [`build_model`] with the item tower on `tower_kernels` whatever `train.kernels` says (the
/// trainer still runs the user encoder and loss as `train.kernels` says): to test one side's
/// kernels against autograd with the other side fixed.
pub fn build_model_with(
    cfg: iisan::Config,
    data: &iisan::data::Dataset,
    tower_kernels: iisan::model::Kernels,
) -> (iisan::config::Plan, iisan::model::TrainedModel) {
    let plan = cfg.check().expect("valid config");
    let c = &plan.cfg();
    let model = iisan::model::TrainedModel::build(
        &c.model,
        c.data.cache.as_deref(),
        (tower_kernels, c.train.precision),
        data,
        (c.train.seed, &candle_core::Device::Cpu),
    )
    .expect("model builds");
    (plan, model)
}

/// A small synthetic dataset `dir/d` (`users` users, `items` items, 16 px images) and its
/// hidden-state caches in `dir/cache` (MiniLM titles, DINOv2-S images at 112 px).
pub fn encoded_synth(dir: &Path, users: usize, items: usize) -> PathBuf {
    let data = small_synth(dir, "d", users, items);
    encode_both(dir, "d");
    data
}

/// `iisan encode` of dataset `dir/dataset` into `dir/cache` with MiniLM (titles) and DINOv2-S
/// (images at 112 px), asserting success; returns its stdout.
pub fn encode_both(dir: &Path, dataset: &str) -> String {
    let (text, image) = (model_dir("minilm"), model_dir("dinov2-small"));
    let o = iisan(
        dir,
        &[
            "encode",
            "--dataset",
            dataset,
            "--quiet",
            "--image-size",
            "112",
            "--out",
            "cache",
            "--text-model",
            text.to_str().unwrap(),
            "--image-model",
            image.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// Assert exit code 2 and a one-line stderr holding each of `want`.
pub fn one_line_exit_2(o: &Output, want: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout {} stderr {}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    for w in want {
        assert!(e.contains(w), "{e:?} lacks {w:?}");
    }
}

/// The overrides for IISAN over text and image: both intra paths and the inter path, 4 image
/// taps (the image tower of [`encoded_synth`] and [`tower_sets`] has 12 layers).
pub fn iisan_both_paths() -> [String; 2] {
    [
        "model.iisan.modality=\"intra_inter\"".into(),
        "model.iisan.image_taps=[0,4,8,12]".into(),
    ]
}

/// `--set` overrides for a 2-epoch run `name` of `method` on `data` with the caches of
/// [`encoded_synth`] (IISAN on text + image, 4 image taps).
pub fn run_sets(data: &Path, name: &str, method: &str) -> Vec<String> {
    let mut s = vec![
        format!("data.dir={:?}", data.to_str().unwrap()),
        "data.cache=\"cache\"".into(),
        format!("model.method=\"{method}\""),
        format!("run.name=\"{name}\""),
        "train.epochs=2".into(),
    ];
    if method == "iisan" {
        s.extend(iisan_both_paths());
    }
    s
}

/// `iisan train --quiet --set ...` in `cwd`, asserting success.
pub fn train_run(cwd: &Path, sets: &[String]) {
    let mut args = vec!["train", "--quiet"];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let o = iisan(cwd, &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `iisan data import amazon2023 --quiet --reviews REVIEWS --meta META EXTRA...` in `cwd`.
pub fn import_2023(cwd: &Path, reviews: &Path, meta: &Path, extra: &[&str]) -> Output {
    let (r, m) = (reviews.to_str().unwrap(), meta.to_str().unwrap());
    let mut args = vec!["data", "import", "amazon2023", "--quiet"];
    args.extend(["--reviews", r, "--meta", m]);
    args.extend(extra);
    iisan(cwd, &args)
}

/// The scores by item id of `iisan recommend RUN --history HISTORY -k K --json` run in `cwd`,
/// asserting success.
pub fn recommend_scores(
    cwd: &Path,
    run: &str,
    history: &str,
    k: usize,
) -> std::collections::HashMap<String, f64> {
    let k = k.to_string();
    let args = ["recommend", run, "--history", history, "-k", &k, "--json"];
    let o = iisan(cwd, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["id"].as_str().unwrap().to_string(),
                x["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// `model.towers` of MiniLM and DINOv2-S at `image_size` pixels, as `--set` values.
pub fn tower_sets(image_size: usize) -> Vec<String> {
    vec![
        format!(
            "model.towers.text_model={:?}",
            model_dir("minilm").to_str().unwrap()
        ),
        format!(
            "model.towers.image_model={:?}",
            model_dir("dinov2-small").to_str().unwrap()
        ),
        format!("model.towers.image_size={image_size}"),
    ]
}

/// The checked plan of `method` on the data in `data_dir` (batches of 16 users, `extra` keys
/// set too) and the loaded data.
pub fn method_plan(
    method: &str,
    data_dir: &Path,
    extra: &[String],
) -> (iisan::config::Plan, iisan::data::Dataset) {
    let mut sets = vec![
        format!("data.dir={:?}", data_dir.to_str().unwrap()),
        format!("model.method={method:?}"),
        "train.batch=16".into(),
    ];
    sets.extend_from_slice(extra);
    let plan = iisan::Config::load(None, &sets).unwrap().check().unwrap();
    let data = iisan::data::Dataset::load(&plan.cfg().data.dir, &plan.cfg().data.options).unwrap();
    (plan, data)
}
