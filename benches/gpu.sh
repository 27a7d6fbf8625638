#!/usr/bin/env bash
# The GPU table (issue 5) in ONE device call: the seed model trained with candle's CUDA backend at batch 64
# and 256 beside the CPU trainer on the same machine's cores, forward-only inference at batch 1/64/256 on
# CUDA and CPU, CUDA-vs-CPU agreement of the forward pass (max |diff|) and of the loss curve, and whether
# facerecon-infer's CUDA execution provider starts. Writes $OUT/gpu.md (table), $OUT/gpu.jsonl (raw
# RESULT lines) and $OUT/gpu.log.
#
# Build here (no GPU needed), then run on the device machine (nothing is compiled there):
#   make build && scripts/build-cuda.sh      # -> target/cuda/gpu-bundle.tar.xz (~8 MB: the CUDA trainer,
#                                            #    the CUDA infer_bench, the CPU facerecon-infer; stripped)
#   device run: bash benches/gpu.sh   with carry: ["target/cuda/gpu-bundle.tar.xz"]
# (Without the bundle it uses target/cuda/release/ and target/release/ as built.)
# The CUDA libraries (cuBLAS, cuRAND, NVRTC, cudart 13) are loaded from the machine's Python `nvidia`
# wheels (PyTorch cu130's), found through `python3 -c 'import nvidia'`; libonnxruntime from its Python
# onnxruntime. Smoke-test the script itself on a CPU machine: GPU=cpu SMALL=1 bash benches/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-.cache/gpu}
GPU=${GPU:-cuda:0}
BUNDLE=${BUNDLE:-target/cuda/gpu-bundle.tar.xz}
PY=${PY:-python3}
if [ "${SMALL:-0}" = 1 ]; then # the script's plumbing, in a minute on 2 cores
  FACES=${FACES:-600} S64=${S64:-6} S256=${S256:-5} SCPU=${SCPU:-5} SPAR=${SPAR:-8} IB=${IB:-1,8} ISTEPS=${ISTEPS:-3}
fi
FACES=${FACES:-8192}   # synthetic 128x128 faces generated on the machine
S64=${S64:-150}        # timed CUDA training steps at batch 64 (3 warm-up steps are left out of the rate)
S256=${S256:-60}       # ... at batch 256
SCPU=${SCPU:-15}       # CPU trainer steps at batch 64 (all of the machine's cores)
SPAR=${SPAR:-50}       # loss-curve agreement: steps of CPU and CUDA from the same seed, batch 16
IB=${IB:-1,64,256}     # inference batch sizes
ISTEPS=${ISTEPS:-30}   # timed inference runs per batch size (b1: 4x as many)
mkdir -p "$OUT"
log=$OUT/gpu.log results=$OUT/gpu.jsonl work=$(mktemp -d)
: > "$results"
exec > >(tee "$log") 2>&1
if [ -f "$BUNDLE" ]; then
  mkdir -p "$work/bin" && tar -xJf "$BUNDLE" -C "$work/bin"
  TRAIN=$work/bin/facerecon-train BENCH=$work/bin/infer_bench INFER=$work/bin/facerecon-infer
else
  TRAIN=target/cuda/release/facerecon-train BENCH=target/cuda/release/examples/infer_bench INFER=target/release/facerecon-infer
fi

