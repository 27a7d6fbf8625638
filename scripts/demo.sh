#!/usr/bin/env bash
# The main job on a fresh machine, in a few minutes on 2 CPU cores:
#   synthetic faces -> facerecon-train -> facerecon-export (verified) -> facerecon-infer --eval on held-out faces.
# DATA=dir trains on real faces instead (e.g. DATA=../shared/data/utkface). DEMO_CONFIG, DEMO_STEPS, DEMO_EPOCHS
# change the budget. The demo's own run (runs/demo) and model (exported/demo.onnx) are replaced on each run.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release
config=${DEMO_CONFIG:-configs/seed.yaml}
data=${DATA:-data/synthetic}
epochs=${DEMO_EPOCHS:-6}
name=demo
: "${ORT_DYLIB_PATH:?run through 'make demo' (it fetches ONNX Runtime and sets ORT_DYLIB_PATH)}"

synthetic=()
if [ -z "${DATA:-}" ]; then
  synthetic=(--synthetic "${DEMO_FACES:-3000}")
  echo "== demo: no DATA given: training on SYNTHETIC procedural faces in $data (DATA=dir for real faces)"
fi
echo "== 1/3 train $config on $data ($epochs epochs) -> runs/$name"
$bin/facerecon-train --config "$config" --data "$data" "${synthetic[@]}" --out runs/$name --epochs "$epochs" \
  --force ${DEMO_STEPS:+--max-steps $DEMO_STEPS}

echo "== 2/3 export runs/$name -> exported/$name.onnx (verified against the candle model through ONNX Runtime)"
$bin/facerecon-export --checkpoint runs/$name --out exported/$name.onnx

echo "== 3/3 reconstruct held-out validation faces with seeded holes"
mapfile -t val < <(head -n "${DEMO_IMAGES:-16}" runs/$name/val_files.txt)
rm -rf reconstructed/$name
$bin/facerecon-infer --model exported/$name.onnx --eval --out reconstructed/$name --overwrite "${val[@]}"
echo
echo "Done. Training log: runs/$name/metrics.jsonl, sample grids: runs/$name/samples/,"
echo "model: exported/$name.onnx, reconstructions (corrupted | reconstructed | original): reconstructed/$name/"
