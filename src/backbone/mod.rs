//! Frozen foundation towers that report the [CLS] state of every hidden state (docs/MODEL.md section 2):
//! index 0 = embedding output, index k = output of layer k, shape `[B, L + 1, D]`.
//!
//! [`bert`] loads Hugging Face BERT folders (MiniLM, bert-base-uncased); [`vit`] loads ViT
//! (google/vit-base-patch16-224) and DINOv2 folders; [`onnx_import`] turns the DINOv2 backbone
//! of an ONNX file into such a folder; [`random`] writes random-weight folders of the
//! published bert-base / ViT-B/16 layouts (for efficiency measurements). Weights are memory-mapped from `model.safetensors`.

pub mod bert;
pub mod clip;
pub mod decoder;
pub mod decoder_config;
pub mod encoders;
pub mod inputs;
pub mod onnx_import;
pub mod peft;
pub mod pooling;
pub mod random;
pub mod random_decoder;
pub mod rope;
pub mod vit;
pub mod vit_positions;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Module, VarBuilder};

use self::peft::{PeftBuilder, Proj};
use crate::error::{Error, Result};
use crate::nn::{Ctx, attention, frozen, frozen::Dense, layer_norm::LayerNorm};

/// Pretrained tensors made trainable while a tower was built: (safetensors key, the f32
/// variable, and under mixed precision the compute copy the tower was built with).
pub type Taken = Arc<Mutex<Vec<(String, Var, Option<Var>)>>>;

/// The memory-mapped safetensors of a model folder, handing out the tensors `select` picks
/// as fresh variables (copied out of the map in f32, recorded in [`Taken`]; a tower built in
/// half precision gets a compute copy in its dtype) and the rest as frozen views of the map.
struct TrainableBackend {
    inner: MmapedSafetensors,
    select: Box<dyn Fn(&str) -> bool + Send + Sync>,
    taken: Taken,
}

impl TrainableBackend {
    /// `get` reads the tensor in a given dtype: the frozen ones in the tower's, the trained
    /// ones in f32 for the master (and the tower's for the compute copy).
    fn read(
        &self,
        name: &str,
        dtype: DType,
        get: impl Fn(DType) -> candle_core::Result<Tensor>,
    ) -> candle_core::Result<Tensor> {
        if !(self.select)(name) {
            return get(dtype);
        }
        let master = Var::from_tensor(&get(DType::F32)?)?;
        let compute = match dtype {
            DType::F32 => None,
            d => Some(Var::from_tensor(&master.as_tensor().to_dtype(d)?)?),
        };
        let out = compute.as_ref().unwrap_or(&master).as_tensor().clone();
        self.taken
            .lock()
            .expect("not poisoned")
            .push((name.to_string(), master, compute));
        Ok(out)
    }
}

impl SimpleBackend for TrainableBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.read(name, dtype, |d| {
            SimpleBackend::get(&self.inner, s.clone(), name, h, d, dev)
        })
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dtype, |d| self.inner.get_unchecked(name, d, dev))
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.contains_tensor(name)
    }
}

/// Open a model folder's weights so that tensors whose key `select` accepts become trainable
/// variables, collected in the returned [`Taken`] as the tower is built; the tower computes in
/// `dtype` (a trained tensor's f32 master is kept beside its copy in a half precision).
pub fn open_weights_trainable(
    dir: &Path,
    (device, dtype): (&Device, DType),
    select: impl Fn(&str) -> bool + Send + Sync + 'static,
) -> Result<(VarBuilder<'static>, Taken)> {
    let paths = weights_paths(dir)?;
    // SAFETY: as in `open_weights`.
    let inner = unsafe { MmapedSafetensors::multi(&paths) }
        .map_err(|e| Error::file(&paths[0], format!("cannot read weights: {e}")))?;
    let taken: Taken = Arc::default();
    let backend = TrainableBackend {
        inner,
        select: Box::new(select),
        taken: taken.clone(),
    };
    Ok((
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone()),
        taken,
    ))
}

/// Bytes of a `model.safetensors.index.json` read at most (a 70 B model's index is ~100 KB).
const MAX_INDEX_BYTES: u64 = 16 << 20;

