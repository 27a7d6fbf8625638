#!/usr/bin/env bash
# `make bench`: facerecon against its peers, side by side, from ONE run on this machine at the same thread
# count (see benches/README.md for what each table measures and how to read it).
#
#   1. Training (seed config, batch 64, synthetic faces): facerecon-train with the fast CPU kernels, the same
#      trainer with --reference-ops (candle's plain ops), Keras 3 / TensorFlow-CPU (../shared/bench/keras_seed_ae.py, the reference peer; KERAS_REF overrides).
#   2. Inference (forward only): candle Model::forward (fast kernels, plain ops), ONNX Runtime through
#      facerecon-runtime (facerecon-infer --bench-session) and through Python onnxruntime on the same exported
#      file, Keras predict_on_batch / tf.function.
#   (BREAKDOWN=1: the bare network's training step and per-layer times, fast kernels vs plain candle.)
#   3. Loss-curve agreement of the fast kernels with --reference-ops (benches/loss_parity.sh; PARITY=0 skips).
#   4. Training speed on the identical network (benches/train_peers.sh; TRAIN_PEERS=0 skips): facerecon-train
#      end to end on the JPEG faces vs Keras and PyTorch peers of configs/unet.yaml and configs/seed.yaml.
#      BENCH_ONLY=train (or `make bench-train`) runs this section alone.
#
# The configurations run ROUNDS times, interleaved (each round runs every configuration once), so that a
# change of machine load hits all of them; tables show medians. Output: markdown on stdout and in
# .cache/bench/results.md; raw RESULT lines in .cache/bench/results.jsonl.
#
# Variables: THREADS (2), ROUNDS (3), TRAIN_STEPS (15: 3 warm-up + 12 timed), REF_STEPS (6: 3 + 3),
# KERAS_STEPS (8 timed, after 3 warm-up), INFER_STEPS (10 timed runs at b64), INFER_STEPS1 (50 at b1),
# PARITY (1), PARITY_STEPS (150), TRAIN_PEERS (1), BENCH_ONLY (train: section 4 only; its variables are in
# benches/train_peers.sh), BREAKDOWN (0; 1 adds the train_bench example's per-layer table),
# MODEL (the ONNX file; default .cache/bench/seed.onnx, exported when missing), BENCH_PY (a Python with
# tensorflow + onnxruntime; else scripts/bench-venv.sh makes one), ORT_DYLIB_PATH (default: scripts/setup-ort.sh cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
if [ "${BENCH_ONLY:-}" = train ]; then
  THREADS=$THREADS exec benches/train_peers.sh
fi
[ -z "${BENCH_ONLY:-}" ] || { echo "bench: BENCH_ONLY=${BENCH_ONLY} is not a section (train)" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
TRAIN_STEPS=${TRAIN_STEPS:-15}
REF_STEPS=${REF_STEPS:-6}
KERAS_STEPS=${KERAS_STEPS:-8}
INFER_STEPS=${INFER_STEPS:-10}
INFER_STEPS1=${INFER_STEPS1:-50}
PARITY=${PARITY:-1}
BREAKDOWN=${BREAKDOWN:-0}
CONFIG=configs/seed.yaml
OUT=.cache/bench
BIN=target/release
MODEL=${MODEL:-$OUT/seed.onnx}
FACES=$OUT/faces           # synthetic faces, generated once: 3000 = 44 steps of 64 per epoch (no validation)
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh cpu)}
# candle's matmuls size their thread pool from RAYON_NUM_THREADS; the binaries' --threads set the rest.
export RAYON_NUM_THREADS=$THREADS
export TF_CPP_MIN_LOG_LEVEL=2

[ "$TRAIN_STEPS" -gt 3 ] && [ "$REF_STEPS" -gt 3 ] || { echo "bench: TRAIN_STEPS and REF_STEPS must be > 3 (3 warm-up steps)" >&2; exit 2; }
[ "$TRAIN_STEPS" -le 40 ] && [ "$REF_STEPS" -le 40 ] || { echo "bench: at most 40 training steps (one epoch of $FACES)" >&2; exit 2; }
for b in facerecon-train facerecon-export facerecon-infer; do
  [ -x "$BIN/$b" ] || { echo "bench: no $BIN/$b (cargo build --release --workspace --bins)" >&2; exit 2; }
done
PY=$(scripts/bench-venv.sh)
echo "bench: building the candle inference benchmark (crates/facerecon-model/examples/infer_bench.rs)" >&2
${CARGO:-cargo} build --release -q -p facerecon-model --example infer_bench
mkdir -p "$OUT/raw"
results=$OUT/results.jsonl
: > "$results"

