#!/usr/bin/env bash
# `make bench-edge`: the edge table (docs/edge.md) from ONE run: batch-1 latency p50/p99 of the bare
# network, of a 128x128 face and of a 1920x1080 camera frame with one face-sized hole end to end through
# facerecon-runtime (as examples/camera_loop.rs does), at ONNX Runtime threads 1 and 2, rounds
# interleaved over every (model, threads) pair; with each file's size, held-out psnr_hole (its model card)
# and cold start. Model files that do not exist (yet) are listed as skipped. The frame is timed twice:
# `frame, box` (Runtime::reconstruct_in_place_in_box, the hole's box known: THE camera path; its "over
# session" ratio in bold) and `frame, scan` (Runtime::reconstruct_in_place, the whole mask searched).
#
# Variables: MODELS (default: exported/unet.onnx exported/unet-int8.onnx exported/unet-edge.onnx
# exported/unet-edge-int8.onnx), THREADS (1,2), ROUNDS (10), ITERS (10 runs per cell per round),
# ORT_DYLIB_PATH (default: scripts/setup-ort.sh cpu). Output: markdown on stdout and in .cache/bench/edge.md.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS=${MODELS:-exported/unet.onnx exported/unet-int8.onnx exported/unet-edge.onnx exported/unet-edge-int8.onnx}
THREADS=${THREADS:-1,2}
ROUNDS=${ROUNDS:-10}
ITERS=${ITERS:-10}
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh cpu)}
cargo build --release -q -p facerecon-runtime --example edge_bench
mkdir -p .cache/bench
# shellcheck disable=SC2086  # MODELS is a list
target/release/examples/edge_bench --rounds "$ROUNDS" --iters "$ITERS" --threads "$THREADS" $MODELS \
    | tee .cache/bench/edge.md
echo
echo "($(nproc) CPUs; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