nv=$($PY -c 'import nvidia, os; print(nvidia.__path__[0])' 2>/dev/null || true)
[ -n "$nv" ] && for d in "$nv"/cu13/lib "$nv"/*/lib; do [ -d "$d" ] && LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}; done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$($PY -c 'import onnxruntime, os, glob; print(sorted(glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so*")))[0])' 2>/dev/null || true)
  export ORT_DYLIB_PATH
fi
echo "gpu.sh: device $GPU, $(nproc) CPU cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "gpu.sh: no nvidia-smi"
for b in "$TRAIN" "$BENCH"; do
  [ -x "$b" ] || { echo "gpu.sh: no $b (scripts/build-cuda.sh builds it)"; exit 2; }
done

# Append the RESULT line of the last command's output (file $2) to gpu.jsonl, tagged $1.
collect() {
  if grep -q '^RESULT {' "$2"; then sed -n "s/^RESULT {/{\"run\": \"$1\", /p" "$2" >> "$results"
  else echo "gpu.sh: $1 printed no RESULT line:"; tail -5 "$2"; fi
}
train() { # TAG DEVICE BATCH STEPS [ARGS...]
  local tag=$1 dev=$2 batch=$3 steps=$4; shift 4
  echo "== train $tag: $dev, batch $batch, $steps steps"
  timeout 240 "$TRAIN" --config configs/seed.yaml --data "$work/faces" --out "$work/run-$tag" \
    --force --device "$dev" --batch-size "$batch" --max-steps "$steps" --bench-json "$@" > "$work/$tag.out" 2> "$work/$tag.err"
  echo "   exit $? ($(grep -c . "$work/$tag.err") log lines; last: $(tail -1 "$work/$tag.err"))"
  collect "$tag" "$work/$tag.out"
}
infer() { # TAG DEVICE [ARGS...]
  local tag=$1 dev=$2; shift 2
  echo "== infer $tag: $dev, batches $IB"
  timeout 180 "$BENCH" --config configs/seed.yaml --device "$dev" --batches "$IB" \
    --steps "$ISTEPS" --steps1 $((ISTEPS * 4)) "$@" > "$work/$tag.out" 2> "$work/$tag.err"
  echo "   exit $?"; tail -3 "$work/$tag.err"
  grep '^RESULT {' "$work/$tag.out" | sed "s/^RESULT {/{\"run\": \"$tag\", /" >> "$results"
}

# The faces: generated once, by the trainer itself (one CPU step).
"$TRAIN" --config configs/seed.yaml --synthetic "$FACES" --data "$work/faces" --out "$work/gen" \
  --max-steps 1 > /dev/null 2> "$work/gen.err" || { echo "gpu.sh: generating faces failed:"; tail -5 "$work/gen.err"; exit 1; }
echo "gpu.sh: $(find "$work/faces" -name '*.png' | wc -l) synthetic faces"

train cuda-b64 "$GPU" 64 $((S64 + 3))
train cuda-b256 "$GPU" 256 $((S256 + 3))
train cpu-b64 cpu 64 $((SCPU + 3))
# Parity: the same initial weights (shared through --init-from), data order, masks and seed.
train parity-init cpu 16 1
train parity-cpu cpu 16 "$SPAR" --seed 5 --init-from "$work/run-parity-init"
train parity-cuda "$GPU" 16 "$SPAR" --seed 5 --init-from "$work/run-parity-init"
infer infer-cuda "$GPU" --check
infer infer-cpu cpu

# facerecon-infer's CUDA execution provider: it must start, or fail loudly (never fall back to the CPU).
if [ -x "$INFER" ] && [ -n "${ORT_DYLIB_PATH:-}" ]; then
  echo "== facerecon-infer --device cuda (ORT library: $ORT_DYLIB_PATH)"
  mkdir -p "$work/in"; cp "$(find "$work/faces" -name '*.png' | head -1)" "$work/in/"
  # exported/unet.onnx comes with the working tree. With the machine's CPU-only onnxruntime this must fail loudly
  # at the provider; with a GPU build (ORT_DYLIB_PATH=...) it must reconstruct the image.
  "$INFER" --model "${MODEL:-exported/unet.onnx}" --device cuda --out "$work/rec" "$work/in" > "$work/ort.out" 2>&1
  echo "   exit $?: $(head -3 "$work/ort.out")" | tee "$OUT/ort_cuda.txt"
fi

$PY - "$results" "$OUT/gpu.md" "$GPU" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = {}
for r in rows:
    by.setdefault(r["run"], []).append(r)
def one(tag, key, fmt="{:.1f}"):
    r = by.get(tag)
    return fmt.format(r[0][key]) if r and r[0].get(key) is not None else "n/a"
out = ["# facerecon on the GPU: seed autoencoder, 128x128 (benches/gpu.sh)", "",
       "## Training (candle, Adam, steady-state images/s after 3 warm-up steps, data pipeline included)", "",
       "| trainer | batch | img/s | data wait | vs CPU trainer |", "|---|---:|---:|---:|---:|"]
cpu = by.get("cpu-b64", [{}])[0].get("img_per_s")
for tag, name, b in [("cuda-b64", f"CUDA ({sys.argv[3]})", 64), ("cuda-b256", f"CUDA ({sys.argv[3]})", 256),
                     ("cpu-b64", "CPU, fast kernels, all cores", 64)]:
    r = by.get(tag, [{}])[0]
    ips = r.get("img_per_s")
    ratio = f"{ips / cpu:.1f}x" if ips and cpu else "n/a"
    wait = f"{100 * r['data_wait']:.1f} %" if r.get("data_wait") is not None else "n/a"
    out.append(f"| {name} | {b} | {ips:.1f} | {wait} | {ratio} |" if ips else f"| {name} | {b} | failed | | |")
tut = 50 * 70000 / (11 * 3600)
out += ["", f"The tutorial: 50 epochs of 70,000 images in 10-12 h on Colab = ~{tut:.0f} img/s. "
        + (f"At the batch-64 rate above those 50 epochs take {50 * 70000 / by['cuda-b64'][0]['img_per_s'] / 60:.0f} min."
           if by.get("cuda-b64") and by["cuda-b64"][0].get("img_per_s") else "")]
a, b = by.get("parity-cpu", [{}])[0].get("losses"), by.get("parity-cuda", [{}])[0].get("losses")
if a and b:
    n = min(len(a), len(b))
    rel = [abs(x - y) / max(abs(x), 1e-12) for x, y in zip(a[:n], b[:n])]
    out += ["", f"Loss curves, CPU fast kernels vs CUDA, same seed and data, batch 16, {n} steps: largest relative "
            f"difference {max(rel):.2e} (step {rel.index(max(rel)) + 1}); first / last loss CPU {a[0]:.5f} / {a[n-1]:.5f}, "
            f"CUDA {b[0]:.5f} / {b[n-1]:.5f}."]
out += ["", "## Inference (candle Model::forward + composite, random weights, median, synchronized)", "",
        "| device | batch | ms | img/s | max abs diff vs CPU |", "|---|---:|---:|---:|---:|"]
for tag in ["infer-cuda", "infer-cpu"]:
    for r in by.get(tag, []):
        d = r.get("max_abs_diff")
        out.append(f"| {r['device']} | {r['batch']} | {r['ms_median']:.3f} | {r['img_per_s']:.0f} | {d:.2e} |" if d is not None
                   else f"| {r['device']} | {r['batch']} | {r['ms_median']:.3f} | {r['img_per_s']:.0f} | |")
diffs = [r["max_abs_diff"] for r in by.get("infer-cuda", []) if r.get("max_abs_diff") is not None]
if diffs:
    out += ["", f"CUDA vs CPU forward: max |diff| {max(diffs):.2e} ({'within' if max(diffs) <= 1e-3 else 'ABOVE'} the 1e-3 bound)."]
open(sys.argv[2], "w").write("\n".join(out) + "\n")
print("\n".join(out))
EOF
rm -rf "$work"
