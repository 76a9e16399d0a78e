//! Random-weight tower folders of a published layout (`iisan models random`): bert-base-uncased
//! and ViT-B/16 shapes with N(0, 0.02) weights, written as Hugging Face folders the loaders read
//! like any other. Time and memory of a step do not depend on the weights' values (random
//! values, not zeros: some GPU kernels run faster on zeros), so the paper's efficiency table
//! can be measured at its scale without its 0.4 + 0.3 GB of downloads (docs/GPU.md).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

use super::bert::{Bert, BertConfig};
use super::random_decoder::{
    DecoderShape, QWEN3_0_6B, QWEN25_0_5B, QWEN25_1_5B, QWEN25_7B, SMOLLM2_135M, fill_decoder,
};
use super::vit::{Vit, VitConfig};
use crate::data::output::scratch_beside;
use crate::error::{Error, Result};

/// A published tower layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// bert-base-uncased: 12 layers x 768, vocabulary 30,522 (108.9 M parameters).
    BertBase,
    /// google/vit-base-patch16-224: 12 layers x 768, 224 px, 16 px patches (85.8 M).
    VitB16,
    /// SmolLM2-135M: LLaMA, 30 layers x 576 (134.5 M).
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    /// Qwen2.5-0.5B: 24 layers x 896 (494 M).
    #[value(name = "qwen2.5-0.5b")]
    Qwen25_0_5b,
    /// Qwen3-0.6B: 28 layers x 1,024 (596 M).
    #[value(name = "qwen3-0.6b")]
    Qwen3_0_6b,
    /// Qwen2.5-1.5B: 28 layers x 1,536 (1.54 B).
    #[value(name = "qwen2.5-1.5b")]
    Qwen25_1_5b,
    /// Qwen2.5-7B: 28 layers x 3,584 (7.07 B; written in bf16: 14 GB instead of 28).
    #[value(name = "qwen2.5-7b")]
    Qwen25_7b,
}

impl Layout {
    /// The decoder shape of a decoder layout.
    fn decoder(self) -> Option<DecoderShape> {
        Some(match self {
            Layout::Smollm2_135m => SMOLLM2_135M,
            Layout::Qwen25_0_5b => QWEN25_0_5B,
            Layout::Qwen3_0_6b => QWEN3_0_6B,
            Layout::Qwen25_1_5b => QWEN25_1_5B,
            Layout::Qwen25_7b => QWEN25_7B,
            Layout::BertBase | Layout::VitB16 => return None,
        })
    }
}

/// Write a folder `out` (which must not exist; written beside and renamed) holding
/// `config.json` and `model.safetensors` of `layout` with N(0, 0.02) weights from `seed`, plus
/// `tokenizer.json` copied from `tokenizer_from` (BERT: the uncased 30,522-token vocabulary, e.g.
/// MiniLM's) or a `preprocessor_config.json` (ViT: mean = std = 0.5). Returns the parameter
/// count.
pub fn write_random(
    layout: Layout,
    out: &Path,
    seed: u64,
    tokenizer_from: Option<&Path>,
) -> Result<usize> {
    if out.exists() {
        return Err(Error::file(out, "exists: choose a new folder"));
    }
    // the scratch folder is removed if filling it fails (data::output::Scratch)
    let tmp = scratch_beside(out)?;
    let n = fill(layout, &tmp, seed, tokenizer_from)?;
    std::fs::rename(&*tmp, out).map_err(|e| Error::io(out, e))?;
    tmp.keep();
    Ok(n)
}

/// Build the layout on a variable map, draw its values and write the folder's files into `dir`.
fn fill(layout: Layout, dir: &Path, seed: u64, tokenizer_from: Option<&Path>) -> Result<usize> {
    if let Some(shape) = layout.decoder() {
        copy_tokenizer(tokenizer_from, dir)?;
        return fill_decoder(shape, dir, seed, layout == Layout::Qwen25_7b);
    }
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    let file = dir.join("model.safetensors");
    let config = match layout {
        Layout::BertBase => {
            let mut c = BertConfig::bert_base();
            c.model_type = Some("bert".into());
            Bert::new(vb, c.clone(), &file)?;
            copy_tokenizer(tokenizer_from, dir)?;
            serde_json::to_string_pretty(&c)
        }
        Layout::VitB16 => {
            let c = VitConfig::vit_base();
            Vit::new(vb, c.clone(), c.image_size, &file)?;
            let pre = r#"{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#;
            let p = dir.join("preprocessor_config.json");
            std::fs::write(&p, pre).map_err(|e| Error::io(&p, e))?;
            serde_json::to_string_pretty(&c)
        }
        _ => unreachable!("decoder layouts returned above"),
    }
    .map_err(|e| Error::Internal(format!("config as JSON: {e}")))?;
    let cfg = dir.join("config.json");
    std::fs::write(&cfg, config).map_err(|e| Error::io(&cfg, e))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0f32, 0.02).expect("valid");
    let mut n = 0;
    let data = vm.data().lock().expect("not poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort(); // a fixed drawing order: the seed fixes every value
    for name in names {
        let var = &data[name];
        let v: Vec<f32> = (0..var.elem_count())
            .map(|_| normal.sample(&mut rng))
            .collect();
        var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu)?)?;
        n += var.elem_count();
    }
    drop(data);
    vm.save(&file)
        .map_err(|e| Error::file(&file, format!("cannot write: {e}")))?;
    Ok(n)
}

/// Copy `tokenizer.json` of the folder `from` into `dir` (text layouts need one).
fn copy_tokenizer(from: Option<&Path>, dir: &Path) -> Result<()> {
    let src = from.ok_or_else(|| {
        Error::Config("a text layout needs --tokenizer-from (a folder with the uncased 30,522-token tokenizer.json, e.g. models/minilm; its ids fit every text layout's vocabulary)".into())
    })?;
    let from = src.join("tokenizer.json");
    std::fs::copy(&from, dir.join("tokenizer.json")).map_err(|e| Error::io(&from, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The folder loads as a tower of the published size: ViT-B/16's 85,798,656 parameters
    /// (counted by hand in vit.rs's shape test) and 13 states of width 768.
    #[test]
    fn a_random_vit_b16_folder_loads_with_the_published_shapes() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("vit-b16");
        assert_eq!(
            write_random(Layout::VitB16, &out, 7, None).unwrap(),
            85_798_656
        );
        let vit = Vit::load(&out, 224, &Device::Cpu).unwrap();
        assert_eq!(vit.num_states(), 13);
        let again = write_random(Layout::VitB16, &out, 7, None).unwrap_err();
        assert!(again.to_string().contains("exists"), "{again}");
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "no scratch folder left beside it");
    }
}
