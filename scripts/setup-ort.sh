#!/usr/bin/env bash
# Puts ONNX Runtime's shared library in a cache directory and prints its path.
#   scripts/setup-ort.sh [cpu|gpu]
# Uses, in order: $ORT_DYLIB_PATH if it points at a file; else the cached copy; else the official wheel from
# PyPI (`onnxruntime`, or `onnxruntime-gpu` for gpu), pinned below, unpacked with Python's zipfile.
# Nothing else is downloaded; the build itself never downloads anything (ort uses `load-dynamic`).
set -euo pipefail
flavor=${1:-cpu}
# onnxruntime-gpu lags the CPU wheel (1.31.1 is its newest; built for CUDA 13, as the GPU machines' driver 580).
if [ "$flavor" = gpu ]; then ORT_VERSION=${ORT_GPU_VERSION:-1.31.1}; else ORT_VERSION=${ORT_VERSION:-1.32.0}; fi
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${FACERECON_CACHE:-$root/.cache}/onnxruntime/$flavor-$ORT_VERSION
if [ -n "${ORT_DYLIB_PATH:-}" ] && [ -f "$ORT_DYLIB_PATH" ]; then echo "$ORT_DYLIB_PATH"; exit 0; fi
lib=$cache/libonnxruntime.so
if [ ! -f "$lib" ]; then
  pkg=onnxruntime; [ "$flavor" = gpu ] && pkg=onnxruntime-gpu
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  echo "setup-ort: fetching $pkg==$ORT_VERSION from PyPI" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$pkg==$ORT_VERSION" >&2
  mkdir -p "$cache"
  python3 - "$tmp"/*.whl "$cache" <<'PY'
import sys, zipfile, os, shutil
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        base = os.path.basename(n)
        if "/capi/" in n and base.startswith("libonnxruntime"):
            with z.open(n) as src, open(os.path.join(out, base + ".tmp"), "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(os.path.join(out, base + ".tmp"), os.path.join(out, base))
PY
  real=$(ls "$cache"/libonnxruntime.so.* 2>/dev/null | grep -v providers | head -1 || true)
  [ -n "$real" ] && [ ! -e "$lib" ] && ln -s "$(basename "$real")" "$lib"
fi
[ -f "$lib" ] || { echo "setup-ort: no libonnxruntime.so in the $flavor wheel" >&2; exit 1; }
echo "$lib"
