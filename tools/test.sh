#!/usr/bin/env bash
# The test command (README "Running the tests"): sets up what the cross-checks need,
# then runs every test of the workspace. Idempotent and quick on a second run.
#   - a Python venv at .venv with tools/requirements.txt (ONNX Runtime cross-checks);
#   - the real models fetched into testdata/external/ (git-ignored), and ORT-quantized copies;
#   - cargo test --workspace (tests that need something absent skip with a SKIP line).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import onnx, onnxruntime, numpy' 2>/dev/null \
    || ! cmp -s tools/requirements.txt .venv/.requirements.txt; then
    .venv/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
    cp tools/requirements.txt .venv/.requirements.txt
fi
export QOPT_PYTHON="$PWD/.venv/bin/python"

tools/fetch_models.sh
# ONNX Runtime-quantized copies of the real models for the INT8 interpreter's tests (idempotent).
"$QOPT_PYTHON" tools/make_ort_qdq_models.py

cargo test --workspace "$@"
