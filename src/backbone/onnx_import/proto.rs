//! The ONNX protobuf messages and fields the importer reads (field numbers of `onnx.proto3`),
//! decoded with `prost`, and the float data of an initializer.

use std::path::Path;

use prost::Message;

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Message)]
pub(super) struct ModelProto {
    #[prost(message, optional, tag = "7")]
    pub(super) graph: Option<GraphProto>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct GraphProto {
    #[prost(message, repeated, tag = "1")]
    pub(super) node: Vec<NodeProto>,
    #[prost(message, repeated, tag = "5")]
    pub(super) initializer: Vec<TensorProto>,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct NodeProto {
    #[prost(string, repeated, tag = "1")]
    pub(super) input: Vec<String>,
    #[prost(string, repeated, tag = "2")]
    pub(super) output: Vec<String>,
    #[prost(string, tag = "3")]
    pub(super) name: String,
    #[prost(string, tag = "4")]
    pub(super) op_type: String,
}

#[derive(Clone, PartialEq, Message)]
pub(super) struct TensorProto {
    #[prost(int64, repeated, tag = "1")]
    pub(super) dims: Vec<i64>,
    #[prost(int32, tag = "2")]
    pub(super) data_type: i32,
    #[prost(float, repeated, tag = "4")]
    pub(super) float_data: Vec<f32>,
    #[prost(string, tag = "8")]
    pub(super) name: String,
    #[prost(bytes = "vec", tag = "9")]
    pub(super) raw_data: Vec<u8>,
    #[prost(int32, tag = "14")]
    pub(super) data_location: i32,
}

/// ONNX `TensorProto.DataType.FLOAT`.
pub(super) const ONNX_FLOAT: i32 = 1;

pub(super) fn floats(path: &Path, t: &TensorProto) -> Result<Vec<f32>> {
    if t.data_location != 0 {
        return Err(Error::file(
            path,
            format!(
                "initializer {} uses external data, which is not supported",
                t.name
            ),
        ));
    }
    if t.data_type != ONNX_FLOAT {
        return Err(Error::file(
            path,
            format!(
                "initializer {} has ONNX data type {}, expected FLOAT",
                t.name, t.data_type
            ),
        ));
    }
    let n: i64 = t.dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if v.len() as i64 != n {
        return Err(Error::file(
            path,
            format!(
                "initializer {} has {} values for shape {:?}",
                t.name,
                v.len(),
                t.dims
            ),
        ));
    }
    Ok(v)
}
