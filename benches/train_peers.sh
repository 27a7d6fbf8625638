#!/usr/bin/env bash
# Training speed on the identical network: facerecon-train end to end on the real JPEG faces against Keras 3
# (benches/keras_peer.py) and PyTorch (benches/torch_peer.py) on in-memory batches, for configs/unet.yaml and
# configs/seed.yaml (issue 13). Part of `make bench` (benches/run.sh); alone: `make bench-train`.
#
#   1. Check (CHECK=1): a 1-step facerecon-train run of each config, exported to ONNX; benches/peer_check.py
#      verifies that both peers have our parameter count and multiply-adds and, on our weights, our forward
#      pass (exit 1 otherwise).
#   2. ROUNDS interleaved rounds; in each, for every network and batch size: facerecon-train, Keras, PyTorch
#      (A B C A B C ...), so a change of machine load hits all three alike. Tables: medians over rounds, the
#      ratio facerecon / faster peer, and the load average of every round.
#
# facerecon-train: `--config C --data $FACES_DIR --max-images N --batch-size B --max-steps $FT_STEPS`, the
# whole trainer (data thread decoding and resizing JPEGs and drawing masks on the same cores, loss, backward,
# Adam); its number is the steady state after 3 warm-up steps (RESULT img_per_s). Peers: one constant
# in-memory batch, img/s of the median of PEER_STEPS steps after 3 warm-up steps (favours the peers).
#
# Variables: THREADS (2), ROUNDS (5; TRAIN_ROUNDS overrides it for this section alone), FT_STEPS (15: 3 warm-up
# + 12 timed), PEER_STEPS (8), UNET_BATCHES ("16 32"), SEED_BATCHES ("64"; empty skips the seed), FACES_DIR
# (../shared/data/utkface), CHECK (1), KERAS_EXACT (0: Keras' own padding="same", see keras_peer.py; 1:
# facerecon's pixel alignment via pad / crop layers), TORCH_CL (0; 1: channels_last), TORCH_OMP_WAIT (PASSIVE:
# PyTorch's OpenMP threads sleep at barriers instead of spinning, which made the PyTorch peer 1.6-2x faster on
# this shared 2-core machine at a load of 7-8 and costs a wake-up per barrier on idle cores; empty: OpenMP's
# default), BENCH_PY (see scripts/bench-venv.sh), ORT_DYLIB_PATH (for the exporter in the check).
# Output: markdown on stdout and in .cache/bench/train/results.md; raw RESULT lines in
# .cache/bench/train/results.jsonl, logs in .cache/bench/train/raw/.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${TRAIN_ROUNDS:-${ROUNDS:-5}}
FT_STEPS=${FT_STEPS:-15}
# facerecon-train's --decoded-cache: the faces decoded once (first round) and read back, as a user training for
# more than one epoch would run it (issue 13 allows it); FT_CACHE= (empty) decodes the JPEGs in every step.
PEER_STEPS=${PEER_STEPS:-8}
UNET_BATCHES=${UNET_BATCHES-16 32}
SEED_BATCHES=${SEED_BATCHES-64}
FACES_DIR=${FACES_DIR:-../shared/data/utkface}
CHECK=${CHECK:-1}
KERAS_EXACT=${KERAS_EXACT:-0}
TORCH_CL=${TORCH_CL:-0}
TORCH_OMP_WAIT=${TORCH_OMP_WAIT-PASSIVE}
OUT=.cache/bench/train
FT_CACHE=${FT_CACHE-$OUT/decoded-cache}
BIN=target/release
export RAYON_NUM_THREADS=$THREADS TF_CPP_MIN_LOG_LEVEL=2

[ "$FT_STEPS" -gt 3 ] || { echo "train_peers: FT_STEPS must be > 3 (3 warm-up steps)" >&2; exit 2; }
[ -d "$FACES_DIR" ] || { echo "train_peers: no face images in $FACES_DIR (FACES_DIR=...)" >&2; exit 2; }
for b in facerecon-train facerecon-export; do
  [ -x "$BIN/$b" ] || { echo "train_peers: no $BIN/$b (cargo build --release --workspace --bins)" >&2; exit 2; }
done
PY=$(scripts/bench-venv.sh)
mkdir -p "$OUT/raw"
results=$OUT/results.jsonl
: > "$results"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Append the RESULT lines of FILE to results.jsonl, tagged with the source, network, round and batch size.
collect() {
  local src=$1 net=$2 round=$3 b=$4 file=$5
  grep -q '^RESULT {' "$file" || { echo "train_peers: $src ($net, round $round) printed no RESULT line; see $file" >&2; exit 1; }
  sed -n "s/^RESULT {/{\"source\": \"$src\", \"net\": \"$net\", \"round\": $round, \"batch_size\": $b, /p" "$file" >> "$results"
}