/// The weight files of model folder `dir`: `model.safetensors`, or the shards that
/// `model.safetensors.index.json` names (plain file names in the folder, each once).
pub fn weights_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        return Err(Error::file(
            dir,
            "not a model folder: model.safetensors is missing (and no model.safetensors.index.json of shards)",
        ));
    }
    let text = crate::atomic::read_bounded(&index, MAX_INDEX_BYTES)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(&index, format!("invalid index: {e}")))?;
    let map = v["weight_map"]
        .as_object()
        .ok_or_else(|| Error::file(&index, "no weight_map object"))?;
    let mut names: Vec<&str> = Vec::new();
    for (tensor, file) in map {
        let f = file.as_str().unwrap_or("");
        let plain = !f.is_empty()
            && f.ends_with(".safetensors")
            && !f.contains(['/', '\\'])
            && !f.starts_with('.');
        if !plain {
            return Err(Error::file(
                &index,
                format!(
                    "weight_map[{tensor:?}] = {file}: not a .safetensors file name in the folder"
                ),
            ));
        }
        if !names.contains(&f) {
            names.push(f);
        }
    }
    names.sort_unstable();
    Ok(names.into_iter().map(|n| dir.join(n)).collect())
}

/// Memory-map the frozen weights of model folder `dir` (`model.safetensors`) on `device`, to be
/// read as `dtype` (converted from the file's dtype as they load).
pub fn open_weights(dir: &Path, device: &Device, dtype: DType) -> Result<VarBuilder<'static>> {
    Ok(open_weight_files(dir, device, dtype)?.0)
}

/// [`open_weights`], with the first weights file (what errors about the tensors name).
pub fn open_weight_files(
    dir: &Path,
    device: &Device,
    dtype: DType,
) -> Result<(VarBuilder<'static>, PathBuf)> {
    let paths = weights_paths(dir)?;
    // SAFETY: the files are mapped read-only; the project never writes to model files while
    // they are loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&paths, dtype, device) }
        .map_err(|e| Error::file(&paths[0], format!("cannot read weights: {e}")))?;
    Ok((vb, paths[0].clone()))
}

/// Read `dir/config.json`, check that its `model_type` is one of `types` (when it has one), and
/// parse it into `T`.
pub fn read_config<T: serde::de::DeserializeOwned>(
    dir: &Path,
    types: &[&str],
) -> Result<(T, PathBuf)> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::file(dir, "not a model folder: config.json is missing")
        }
        std::io::ErrorKind::InvalidData => Error::file(&path, "not valid UTF-8"),
        _ => Error::io(&path, e),
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("invalid model config: {e}")))?;
    if let Some(t) = v.get("model_type").and_then(|t| t.as_str())
        && !types.contains(&t)
    {
        return Err(Error::file(
            &path,
            format!("model_type {t:?} is not {}", types.join(" or ")),
        ));
    }
    let cfg = serde_json::from_value(v)
        .map_err(|e| Error::file(&path, format!("invalid model config: {e}")))?;
    Ok((cfg, path))
}

/// A config that declares fewer layers than the weights hold would load a truncated tower
/// without a word: an error naming `config.json` (beside the weights file `file`) when
/// `encoder.layer.<layers>` has any tensor.
pub(crate) fn check_no_extra_layer(vb: &VarBuilder, layers: usize, file: &Path) -> Result<()> {
    let next = vb.pp(format!("encoder.layer.{layers}"));
    let probes = [
        "attention.self.query.weight",
        "attention.attention.query.weight",
        "norm1.weight",
        "layernorm_before.weight",
    ];
    refuse_extra_layer(probes.iter().any(|p| next.contains_tensor(p)), layers, file)
}

/// The error of [`check_no_extra_layer`] when `found` (a tensor of layer `layers`, one past the
/// config's last, is in the weights file `file`).
pub(crate) fn refuse_extra_layer(found: bool, layers: usize, file: &Path) -> Result<()> {
    if found {
        return Err(Error::file(
            &file.with_file_name("config.json"),
            format!(
                "num_hidden_layers = {layers}, but {} holds more layers",
                file.display()
            ),
        ));
    }
    Ok(())
}

/// Fetch a tensor, turning candle's shape/name errors into one line naming the file.
fn get(vb: &VarBuilder, shape: &[usize], name: &str, file: &Path) -> Result<Tensor> {
    vb.get(shape, name).map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().next().unwrap_or("");
        Error::file(
            file,
            format!(
                "tensor {}{name}: {first} (does config.json describe these weights?)",
                prefix_of(vb)
            ),
        )
    })
}

fn prefix_of(vb: &VarBuilder) -> String {
    let p = vb.prefix();
    if p.is_empty() { p } else { format!("{p}.") }
}

/// A linear layer (input -> output) with bias `name.weight` / `name.bias` from `vb`.
pub(crate) fn linear(
    vb: &VarBuilder,
    input: usize,
    output: usize,
    name: &str,
    file: &Path,
) -> Result<Dense> {
    let w = get(vb, &[output, input], &format!("{name}.weight"), file)?;
    let b = get(vb, &[output], &format!("{name}.bias"), file)?;
    Ok(Dense::new(w, Some(b)))
}

