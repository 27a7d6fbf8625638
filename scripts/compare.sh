#!/usr/bin/env bash
# Side-by-side quality on held-out real faces: exported models vs the classical fills of benches/telea_eval.py
# (OpenCV Telea, scikit-image biharmonic, OpenCV-contrib FSR-fast, the border-mean fill), on the very same seeded
# holes (one 28x28 box; one box of side 32-64), metrics as in ../shared/DESIGN.md.
#
#   scripts/compare.sh VAL_LIST MODEL.onnx...      # e.g. runs/unet/val_files.txt exported/unet.onnx /tmp/seed.onnx
#
# Writes docs/quality/<model>_<holes>.png (the first 8 faces: corrupted | reconstructed | original) and prints
# one markdown table per hole kind: psnr_hole, psnr_full, ssim, l1_hole and the sharpness ratio (luma gradient
# energy inside the hole, result / original: a flat fill 0, the original 1; see benches/facejudge.py). With
# IDENTITY=1 each hole kind also gets the dlib judge's table (benches/identity_eval.py: identity distance, the
# fractions >= 0.4 / >= 0.6, in-hole landmark error; ~0.15-0.3 s per face and method on 2 cores); the judge on
# the issue's sets (one 32-64 box, normal and looser crop) is scripts/judge.sh. Needs ORT_DYLIB_PATH (make setup)
# and, for the classical rows, a Python with numpy, pillow, scikit-image and opencv-contrib-python-headless (and
# dlib for IDENTITY=1; PY=..., default: the bench venv, made or completed by scripts/bench-venv.sh). FSR-fast is
# slow (~7 / ~3 img/s): ~1.5 / ~3 min for 500 faces with 28x28 / 32-64 boxes; METHODS=telea,biharmonic,fsr,mean
# (the default) picks the classical rows.
set -euo pipefail
cd "$(dirname "$0")/.."
val_list=$1; shift
PY=${PY:-$(scripts/bench-venv.sh)}
METHODS=${METHODS:-telea,biharmonic,fsr,mean}
: "${ORT_DYLIB_PATH:?set ORT_DYLIB_PATH (make setup prints it)}"
mapfile -t val < "$val_list"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p docs/quality
for holes in box28 box32-64; do
  echo; echo "### $holes (${#val[@]} held-out faces, seed 0)"; echo
  echo "| method | psnr_hole | psnr_full | ssim | l1_hole | sharpness |"; echo "|---|---|---|---|---|---|"
  first=1; runs=()
  for model in "$@"; do
    name=$(basename "$model" .onnx)
    extra=(); [ $first = 1 ] && extra=(--save-masks "$work/masks-$holes")
    target/release/facerecon-infer --model "$model" --eval --holes "$holes" --eval-seed 0 --threads 2 \
      --out "$work/$name-$holes" --report "$work/$name-$holes.json" "${extra[@]}" "${val[@]}" >/dev/null 2>&1
    cp "$work/$name-$holes/grid.png" "docs/quality/${name}_${holes}.png"
    "$PY" - "$work/$name-$holes.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["sets"][-1]
m = s["mean"]
print(f"| {sys.argv[2]} | {m['psnr_hole']:.2f} | {m['psnr_full']:.2f} | {m['ssim']:.4f} | {m['l1_hole']:.2f} "
      f"| {s['sharpness']:.3f} |")
PY
    runs+=("$name=$work/$name-$holes"); first=0
  done
  "$PY" benches/telea_eval.py --masks "$work/masks-$holes" --methods "$METHODS" --out "$work/peers-$holes" \
    "${val[@]}" 2>/dev/null | tail -n +3 | awk -F'|' '{printf "|%s|%s|%s|%s|%s|%s|\n", $2, $4, $5, $6, $7, $8}'
  if [ "${IDENTITY:-0}" = 1 ]; then
    for p in "$work/peers-$holes"/*/; do p=${p%/}; runs+=("$(basename "$p")=$p"); done
    echo; "$PY" benches/identity_eval.py --masks "$work/masks-$holes" --jobs 2 "${runs[@]}" 2>/dev/null
  fi
done
