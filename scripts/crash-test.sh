#!/usr/bin/env bash
# The long crash-consistency test: a tiny training run SIGKILLed KILLS times at random points (random
# times, and the trainer's crash points between the files of a checkpoint), resumed after each kill,
# must end with the weights, optimiser state and metrics.jsonl of an uninterrupted run with the same
# seed (crates/facerecon-train/tests/crash.rs; `make test` runs it with 6 kills).
#   KILLS=50 (default)   SEED=1 (which kill points)   EPOCHS (default KILLS/4, at least 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export FACERECON_CRASH_KILLS="${KILLS:-50}" FACERECON_CRASH_SEED="${SEED:-1}"
if [ -n "${EPOCHS:-}" ]; then export FACERECON_CRASH_EPOCHS="$EPOCHS"; fi
echo "crash test: $FACERECON_CRASH_KILLS kills (seed $FACERECON_CRASH_SEED)"
exec "${CARGO:-cargo}" test --release -p facerecon-train --test crash -- --nocapture
