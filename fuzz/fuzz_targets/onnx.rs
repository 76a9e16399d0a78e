//! The ONNX importer's decoding and checks (everything but writing the folder) on arbitrary
//! bytes.
#![no_main]

use std::path::Path;

use iisan::backbone::onnx_import::check_dinov2_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = check_dinov2_bytes(data, Path::new("f.onnx"), None);
});
