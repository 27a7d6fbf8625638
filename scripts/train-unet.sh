#!/usr/bin/env bash
# The recipe of exported/unet.onnx, end to end: eleven training stages on DATA, then export and the quality
# table. Each stage resumes if interrupted (rerun the script); finished stages are skipped.
#
#   scripts/train-unet.sh [DATA]      # DATA defaults to ../shared/data/utkface
#
# Stage 1  configs/unet.yaml, 4 epochs, then continued to 7 (the cosine schedule re-stretched)  -> runs/unet
# Stage 2  configs/unet-ft.yaml from stage 1's weights, 6 epochs (box-weighted masks, batch 16)   -> runs/unet-ft
# Stage 3  the same config from stage 2's weights, 10 epochs, seed 7 (a new cosine cycle)         -> runs/unet-ft3
# Stage 4  configs/unet-ft4.yaml (hole-weighted MSE) from stage 3's weights, 8 epochs, seed 11    -> runs/unet-ft4
# Stage 5  configs/unet-ft5.yaml (MSE, 28x28 boxes twice as often) from stage 4, 6 epochs, seed 13 -> runs/unet-ft5
# Stage 6  the same config from stage 5's weights, 4 epochs, seed 17 (a new cosine cycle)          -> runs/unet-ft6
# Stage 7  the same again from stage 6's weights, 4 epochs, seed 19                                 -> runs/unet-ft7
# Stage 8  configs/unet-ft8.yaml (MSE, mostly 28x28 boxes, lr 1e-4) from stage 7, 3 epochs, seed 23 -> runs/unet-ft8
# Stage 9  the same config from stage 8's weights, 5 epochs, seed 29 (a new cosine cycle)          -> runs/unet-ft9
# Stage 10 the same again from stage 9's weights, 5 epochs, seed 31                               -> runs/unet-ft10
# Stage 11 the same again from stage 10's weights, 5 epochs, seed 37                              -> runs/unet-ft11
# Wall time on the 2-core development machine with this commit's kernels (~65 img/s): ~40 + 33 + 54 + 43 + 33 + 22
# + 22 + 17 + 29 + 29 + 29 min, about 5.9 h.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/utkface}
BIN=${BIN:-target/release/facerecon-train}
[ -x "$BIN" ] || make build
done_epochs() { [ -f "$1/state.json" ] && python3 -c "import json,sys; print(json.load(open('$1/state.json'))['epoch'])" || echo 0; }
stage() { # DIR EPOCHS ARGS...
  local dir=$1 epochs=$2; shift 2
  local have; have=$(done_epochs "$dir")
  if [ "$have" -ge "$epochs" ]; then echo "train-unet: $dir has $have epochs, skipping" >&2; return; fi
  if [ -f "$dir/state.json" ]; then "$BIN" --out "$dir" --data "$DATA" --epochs "$epochs" --resume
  else "$BIN" --out "$dir" --data "$DATA" --epochs "$epochs" "$@"; fi
}
[ "$(done_epochs runs/unet)" -ge 4 ] || stage runs/unet 4 --config configs/unet.yaml
stage runs/unet 7 --config configs/unet.yaml
stage runs/unet-ft 6 --config configs/unet-ft.yaml --init-from runs/unet
stage runs/unet-ft3 10 --config configs/unet-ft.yaml --init-from runs/unet-ft --seed 7
stage runs/unet-ft4 8 --config configs/unet-ft4.yaml --init-from runs/unet-ft3 --seed 11
stage runs/unet-ft5 6 --config configs/unet-ft5.yaml --init-from runs/unet-ft4 --seed 13
stage runs/unet-ft6 4 --config configs/unet-ft5.yaml --init-from runs/unet-ft5 --seed 17
stage runs/unet-ft7 4 --config configs/unet-ft5.yaml --init-from runs/unet-ft6 --seed 19
stage runs/unet-ft8 3 --config configs/unet-ft8.yaml --init-from runs/unet-ft7 --seed 23
stage runs/unet-ft9 5 --config configs/unet-ft8.yaml --init-from runs/unet-ft8 --seed 29
stage runs/unet-ft10 5 --config configs/unet-ft8.yaml --init-from runs/unet-ft9 --seed 31
stage runs/unet-ft11 5 --config configs/unet-ft8.yaml --init-from runs/unet-ft10 --seed 37
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh cpu)} ${EXPORT:-target/release/facerecon-export} --checkpoint runs/unet-ft11 --out exported/unet.onnx
echo "train-unet: exported/unet.onnx; quality table: scripts/compare.sh runs/unet/val_files.txt exported/unet.onnx" >&2
