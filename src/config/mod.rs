//! The run configuration: one TOML document whose defaults are the paper's settings
//! (docs/MODEL.md sections 4-6), overridable key by key from the command line (`--set train.batch=32`),
//! and validated before any work starts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod check;
mod legacy;
mod overrides;

pub use check::{Plan, Schedule, check_run_name};

use crate::data::DataOptions;
use crate::error::{Error, Result};
use crate::eval::{Mask, Metric};
use crate::model::{Kernels, Method, ModelConfig};
use crate::nn::{DeviceSpec, TowerDType};

/// Where the data comes from and how it is preprocessed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset directory holding `items.tsv` and `users.tsv` (relative paths resolve against the
    /// working directory).
    pub dir: PathBuf,
    /// Hidden-state cache directory written by `iisan encode` (`text.hsc`, `image.hsc`);
    /// needed by `method = "iisan"`.
    pub cache: Option<PathBuf>,
    /// Preprocessing options.
    pub options: DataOptions,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dir: PathBuf::from("data/synthetic"),
            cache: None,
            options: DataOptions::default(),
        }
    }
}

/// Optimisation and early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Users per batch.
    pub batch: usize,
    /// Maximum epochs.
    pub epochs: usize,
    /// Stop after `patience + 1` epochs without a better validation `select_metric`.
    pub patience: usize,
    /// Learning rate of parameters whose group has no entry in `lr_groups`.
    pub lr: f64,
    /// Learning rate per parameter group (e.g. `san = 1e-4`).
    pub lr_groups: BTreeMap<String, f64>,
    /// Adam beta1.
    pub beta1: f64,
    /// Adam beta2.
    pub beta2: f64,
    /// Adam epsilon.
    pub eps: f64,
    /// Seed of initialisation, shuffling and dropout.
    pub seed: u64,
    /// Compute threads (0 = all cores).
    pub threads: usize,
    /// Validation metric for early stopping and model selection, e.g. `HR@10`, `NDCG@10`, `MRR`.
    pub select_metric: Metric,
    /// Cap on training steps per epoch (0 = a full pass); for quick runs and measurements.
    pub max_steps_per_epoch: usize,
    /// Steps at the start of the run left out of the seconds-per-epoch figure (warm-up).
    pub warmup_steps: usize,
    /// Print the per-phase time profile at the end of training (it is always in summary.json).
    pub profile: bool,
    /// Hand-written CPU kernels (`cpu`, the default) or candle autograd (`autograd`) for the
    /// IISAN tower, the user encoder and the loss. They run on the CPU only: on another device
    /// every part runs on candle ops (autograd).
    pub kernels: Kernels,
    /// Where the model trains, evaluates and embeds items: `cpu`, `cuda` or `cuda:N`
    /// (docs/GPU.md; CUDA needs a build with `--features cuda`).
    pub device: DeviceSpec,
    /// The training loss: `inbatch` (the paper's in-batch softmax with logQ correction) or
    /// `full` (softmax cross-entropy over the whole catalogue; `id` and cached `iisan` only);
    /// docs/MODEL.md section 5.
    pub loss: Loss,
    /// The precision training computes in: `f32` (the default), or the authors' mixed
    /// precision `bf16` / `f16` (products and activations in half precision; f32 master
    /// weights, Adam moments, LayerNorm and softmax statistics and the loss; f16 with dynamic
    /// loss scaling). For a GPU: on the CPU only with `kernels = "autograd"` (docs/GPU.md).
    pub precision: TowerDType,
}

/// Which softmax the training loss normalises over (docs/MODEL.md section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Loss {
    /// The other targets of the batch, corrected by their log popularity (the paper's).
    #[default]
    #[serde(rename = "inbatch")]
    InBatch,
    /// Every item of the catalogue, every step.
    #[serde(rename = "full")]
    Full,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch: 64,
            epochs: 100,
            patience: 10,
            lr: 2e-4,
            lr_groups: BTreeMap::from([
                ("san".to_string(), 1e-4),
                ("adapter".to_string(), 4e-4),
                ("lora".to_string(), 4e-4),
                ("text_tower".to_string(), 5e-5),
                ("image_tower".to_string(), 1e-4),
                ("text_head".to_string(), 5e-5),
                ("image_head".to_string(), 1e-4),
                ("image_gates".to_string(), 1e-4),
            ]),
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            seed: 12345,
            threads: 0,
            select_metric: Metric::Hr(10),
            max_steps_per_epoch: 0,
            profile: false,
            warmup_steps: 0,
            kernels: Kernels::Cpu,
            device: DeviceSpec::Cpu,
            loss: Loss::InBatch,
            precision: TowerDType::F32,
        }
    }
}