# facerecon-train NET BATCH STEPS OUTNAME: the trainer as a user runs it, on the first images of the faces.
ft() {
  local net=$1 b=$2 steps=$3 name=$4
  # Enough images that the run stays inside its first epoch (5 % go to validation).
  local n=$(( b * (steps + 2) * 11 / 10 + 20 ))
  "$BIN/facerecon-train" --config "configs/$net.yaml" --data "$FACES_DIR" --max-images "$n" --batch-size "$b" \
    --out "$OUT/run-${name%.r*}" --force --max-steps "$steps" --threads "$THREADS" --seed 1 --bench-json \
    ${FT_CACHE:+--decoded-cache "$FT_CACHE"} \
    >"$OUT/raw/$name.out" 2>"$OUT/raw/$name.log" \
    || { echo "train_peers: facerecon-train ($name) failed; see $OUT/raw/$name.log" >&2; exit 1; }
}

nets=()
[ -n "$UNET_BATCHES" ] && nets+=(unet)
[ -n "$SEED_BATCHES" ] && nets+=(seed)
batches() { [ "$1" = unet ] && echo "$UNET_BATCHES" || echo "$SEED_BATCHES"; }

printf '{"source": "meta", "round": 0, "threads": %s, "rounds": %s, "ft_steps": %s, "peer_steps": %s, "faces": "%s", "keras_exact": %s, "torch_cl": %s, "torch_omp_wait": "%s", "load_start": "%s", "cpu": "%s"}\n' \
  "$THREADS" "$ROUNDS" "$FT_STEPS" "$PEER_STEPS" "$FACES_DIR" "$KERAS_EXACT" "$TORCH_CL" "$TORCH_OMP_WAIT" "$(loadavg)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >> "$results"

if [ "$CHECK" = 1 ]; then
  for net in "${nets[@]}"; do
    echo "train_peers: checking the peers' $net against facerecon's (parameters, multiply-adds, forward pass)" >&2
    ft "$net" 16 1 "check-$net"
    "$BIN/facerecon-export" --checkpoint "$OUT/run-check-$net" --out "$OUT/check-$net.onnx" >"$OUT/raw/check-$net-export.log" 2>&1 \
      || { echo "train_peers: export failed; see $OUT/raw/check-$net-export.log" >&2; exit 1; }
    (cd benches && "$PY" peer_check.py --config "../configs/$net.yaml" --checkpoint "../$OUT/run-check-$net" \
      --onnx "../$OUT/check-$net.onnx") >"$OUT/raw/check-$net.out" 2>"$OUT/raw/check-$net.log" \
      || { cat "$OUT/raw/check-$net.out" >&2; echo "train_peers: the peers' $net is not ours; see $OUT/raw/check-$net.log" >&2; exit 1; }
    collect check "$net" 0 0 "$OUT/raw/check-$net.out"
  done
fi

for r in $(seq 1 "$ROUNDS"); do
  echo "train_peers: round $r/$ROUNDS (load average $(loadavg))" >&2
  printf '{"source": "load", "round": %s, "loadavg": "%s"}\n' "$r" "$(loadavg)" >> "$results"
  for net in "${nets[@]}"; do
    for b in $(batches "$net"); do
      ft "$net" "$b" "$FT_STEPS" "$net-b$b.r$r"
      collect facerecon "$net" "$r" "$b" "$OUT/raw/$net-b$b.r$r.out"
      (cd benches && "$PY" keras_peer.py --config "../configs/$net.yaml" --batches "$b" --steps "$PEER_STEPS" \
        --threads "$THREADS" --exact "$KERAS_EXACT") >"$OUT/raw/keras-$net-b$b.r$r.out" 2>"$OUT/raw/keras-$net-b$b.r$r.log" \
        || { echo "train_peers: Keras failed; see $OUT/raw/keras-$net-b$b.r$r.log" >&2; exit 1; }
      collect keras "$net" "$r" "$b" "$OUT/raw/keras-$net-b$b.r$r.out"
      (cd benches && env ${TORCH_OMP_WAIT:+OMP_WAIT_POLICY=$TORCH_OMP_WAIT} "$PY" torch_peer.py --config "../configs/$net.yaml" --batches "$b" --steps "$PEER_STEPS" \
        --threads "$THREADS" --channels-last "$TORCH_CL") >"$OUT/raw/torch-$net-b$b.r$r.out" 2>"$OUT/raw/torch-$net-b$b.r$r.log" \
        || { echo "train_peers: PyTorch failed; see $OUT/raw/torch-$net-b$b.r$r.log" >&2; exit 1; }
      collect pytorch "$net" "$r" "$b" "$OUT/raw/torch-$net-b$b.r$r.out"
    done
  done
done
printf '{"source": "meta-end", "round": 0, "load_end": "%s"}\n' "$(loadavg)" >> "$results"

"$PY" benches/train_tables.py "$results" > "$OUT/results.md"
cat "$OUT/results.md"
echo "train_peers: tables in $OUT/results.md, raw results in $results" >&2
