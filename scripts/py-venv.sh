#!/usr/bin/env bash
# A Python venv in .cache/venv with onnx, onnxruntime, numpy and pillow (pinned), for checker / cross-runtime checks
# and the Python baseline of benches/e2e_infer.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); venv=$root/.cache/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, onnxruntime, numpy, PIL" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "onnx==1.23.2" "onnxruntime==${ORT_VERSION:-1.32.0}" "numpy<3" "pillow==13.0.0" >&2
fi
echo "$venv/bin/python"
