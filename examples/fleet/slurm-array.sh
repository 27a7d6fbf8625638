#!/bin/bash
# facerecon-infer over a large photo folder as a Slurm job array: task I of N takes shard I/N.
#
#   sbatch examples/fleet/slurm-array.sh          (edit the paths below, or export them first)
#
# The array must be 0..N-1 (--shard is 0-based); SLURM_ARRAY_TASK_COUNT is then N. A task that is
# requeued (node failure, preemption) or resubmitted runs the same shard again and, with
# --skip-existing, only processes the images whose output is not yet a complete PNG.
# Exit status 1 means some images failed (each is listed in that shard's report), 2 a usage or
# model error; both mark the task failed.
#SBATCH --job-name=facerecon-infer
#SBATCH --array=0-15
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --requeue
#SBATCH --output=facerecon-infer-%A_%a.log
set -euo pipefail

: "${SLURM_ARRAY_TASK_ID:?not set: submit this script with sbatch (it is a job array)}"
: "${SLURM_ARRAY_TASK_COUNT:?not set: submit this script with sbatch (it is a job array)}"

MODEL=${MODEL:-/shared/models/unet.onnx}
INPUT=${INPUT:-/shared/data/faces}     # the same folder on every node (its mount point may differ)
OUT=${OUT:-/shared/results/faces}
INFER=${FACERECON_INFER:-facerecon-infer}

# One report per shard: tasks never write the same file.
exec "$INFER" --model "$MODEL" "$INPUT" \
    --out "$OUT/images" \
    --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT" \
    --skip-existing \
    --threads "${SLURM_CPUS_PER_TASK:-1}" \
    --report "$OUT/reports/shard-$SLURM_ARRAY_TASK_ID.json" \
    --quiet
