#!/usr/bin/env bash
# Builds the CUDA trainer (candle's CUDA backend) for compute capability 9.0 (H100/H200) on a machine with no
# GPU and no CUDA installed, with NVIDIA's compiler and headers from PyPI, into target/cuda/release/.
#
# Why CUDA 13.0 exactly: candle's kernels are shipped as PTX that the driver compiles when the program starts,
# and a driver only accepts PTX from a CUDA version it knows. The GPU machines here run driver 580 (CUDA 13.0)
# with PyTorch cu130, whose wheels hold the CUDA libraries the binary loads at run time. The cu12 compiler
# wheels cannot be used: nvidia-cuda-nvcc-cu12 ships ptxas but no `nvcc` driver (NVIDIA/cuda-python#2100).
#
# Nothing CUDA is linked at build time except libcudart (candle-kernels' static MoE kernels need it): the
# vendored candle-core asks cudarc for `dynamic-loading`, so libcuda, cuBLAS, cuRAND and NVRTC are dlopen'ed
# when the program first touches the GPU. On the GPU machine put the cu13 libraries on the loader path:
#   export LD_LIBRARY_PATH=$(python3 -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13/lib"))')
#   target/cuda/release/facerecon-train --device cuda:0 ...
# (benches/gpu.sh does this.) Override CUDA_VERSION_PIN / CUDA_COMPUTE_CAP for other machines.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pin=${CUDA_VERSION_PIN:-13.0}
venv=$root/.cache/cuda-venv-$pin
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "nvidia-cuda-nvcc==$pin.*" "nvidia-nvvm==$pin.*" "nvidia-cuda-crt==$pin.*" \
    "nvidia-cuda-runtime==$pin.*" "nvidia-cuda-cccl==$pin.*" >&2
  touch "$venv/.complete"
fi
cu=$("$venv/bin/python" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu' + '$pin'.split('.')[0]))")
if [ ! -x "$cu/bin/nvcc" ] || [ ! -x "$cu/nvvm/bin/cicc" ]; then
  echo "build-cuda: no nvcc/cicc under $cu (the wheels' layout changed?)" >&2; exit 2
fi
# The wheels carry only versioned sonames; the linker's -lcudart wants the plain name.
[ -e "$cu/lib/libcudart.so" ] || ln -s libcudart.so.${pin%%.*} "$cu/lib/libcudart.so"
export PATH=$cu/bin:$PATH CUDA_ROOT=$cu CUDA_PATH=$cu CUDA_HOME=$cu NVCC=$cu/bin/nvcc
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$cu/lib:${LIBRARY_PATH:-}
"$NVCC" --version | tail -2 >&2
cd "$root"
cargo build --release -p facerecon-train --features cuda --target-dir target/cuda "$@"
cargo build --release -p facerecon-model --features cuda --example infer_bench --target-dir target/cuda "$@"
# What benches/gpu.sh needs on the GPU machine, stripped and compressed (~66 MB of binaries, most of it
# candle's PTX, become ~8 MB): the device tool carries at most 64 MiB per call.
bundle=target/cuda/bundle
rm -rf "$bundle" && mkdir -p "$bundle"
cp target/cuda/release/facerecon-train target/cuda/release/examples/infer_bench "$bundle/"
[ -x target/release/facerecon-infer ] && cp target/release/facerecon-infer "$bundle/"
strip "$bundle"/*
tar -cJf target/cuda/gpu-bundle.tar.xz -C "$bundle" .
echo "built target/cuda/release/{facerecon-train,examples/infer_bench} and target/cuda/gpu-bundle.tar.xz" \
  "($(du -h target/cuda/gpu-bundle.tar.xz | cut -f1); benches/gpu.sh unpacks it)" >&2
