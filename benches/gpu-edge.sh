#!/usr/bin/env bash
# The edge model's GPU stages (configs/unet-edge.yaml from scratch, then configs/unet-edge-ft.yaml from it) in ONE
# device call, with candle's CUDA backend; stage 3 runs on the CPU afterwards (configs/unet-edge-ft2.yaml).
#
# Prepare here (the GPU machine has no network and the device tool carries at most 64 MiB, files back <= 16 MB):
#   make build && scripts/build-cuda.sh                      # -> target/cuda/gpu-bundle.tar.xz (the CUDA trainer)
#   echo /.gpudata/ >> .git/info/exclude && mkdir -p .gpudata
#   facerecon-train --config exported/unet.yaml --data ../shared/data/utkface --out /tmp/valrun --max-steps 1
#   python benches/gpu_edge_data.py ../shared/data/utkface /tmp/valrun/val_files.txt .gpudata/faces.tgz  # Pillow
# then run on the device machine:  bash benches/gpu-edge.sh   carry: [".gpudata", "target/cuda/gpu-bundle.tar.xz"]
# It writes $OUT/unet-edge.tgz and $OUT/unet-edge-ft.tgz (run directories without samples and old checkpoints:
# with the per-epoch sample grids a run directory is ~45 MB, too large to come back) and $OUT/gpu-edge.log.
# Export/evaluate here: facerecon-export --checkpoint DIR --out X.onnx; stage 3 with --init-from DIR.
#
# What ran on 2026-11-30 (docs/gpu.md): stage 1 beside another experiment (1,677 img/s, 90 epochs in 416 s),
# stage 2 alone (2,930 img/s, 55 epochs in 164 s), both at batch 64 on 6,700 faces. STAGE1_EPOCHS/STAGE2_EPOCHS
# override the configs' epochs; the cosine schedules are stretched over them.
# Smoke test on any machine: GPU=cpu DATA=<a folder of ~60 faces> EXTRA="--batch-size 8 --max-steps 3" bash benches/gpu-edge.sh
set -u
T0=$(date +%s)
OUT=${OUT:-/tmp/gpuout}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-edge.log") 2>&1
DEV=${GPU:-cuda:0}
B=$(mktemp -d)
tar -xJf "${BUNDLE:-target/cuda/gpu-bundle.tar.xz}" -C "$B" 2>/dev/null
TRAIN=$B/facerecon-train
[ -x "$TRAIN" ] || TRAIN=target/cuda/release/facerecon-train
nv=$(python3 -c 'import nvidia, os; print(nvidia.__path__[0])' 2>/dev/null || true)
[ -n "$nv" ] && for d in "$nv"/cu13/lib "$nv"/*/lib; do [ -d "$d" ] && LD_LIBRARY_PATH=$d:${LD_LIBRARY_PATH:-}; done
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
if [ -z "${DATA:-}" ]; then DATA=/tmp/faces; mkdir -p "$DATA" && tar -xzf .gpudata/faces.tgz -C "$DATA"; fi
echo "gpu-edge.sh: device $DEV, $(ls "$DATA" | wc -l) faces in $DATA, trainer $TRAIN"
W=$(mktemp -d)
stage() { # NAME CONFIG EPOCHS TIME_LIMIT [ARGS...]
  local name=$1 config=$2 epochs=$3 limit=$4; shift 4
  echo "== $name: $config, ${epochs:-configured} epochs, at most $limit s"
  timeout "$limit" "$TRAIN" --config "$config" --data "$DATA" --out "$W/$name" --device "$DEV" \
    ${epochs:+--epochs $epochs} ${EXTRA:-} "$@" > "$W/$name.out" 2> "$W/$name.err"
  echo "   exit $? at +$(( $(date +%s) - T0 )) s"; tail -3 "$W/$name.err"
  [ -d "$W/$name" ] || return 1
  cp "$W/$name.err" "$W/$name/train.log"
  tar -czhf "$OUT/$name.tgz" --exclude=samples --exclude='ckpt.*' -C "$W" "$name"
}
stage unet-edge configs/unet-edge.yaml "${STAGE1_EPOCHS:-}" "${STAGE1_MAX_S:-420}" &&
  stage unet-edge-ft configs/unet-edge-ft.yaml "${STAGE2_EPOCHS:-}" "${STAGE2_MAX_S:-240}" --init-from "$W/unet-edge"
echo "gpu-edge.sh: done at +$(( $(date +%s) - T0 )) s"; ls -la "$OUT"
