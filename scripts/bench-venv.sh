#!/usr/bin/env bash
# Prints the Python that benches/run.sh uses for its peers (Keras 3 on TensorFlow-CPU, Python onnxruntime),
# creating it if needed: $BENCH_PY if set (it must import tensorflow, keras, onnxruntime and numpy), else
# .cache/bench-venv, made here with pip on first use (tensorflow-cpu is a ~250 MB download).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); venv=$root/.cache/bench-venv
check='import tensorflow, keras, onnxruntime, numpy'
if [ -n "${BENCH_PY:-}" ]; then
  "$BENCH_PY" -c "$check" 2>/dev/null \
    || { echo "bench-venv: BENCH_PY=$BENCH_PY cannot import tensorflow, keras, onnxruntime and numpy" >&2; exit 2; }
  echo "$BENCH_PY"; exit 0
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "bench-venv: installing tensorflow-cpu and onnxruntime into $venv (once; a few minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q "tensorflow-cpu==2.21.*" "onnxruntime==${ORT_VERSION:-1.32.0}" "numpy<3" >&2
fi
echo "$venv/bin/python"
