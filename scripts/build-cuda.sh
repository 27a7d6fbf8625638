#!/usr/bin/env bash
# Builds the CUDA trainer (candle's CUDA backend) for compute capability 9.0 (H100/H200) from this CPU-only
# machine, with NVIDIA's compiler and headers from PyPI (nvidia-cuda-nvcc-cu12, nvidia-cuda-runtime-cu12,
# nvidia-cublas-cu12, nvidia-curand-cu12) in .cache/cuda-venv. libcuda comes from the driver on the GPU machine.
#
# STATUS: NOT working yet. Tried (session 2): the nvidia-cuda-nvcc-cu12 wheels ship ptxas but no `nvcc`
# driver (a known limitation, NVIDIA/cuda-python#2100), so cudarc's and candle-kernels' build scripts cannot
# run. Ways forward, none tried yet: the CUDA 13 wheels (nvidia-cuda-nvcc 13.x has nvidia/cu13/bin/nvcc; needs
# CUDARC_CUDA_VERSION=13040 for cudarc 0.19 and a driver on the GPU machine that accepts CUDA 13 PTX), or
# Debian's non-free nvidia-cuda-toolkit (CUDA 11.8, supports sm_90; needs the non-free component in apt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.cache/cuda-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc-cu12==12.8.*" "nvidia-cuda-runtime-cu12==12.8.*" \
    "nvidia-cublas-cu12==12.8.*" "nvidia-curand-cu12==10.3.*" >&2
fi
nv=$("$venv/bin/python" -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]) + '/nvidia')")
if [ ! -x "$nv/cuda_nvcc/bin/nvcc" ]; then
  echo "build-cuda: $nv/cuda_nvcc/bin has no nvcc (the nvidia-cuda-nvcc-cu12 wheel ships only ptxas);" >&2
  echo "build-cuda: see the STATUS note at the top of $0 for the ways forward" >&2
  exit 2
fi
export CUDA_ROOT=$nv/cuda_nvcc CUDA_PATH=$nv/cuda_nvcc CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export PATH=$nv/cuda_nvcc/bin:$PATH
export NVCC_PREPEND_FLAGS="-I$nv/cuda_runtime/include -I$nv/cublas/include -I$nv/curand/include ${NVCC_PREPEND_FLAGS:-}"
export LIBRARY_PATH=$nv/cuda_runtime/lib:$nv/cublas/lib:$nv/curand/lib:${LIBRARY_PATH:-}
cd "$root"
cargo build --release -p facerecon-train --features cuda --target-dir target/cuda
echo "built target/cuda/release/facerecon-train (run it with --device cuda:0 on the GPU machine)"