# Append the RESULT lines of FILE to results.jsonl, tagged with the source and the round.
collect() {
  local src=$1 round=$2 file=$3
  grep -q '^RESULT {' "$file" || { echo "bench: $src (round $round) printed no RESULT line; see $file" >&2; exit 1; }
  sed -n "s/^RESULT {/{\"source\": \"$src\", \"round\": $round, /p" "$file" >> "$results"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# Training: the trainer as a user runs it (data thread, masks, loss, Adam), steady state after 3 warm-up steps.
train() { # NAME STEPS [extra flags]
  local name=$1 steps=$2; shift 2
  "$BIN/facerecon-train" --config "$CONFIG" --data "$FACES" --synthetic 3000 --out "$OUT/run-$name" --force \
    --max-steps "$steps" --threads "$THREADS" --seed 1 --bench-json "$@" >"$OUT/raw/$name.r$r.out" 2>"$OUT/raw/$name.r$r.log" \
    || { echo "bench: facerecon-train ($name) failed; see $OUT/raw/$name.r$r.log" >&2; exit 1; }
  collect "train-$name" "$r" "$OUT/raw/$name.r$r.out"
}

# The exported model for the ONNX Runtime rows (weights do not matter for speed).
if [ ! -f "$MODEL" ]; then
  ckpt=runs/seed-1ep
  if [ ! -f "$ckpt/model.safetensors" ]; then  # a fresh machine: 5 steps are enough for a checkpoint
    ckpt=$OUT/run-export
    "$BIN/facerecon-train" --config "$CONFIG" --data "$FACES" --synthetic 3000 --out "$ckpt" --force \
      --max-steps 5 --threads "$THREADS" >"$OUT/raw/export-train.log" 2>&1 \
      || { echo "bench: training the model to export failed; see $OUT/raw/export-train.log" >&2; exit 1; }
  fi
  echo "bench: exporting $ckpt -> $MODEL" >&2
  "$BIN/facerecon-export" --checkpoint "$ckpt" --out "$MODEL" >"$OUT/raw/export.log" 2>&1 \
    || { echo "bench: export failed; see $OUT/raw/export.log" >&2; exit 1; }
fi

printf '{"source": "meta", "round": 0, "threads": %s, "load_start": "%s", "cpu": "%s", "model": "%s"}\n' \
  "$THREADS" "$(loadavg)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$MODEL" >> "$results"
for r in $(seq 1 "$ROUNDS"); do
  echo "bench: round $r/$ROUNDS (load average $(loadavg))" >&2
  printf '{"source": "load", "round": %s, "loadavg": "%s"}\n' "$r" "$(loadavg)" >> "$results"
  train fast "$TRAIN_STEPS"
  train reference "$REF_STEPS" --reference-ops
  "$PY" "${KERAS_REF:-../shared/bench/keras_seed_ae.py}" bench --threads "$THREADS" --steps "$KERAS_STEPS" --steps1 "$INFER_STEPS1" \
    >"$OUT/raw/keras.r$r.out" 2>"$OUT/raw/keras.r$r.log" || { echo "bench: Keras failed; see $OUT/raw/keras.r$r.log" >&2; exit 1; }
  collect keras "$r" "$OUT/raw/keras.r$r.out"
  target/release/examples/infer_bench --config "$CONFIG" --threads "$THREADS" --ops fast \
    --steps "$INFER_STEPS" --steps1 "$INFER_STEPS1" >"$OUT/raw/candle.r$r.out"
  # Candle's plain ops take ~2 s per b64 forward: a few runs are enough.
  target/release/examples/infer_bench --config "$CONFIG" --threads "$THREADS" --ops reference \
    --steps 3 --steps1 10 >>"$OUT/raw/candle.r$r.out"
  collect candle-infer "$r" "$OUT/raw/candle.r$r.out"
  for b in 1 64; do
    n=$([ "$b" = 1 ] && echo "$INFER_STEPS1" || echo "$INFER_STEPS")
    "$BIN/facerecon-infer" --model "$MODEL" --bench-session "$n" --batch-size "$b" --threads "$THREADS" \
      >"$OUT/raw/ort-rust-b$b.r$r.out" 2>&1 || { echo "bench: facerecon-infer --bench-session failed; see $OUT/raw/ort-rust-b$b.r$r.out" >&2; exit 1; }
    collect ort-rust "$r" "$OUT/raw/ort-rust-b$b.r$r.out"
  done
  "$PY" benches/ort_py_bench.py "$MODEL" --threads "$THREADS" --steps "$INFER_STEPS" --steps1 "$INFER_STEPS1" \
    >"$OUT/raw/ort-py.r$r.out" 2>&1 || { echo "bench: ort_py_bench.py failed; see $OUT/raw/ort-py.r$r.out" >&2; exit 1; }
  collect ort-python "$r" "$OUT/raw/ort-py.r$r.out"
done
printf '{"source": "meta-end", "round": 0, "load_end": "%s"}\n' "$(loadavg)" >> "$results"

"$PY" benches/bench_tables.py "$results" > "$OUT/results.md"
if [ "$BREAKDOWN" = 1 ]; then
  echo "bench: per-layer breakdown (crates/facerecon-model/examples/train_bench.rs)" >&2
  { echo; echo "## Model-only training step and per-layer breakdown (train_bench example, batch 64)"; echo
    echo "Fast kernels vs candle's plain ops on the bare network (no data pipeline), ms per layer."; echo
    echo '```'; ${CARGO:-cargo} run --release -q -p facerecon-model --example train_bench -- 3 64; echo '```'
  } >> "$OUT/results.md"
fi
status=0
if [ "$PARITY" = 1 ]; then
  benches/loss_parity.sh > "$OUT/parity.md" || status=$?
  { echo; cat "$OUT/parity.md"; } >> "$OUT/results.md"
fi
if [ "${TRAIN_PEERS:-1}" = 1 ]; then
  echo "bench: training speed on the identical network (benches/train_peers.sh)" >&2
  THREADS=$THREADS benches/train_peers.sh > "$OUT/train-peers.md" || status=$?
  { echo; cat "$OUT/train-peers.md"; } >> "$OUT/results.md"
fi
cat "$OUT/results.md"
echo >&2
echo "bench: tables in $OUT/results.md, raw results in $results" >&2
exit "$status"