/// A LayerNorm `name.weight`/`name.bias` (or the older `name.gamma`/`name.beta`) from `vb`.
pub(crate) fn layer_norm(
    vb: &VarBuilder,
    dim: usize,
    eps: f64,
    name: &str,
    file: &Path,
) -> Result<LayerNorm> {
    let (w, b) = if vb.contains_tensor(&format!("{name}.gamma")) {
        ("gamma", "beta")
    } else {
        ("weight", "bias")
    };
    let weight = get(vb, &[dim], &format!("{name}.{w}"), file)?;
    let bias = get(vb, &[dim], &format!("{name}.{b}"), file)?;
    Ok(LayerNorm::from_tensors(weight, bias, eps))
}

/// Multi-head self-attention with biased Q/K/V projections (BERT and ViT layouts).
#[derive(Debug)]
pub(crate) struct SelfAttention {
    pub query: Proj,
    pub key: Dense,
    pub value: Proj,
    pub heads: usize,
    pub dropout: f32,
}

impl SelfAttention {
    /// The attention of layer `layer` (width `d`) whose projections are `{at}query`, `{at}key`
    /// and `{at}value` in `vb`; query and value take LoRA when `peft` asks for it.
    pub fn load(
        vb: &VarBuilder,
        at: &str,
        (layer, d): (usize, usize),
        (heads, dropout): (usize, f32),
        peft: &mut Option<&mut PeftBuilder>,
        file: &Path,
    ) -> Result<SelfAttention> {
        let query = linear(vb, d, d, &format!("{at}query"), file)?;
        let value = linear(vb, d, d, &format!("{at}value"), file)?;
        let (query, value) = match peft {
            Some(p) => (
                p.project(query, layer, "query")?,
                p.project(value, layer, "value")?,
            ),
            None => (Proj::Plain(query), Proj::Plain(value)),
        };
        Ok(SelfAttention {
            query,
            key: linear(vb, d, d, &format!("{at}key"), file)?,
            value,
            heads,
            dropout,
        })
    }

    /// Queries from `queries` `[B, Tq, D]`, keys and values from `x` `[B, T, D]`, optional
    /// additive mask broadcastable to `[B, H, Tq, T]`; returns the per-head context `[B, Tq, D]`
    /// (before the output projection). `queries` is `x` itself, or its [CLS] row alone in a
    /// tower's last layer, whose other rows nothing reads.
    pub fn forward(
        &self,
        queries: &Tensor,
        x: &Tensor,
        mask: Option<&Tensor>,
        ctx: &Ctx,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let tq = queries.dim(1)?;
        let dh = d / self.heads;
        let q = self.query.forward(queries)?;
        let (k, v) = (self.key.forward(x)?, self.value.forward(x)?);
        let scale = 1.0 / (dh as f64).sqrt();
        if !ctx.train || self.dropout <= 0.0 {
            // inference on the CPU: one fused pass per sequence (nn::attention)
            if let Some(o) = attention::fused((&q, &k, &v), mask, self.heads, scale as f32)? {
                return Ok(o);
            }
        }
        let split = |y: Tensor, t: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, self.heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let (q, k, v) = (split(q, tq)?, split(k, t)?, split(v, t)?);
        let mut att = (frozen::matmul(&q, &k.t()?)? * scale)?;
        if let Some(m) = mask {
            att = frozen::add(&att, m)?;
        }
        let att = ctx.dropout(&ctx.softmax_last(&att)?, self.dropout)?;
        Ok(frozen::matmul(&att, &v)?
            .transpose(1, 2)?
            .reshape((b, tq, d))?)
    }
}

/// The adapter of layer `layer` at `site`, when `peft` asks for adapters.
pub(crate) fn adapter(
    peft: &mut Option<&mut PeftBuilder>,
    layer: usize,
    site: &str,
    dim: usize,
) -> Result<Option<peft::Adapter>> {
    match peft {
        Some(p) => p.adapter(layer, site, dim),
        None => Ok(None),
    }
}

/// `h` through `adapter` when there is one.
pub(crate) fn adapt(adapter: &Option<peft::Adapter>, h: Tensor) -> Result<Tensor> {
    match adapter {
        Some(a) => a.forward(&h),
        None => Ok(h),
    }
}

/// Stack per-layer [CLS] states (`[B, D]` each) into `[B, L + 1, D]`.
pub(crate) fn stack_cls(states: &[Tensor]) -> Result<Tensor> {
    // handed on as f32 whatever precision the tower computes in (docs/GPU.md)
    Ok(Tensor::stack(states, 1)?.to_dtype(DType::F32)?)
}