/// Evaluation protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Masking convention used for model selection (both are always reported).
    pub mask: Mask,
    /// Cut-offs K of HR@K and NDCG@K.
    pub ks: Vec<usize>,
    /// Items embedded and scored per chunk. 1024 rather than larger: IISAN's chunk buffers
    /// (tap-major states and per-block activations, ~35 MB at 1024 items) stay small; at 4096
    /// a Scientific validation pass took 2.44 s and peaked at 523 MiB, at 1024 1.88 s and
    /// 377 MiB (same metrics).
    pub item_chunk: usize,
    /// Users ranked per chunk.
    pub user_chunk: usize,
    /// Measure training cost only: no validation or test evaluation (no early stopping, no
    /// metrics in the summary). For methods whose full-catalogue evaluation is too slow here.
    pub skip: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            mask: Mask::History,
            ks: vec![10],
            item_chunk: 1024,
            user_chunk: 1024,
            skip: false,
        }
    }
}

/// Where the run directory goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Parent directory of run directories.
    pub dir: PathBuf,
    /// Run name (default: `<method>-<dataset>-<timestamp>`).
    pub name: String,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            dir: PathBuf::from("runs"),
            name: String::new(),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data.
    pub data: DataConfig,
    /// Model.
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Evaluation.
    pub eval: EvalConfig,
    /// Output.
    pub run: RunConfig,
}

