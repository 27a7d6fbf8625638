#!/usr/bin/env bash
# Loss-curve agreement of the fast CPU kernels with candle's plain ops (facerecon-train --reference-ops):
# the seed config trained twice, STEPS steps of batch BATCH on the same synthetic faces with the same --seed
# (same shuffles, masks and flips), both from ONE initial checkpoint (candle's CPU RNG cannot be seeded,
# so the weights are initialised once, by a 0-step run, and each run resumes a copy of it). The only
# difference left is the floating-point summation order of the kernels, so the curves must agree closely.
#
#   benches/loss_parity.sh            # prints a markdown table; exit 1 if the curves diverge
#
# Variables: STEPS (150), BATCH (16), EVERY (10: log interval), TOL (0.02: max relative difference of the
# logged loss at any logged step), THREADS (2), SEED (7). The reference run costs ~1 s per step at batch 16.
# The logged loss is the trainer's running mean over the epoch so far (5 decimals).
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${STEPS:-${PARITY_STEPS:-150}}
BATCH=${BATCH:-16}
EVERY=${EVERY:-10}
TOL=${TOL:-0.02}
THREADS=${THREADS:-2}
SEED=${SEED:-7}
OUT=.cache/bench/parity
FACES=.cache/bench/faces   # shared with benches/run.sh: 3000 synthetic faces = 178 steps of 16 per epoch
BIN=target/release/facerecon-train
export RAYON_NUM_THREADS=$THREADS
[ -x "$BIN" ] || { echo "loss_parity: no $BIN (cargo build --release -p facerecon-train)" >&2; exit 2; }
[ "$STEPS" -le 170 ] || { echo "loss_parity: STEPS must stay within one epoch of $FACES (<= 170)" >&2; exit 2; }
mkdir -p "$OUT"

# The seed config with a log line every EVERY steps (inserted at the top of its train: section).
config=$OUT/seed-parity.yaml
sed "s/^train:\$/train:\n  log_every: $EVERY/" configs/seed.yaml > "$config"
grep -q "^  log_every: $EVERY\$" "$config" || { echo "loss_parity: could not set log_every in $config" >&2; exit 2; }

common=(--config "$config" --data "$FACES" --synthetic 3000 --batch-size "$BATCH" --seed "$SEED" --threads "$THREADS")
"$BIN" "${common[@]}" --out "$OUT/init" --force --max-steps 0 >"$OUT/init.log" 2>&1 \
  || { echo "loss_parity: initialising failed; see $OUT/init.log" >&2; exit 1; }
for run in fast reference; do
  rm -rf "${OUT:?}/$run"
  cp -r "$OUT/init" "$OUT/$run"
  flags=(); [ "$run" = reference ] && flags=(--reference-ops)
  echo "loss_parity: $run ops, $STEPS steps of $BATCH" >&2
  "$BIN" "${common[@]}" --out "$OUT/$run" --resume --max-steps "$STEPS" "${flags[@]}" >"$OUT/$run.log" 2>&1 \
    || { echo "loss_parity: the $run run failed; see $OUT/$run.log" >&2; exit 1; }
done

# "epoch 1 step 10 (batch 10): loss 0.06143 | ..." -> "10 0.06143"
curve() { sed -nE 's/^epoch [0-9]+ step ([0-9]+) \(batch [0-9]+\): loss ([0-9.eE+-]+).*/\1 \2/p' "$1"; }
curve "$OUT/fast.log" > "$OUT/fast.curve"
curve "$OUT/reference.log" > "$OUT/reference.curve"
python3 - "$OUT/fast.curve" "$OUT/reference.curve" "$TOL" "$STEPS" "$BATCH" <<'EOF'
import sys
fast = dict(l.split() for l in open(sys.argv[1]))
ref = dict(l.split() for l in open(sys.argv[2]))
tol, steps, batch = float(sys.argv[3]), sys.argv[4], sys.argv[5]
print(f"## Loss-curve agreement: fast kernels vs --reference-ops (seed config, batch {batch}, {steps} steps)")
print()
print("Same data, seed and initial weights; the logged loss is the running mean over the epoch.")
print()
print("| step | fast | reference | rel. diff |")
print("|---:|---:|---:|---:|")
worst = 0.0
common = sorted(set(fast) & set(ref), key=int)
for s in common:
    a, b = float(fast[s]), float(ref[s])
    d = abs(a - b) / max(abs(b), 1e-12)
    worst = max(worst, d)
    print(f"| {s} | {a:.5f} | {b:.5f} | {100 * d:.3f} % |")
print()
if not common or set(fast) != set(ref):
    print(f"FAILED: the runs logged different steps (fast {len(fast)}, reference {len(ref)})")
    sys.exit(1)
ok = worst <= tol
print(f"Max relative difference {100 * worst:.3f} % (tolerance {100 * tol:.1f} %): {'agree' if ok else 'DIVERGED'}.")
sys.exit(0 if ok else 1)
EOF
