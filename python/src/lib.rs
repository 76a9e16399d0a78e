//! The extension module `iisan._native` of the Python package `iisan`: the library API of the
//! `iisan` crate ([`iisan::api`]) for Python. The package's Python files (`python/iisan/`)
//! give it its public names, docstrings, exceptions and progress bars; docs/PYTHON.md is the
//! guide.
//!
//! Every call that computes releases the GIL; long tasks run on a thread of their own so that
//! Ctrl-C stops them at a step boundary ([`driver`]).

use pyo3::prelude::*;

mod convert;
mod driver;
mod errors;
mod functions;
mod index;
mod run;

/// mimalloc, as in the `iisan` binary: candle allocates a fresh buffer per tensor op, and
/// glibc serves the large ones with mmap, so every op paid page faults.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Rust side of the `iisan` package (use `import iisan`).
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<run::Run>()?;
    m.add_function(wrap_pyfunction!(functions::train, m)?)?;
    m.add_function(wrap_pyfunction!(functions::resume, m)?)?;
    m.add_function(wrap_pyfunction!(functions::encode, m)?)?;
    m.add_function(wrap_pyfunction!(functions::stats, m)?)?;
    m.add_function(wrap_pyfunction!(functions::import_amazon, m)?)?;
    m.add_function(wrap_pyfunction!(functions::import_recbole, m)?)?;
    m.add_function(wrap_pyfunction!(functions::export_recbole, m)?)?;
    m.add_function(wrap_pyfunction!(functions::synth, m)?)?;
    m.add_function(wrap_pyfunction!(functions::split_cold, m)?)?;
    m.add_function(wrap_pyfunction!(functions::report, m)?)?;
    m.add_function(wrap_pyfunction!(index::build_index, m)?)?;
    m.add_function(wrap_pyfunction!(index::compact_items, m)?)?;
    Ok(())
}
