#!/usr/bin/env bash
# The whole test suite, Rust and Python (what CI runs through .ci/run):
#   1. the test build (`cargo test --release --no-run`: the test binaries and the `iisan`
#      binary, which the model import and the Python tests use), then the two pretrained towers
#      the tests read (scripts/fetch-models.sh) and the headless browser the report is rendered
#      in (scripts/install-chromium.sh), both idempotent;
#   2. `cargo test --release`: unit, integration, golden and doc tests; the library without its
#      optional features checked;
#   3. the Python package built as a wheel by maturin and installed into a virtual environment
#      of its own (target/py-test), with numpy and pytest;
#   4. pytest on python/tests.
# Needs a Rust toolchain, python3 with pip and venv, and apt-get (root or sudo) where chromium
# is missing. IISAN_PYTHON picks the interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
# one build of the crate for the tests and the binary (a plain `cargo build` would compile it
# once more: the tests' dev-dependencies change the features of shared dependencies)
cargo test --release --no-run
bash scripts/fetch-models.sh
bash scripts/install-chromium.sh
cargo test --release
# the library alone, without its optional parts (serve, charts, import) still builds
cargo check --lib --no-default-features
PY="${IISAN_PYTHON:-python3}"
VENV=target/py-test
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade "maturin>=1.16,<2" "numpy>=1.21" "pytest>=7"
rm -rf target/wheels-test
(cd python && "../$VENV/bin/maturin" build --release --quiet -o ../target/wheels-test)
"$VENV/bin/python" -m pip install --quiet --force-reinstall --no-deps target/wheels-test/iisan-*.whl
"$VENV/bin/pytest" -q python/tests
