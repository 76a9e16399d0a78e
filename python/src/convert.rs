//! Python values into the library's and back: histories of item ids, item images, option
//! names, and serialisable results as Python dicts.

use std::path::PathBuf;

use numpy::{PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::errors::input;

/// Histories as item ids: any iterable of iterables of `str` (lists, tuples, numpy arrays,
/// pandas Series of lists). A history given as one string is refused: iterating it would
/// read characters as ids.
pub(crate) fn histories(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
    if obj.is_instance_of::<PyString>() {
        return Err(input(
            py,
            "histories: a string; give a list of histories, each a list of item ids",
        ));
    }
    let mut out = Vec::new();
    for (i, h) in obj.try_iter()?.enumerate() {
        let h = h?;
        if h.is_instance_of::<PyString>() {
            return Err(input(
                py,
                format!("history {}: a string; give a list of item ids", i + 1),
            ));
        }
        let ids = h
            .try_iter()
            .and_then(|it| {
                it.map(|x| x?.extract::<String>())
                    .collect::<PyResult<Vec<_>>>()
            })
            .map_err(|e| {
                input(
                    py,
                    format!("history {}: not a list of item ids: {e}", i + 1),
                )
            })?;
        out.push(ids);
    }
    Ok(out)
}

/// A list of strings (item ids, titles), every element a `str`.
pub(crate) fn strings(py: Python<'_>, what: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(input(py, format!("{what}: a string; give a list")));
    }
    obj.try_iter()?
        .enumerate()
        .map(|(i, x)| {
            x?.extract::<String>()
                .map_err(|_| input(py, format!("{what}[{i}]: not a str")))
        })
        .collect()
}

/// One item's image as an encoded file's bytes: a path (`str` or `os.PathLike`), the bytes of a
/// PNG / JPEG / WebP file, a `uint8` array `H x W x 3` (RGB, encoded here as PNG), or `None`.
pub(crate) fn image(py: Python<'_>, i: usize, obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(b.as_bytes().to_vec()));
    }
    if let Ok(a) = obj.extract::<PyReadonlyArray3<'_, u8>>() {
        return png_of(py, i, &a).map(Some);
    }
    if let Ok(p) = obj.extract::<PathBuf>() {
        return std::fs::read(&p)
            .map(Some)
            .map_err(|e| crate::errors::to_py(py, iisan::Error::io(&p, e)));
    }
    Err(input(
        py,
        format!("images[{i}]: not a path, bytes, a uint8 H x W x 3 array or None"),
    ))
}

/// An RGB array encoded as a PNG file.
fn png_of(py: Python<'_>, i: usize, a: &PyReadonlyArray3<'_, u8>) -> PyResult<Vec<u8>> {
    let shape = a.shape();
    let (h, w, c) = (shape[0], shape[1], shape[2]);
    if c != 3 || h == 0 || w == 0 {
        return Err(input(
            py,
            format!("images[{i}]: an array of shape {shape:?}; RGB images are H x W x 3"),
        ));
    }
    let pixels: Vec<u8> = a.as_array().iter().copied().collect();
    let img = image::RgbImage::from_raw(w as u32, h as u32, pixels)
        .ok_or_else(|| input(py, format!("images[{i}]: {h} x {w} is too large")))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| input(py, format!("images[{i}]: cannot encode as PNG: {e}")))?;
    Ok(out.into_inner())
}

/// An option's value by its name (`"history"`, `"zero"`, `"f16"`, ...): the names the config
/// files and the command line use.
pub(crate) fn named<T: DeserializeOwned>(py: Python<'_>, what: &str, name: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|e| input(py, format!("{what} = {name:?}: {e}")))
}

/// A serialisable value as the Python object `json.loads` makes of its JSON.
pub(crate) fn to_python<'py>(py: Python<'py>, v: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).expect("serialisable");
    py.import("json")?.call_method1("loads", (text,))
}