impl Config {
    /// Load `path` (or the defaults when `None`) and apply `sets`; the result is unchecked:
    /// [`Config::check`] turns it into a [`Plan`].
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config> {
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
                Self::from_text(&text, Some(p), sets)
            }
            None => Self::from_text("", None, sets),
        }
    }

    /// [`Config::load`] of a file's text (`path` names it in errors; `None`: the defaults).
    pub fn from_text(text: &str, path: Option<&Path>, sets: &[String]) -> Result<Config> {
        let table = toml::from_str::<toml::Table>(text).map_err(|e| {
            // the reason and the line, on one line (Display spans several)
            let line = e.span().map_or(1, |r| {
                text.get(..r.start)
                    .map_or(1, |t| t.matches('\n').count() + 1)
            });
            let file = path.unwrap_or(Path::new("config"));
            Error::line(file, line, format!("invalid TOML: {}", e.message().trim()))
        })?;
        Self::from_table(table, path, sets)
    }

    /// [`Config::load`] of a TOML table already parsed (e.g. converted from a Python dict;
    /// `origin` names it in errors).
    pub fn from_table(
        mut table: toml::Table,
        origin: Option<&Path>,
        sets: &[String],
    ) -> Result<Config> {
        overrides::apply_overrides(&mut table, sets)?;
        legacy::migrate(&mut table)?;
        // the path of the first bad value comes with its error (`train.batch: invalid type`)
        let cfg: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let origin = origin.map_or("defaults".into(), |p| p.display().to_string());
                let key = e.path().to_string();
                let why = e.into_inner().message().trim().to_string();
                Error::Config(format!("{origin} (with --set overrides): {key}: {why}"))
            })?;
        Ok(cfg)
    }

    /// The method as reported in tables: `id`, or `iisan:<modality>` (plus `:add` for additive
    /// fusion).
    pub fn method_label(&self) -> String {
        match self.model.method {
            m @ (Method::Iisan | Method::IisanUncached) => {
                let i = &self.model.iisan;
                let add = if i.fusion == crate::model::iisan::Fusion::Add {
                    ":add"
                } else {
                    ""
                };
                format!("{}:{}{add}", m.name(), i.modality.name())
            }
            Method::Id => "id".to_string(),
            m => {
                let t = &self.model.towers;
                let towers = match (&t.text_model, &t.image_model) {
                    (Some(_), Some(_)) => "text+image",
                    (Some(_), None) => "text",
                    (None, Some(_)) => "image",
                    (None, None) => "none",
                };
                format!("{}:{towers}", m.name())
            }
        }
    }

    /// The learning rate of parameter group `group`.
    pub fn lr_of(&self, group: &str) -> f64 {
        self.train
            .lr_groups
            .get(group)
            .copied()
            .unwrap_or(self.train.lr)
    }

    /// The resolved configuration as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserEncoderConfig;

    #[test]
    fn defaults_are_the_papers() {
        let c = Config::load(None, &[]).unwrap();
        assert_eq!(
            (
                c.train.batch,
                c.train.epochs,
                c.train.patience,
                c.train.seed
            ),
            (64, 100, 10, 12345)
        );
        assert_eq!(c.lr_of("san"), 1e-4);
        assert_eq!(c.lr_of("default"), 2e-4);
        // the authors' per-head rates (docs/MODEL.md section 5)
        assert_eq!(c.lr_of("text_head"), 5e-5);
        assert_eq!(
            (c.lr_of("image_head"), c.lr_of("image_gates")),
            (1e-4, 1e-4)
        );
        assert_eq!(c.model.user, UserEncoderConfig::default());
        assert_eq!(c.data.options.max_seq_len, 10);
        assert_eq!(c.eval.mask, Mask::History);
    }

    #[test]
    fn overrides_parse_types_and_reject_unknown_keys() {
        let sets = [
            "train.batch=32",
            "eval.mask=none",
            "eval.ks=[5,10]",
            "data.dir=x/y",
            "train.lr_groups.san=3e-4",
        ]
        .map(String::from);
        let c = Config::load(None, &sets).unwrap();
        assert_eq!(c.train.batch, 32);
        assert_eq!(c.eval.mask, Mask::None);
        assert_eq!(c.eval.ks, [5, 10]);
        assert_eq!(c.data.dir, PathBuf::from("x/y"));
        assert_eq!(c.lr_of("san"), 3e-4);
        let e = Config::load(None, &["train.bach=3".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `bach`"), "{e}");
        let e = Config::load(None, &["eval.mask=all".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown variant `all`"), "{e}");
        let e = Config::load(None, &["train.batch".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected key.path=value"), "{e}");
    }

    #[test]
    fn validation_names_the_key() {
        let cases = [
            ("train.batch=0", "train.batch"),
            ("train.lr=-1", "train.lr"),
            ("model.user.heads=3", "model.user.heads"),
            ("train.select_metric=\"HR@20\"", "train.select_metric"),
            ("data.options.min_seq_len=2", "data.options.min_seq_len"),
            ("eval.ks=[]", "eval.ks"),
            ("train.eps=nan", "train.eps"),
            ("model.user.dropout=inf", "model.user.dropout"),
            (
                "train.lr_groups.image_head=-inf",
                "train.lr_groups.image_head",
            ),
            ("run.name=\"a/b\"", "run.name"),
            ("run.name=\".hidden\"", "run.name"),
            ("train.lr_groups.sann=1e-4", "train.lr_groups.sann"),
        ];
        for (set, key) in cases {
            let e = Config::load(None, &[set.to_string()])
                .and_then(Config::check)
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{set}: {e}");
        }
    }

    /// The full softmax is for the methods that embed the catalogue without the towers.
    #[test]
    fn the_full_loss_is_refused_where_the_towers_would_run_over_every_item() {
        for (method, ok) in [
            ("id", true),
            ("iisan", true),
            ("fft", false),
            ("iisan_uncached", false),
        ] {
            let sets = [
                format!("model.method={method:?}"),
                "train.loss=\"full\"".into(),
            ];
            let r = Config::load(None, &sets).and_then(Config::check);
            assert_eq!(r.is_ok(), ok, "{method}");
            if let Err(e) = r {
                assert!(e.to_string().contains("train.loss"), "{e}");
            }
        }
        let e = Config::load(None, &["train.loss=\"sampled\"".into()]).unwrap_err();
        assert!(e.to_string().contains("train.loss"), "{e}");
    }

    /// The IISAN section is checked for both IISAN methods; a checked plan changed later is
    /// checked again (a half-precision tower dtype is refused for a method that trains them).
    #[test]
    fn iisan_options_are_checked_for_uncached_iisan_and_changes_are_checked_again() {
        for method in ["iisan", "iisan_uncached"] {
            let sets = [
                format!("model.method=\"{method}\""),
                "model.iisan.bottleneck=0".into(),
            ];
            let e = Config::load(None, &sets).unwrap().check().unwrap_err();
            assert!(
                e.to_string().contains("model.iisan.bottleneck"),
                "{method}: {e}"
            );
        }
        let cfg = Config::load(None, &["model.method=\"fft\"".into()]).unwrap();
        let plan = cfg.check().unwrap();
        let e = plan
            .changed(|c| c.model.towers.dtype = crate::nn::TowerDType::Bf16)
            .unwrap_err();
        assert!(e.to_string().contains("model.towers.dtype"), "{e}");
        let ok = plan.changed(|c| c.train.batch = 8).unwrap();
        assert_eq!(ok.cfg().train.batch, 8);
    }

    #[test]
    fn set_values_keep_text_keys_text_and_refuse_broken_lists() {
        let c = Config::load(None, &["run.name=2024".into()]).unwrap();
        assert_eq!(c.run.name, "2024");
        let e = Config::load(None, &["eval.ks=[10,".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config: --set \"eval.ks=[10,\": not a TOML value"),
            "{e}"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_is_named_by_its_key() {
        let e = Config::load(None, &["train.batch=\"big\"".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.batch: invalid type"), "{e}");
    }

    #[test]
    fn a_toml_syntax_error_names_the_line_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[train]\nbatch = 32\nlr = = 1\n").unwrap();
        let e = Config::load(Some(&f), &[]).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: invalid TOML:"), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn resolved_config_roundtrips_through_toml() {
        let c = Config::load(None, &["train.batch=16".into()]).unwrap();
        let back: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
    }
}
