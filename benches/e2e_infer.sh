#!/usr/bin/env bash
# End-to-end inference benchmark: facerecon-infer against a straightforward Python script doing the same
# job (benches/py_infer.py: Pillow decode, resize, numpy, onnxruntime session, composite at the original
# size, PNG per image), plus the bare ONNX Runtime session cost, on N face JPEGs.
#
#   benches/e2e_infer.sh                      # MODEL=exported/demo.onnx, 2000 faces from $FACES
#   MODEL=exported/seed.onnx PY=/path/to/python N=500 ROUNDS=1 benches/e2e_infer.sh
#
# Both tools get the same hole rule: one fixed box (--box $BOX, original-image pixels; the default suits
# 200x200 UTKFace crops) and the same ONNX Runtime intra-op thread count ($THREADS). Each configuration
# runs ROUNDS times, interleaved (rust b1, python b1, rust b64, python b64, sessions, next round), and the
# table shows medians. Throughput is each tool's own clock, from creating the session to the last PNG
# written (process start-up and Python imports excluded).
#
# Variables: MODEL, PY (python with numpy, Pillow, onnxruntime; scripts/py-venv.sh makes .cache/venv),
# FACES (directory of face images; synthetic JPEG faces when missing), N (2000), ROUNDS (3),
# BATCHES ("1 64"), THREADS (2), BOX (78,78,44,44), BIN (target/release/facerecon-infer),
# ORT_DYLIB_PATH (default: scripts/setup-ort.sh cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-exported/demo.onnx}
PY=${PY:-.cache/venv/bin/python}
FACES=${FACES:-../shared/data/utkface}
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
BATCHES=${BATCHES:-1 64}
THREADS=${THREADS:-2}
BOX=${BOX:-78,78,44,44}
BIN=${BIN:-target/release/facerecon-infer}

[ -f "$MODEL" ] || { echo "e2e_infer: no model $MODEL (set MODEL=..., e.g. make demo writes exported/demo.onnx)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "e2e_infer: no $BIN (cargo build --release -p facerecon-infer)" >&2; exit 2; }
"$PY" -c "import numpy, PIL, onnxruntime" 2>/dev/null \
  || { echo "e2e_infer: $PY lacks numpy/Pillow/onnxruntime (scripts/py-venv.sh makes .cache/venv)" >&2; exit 2; }
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh cpu)}

work=$(mktemp -d "${TMPDIR:-/tmp}/e2e_infer.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/faces"
if [ -d "$FACES" ]; then
  mapfile -t all < <(find "$FACES" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) | sort)
  [ "${#all[@]}" -gt 0 ] || { echo "e2e_infer: no JPEGs in $FACES" >&2; exit 2; }
  cp -t "$work/faces" "${all[@]:0:$N}"
  source="the first $N JPEGs of $FACES"
else
  # No dataset: simple synthetic 200x200 faces (ellipses), JPEG like UTKFace.
  "$PY" - "$work/faces" "$N" <<'EOF'
import sys, random
from PIL import Image, ImageDraw
out, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    r = random.Random(i)
    img = Image.new("RGB", (200, 200), tuple(r.randrange(40, 220) for _ in range(3)))
    d = ImageDraw.Draw(img)
    skin = tuple(r.randrange(90, 240) for _ in range(3))
    d.ellipse([40 + r.randrange(10), 25 + r.randrange(10), 160 - r.randrange(10), 185 - r.randrange(10)], fill=skin)
    for ex in (75, 125):
        d.ellipse([ex - 9, 80, ex + 9, 92], fill=(r.randrange(30, 90),) * 3)
    d.ellipse([80, 135, 120, 150], fill=(150 + r.randrange(60), 60, 70))
    img.save(f"{out}/face_{i:05d}.jpg", quality=90)
EOF
  source="$N synthetic JPEG faces (no $FACES)"
fi
count=$(find "$work/faces" -type f | wc -l)
echo "e2e_infer: $MODEL, $source ($count images), box $BOX, $THREADS ORT threads, batches $BATCHES, $ROUNDS rounds" >&2

results=$work/results.jsonl
for round in $(seq "$ROUNDS"); do
  for b in $BATCHES; do
    rm -rf "$work/out"
    "$BIN" --model "$MODEL" --out "$work/out" --box "$BOX" --batch-size "$b" --threads "$THREADS" \
      --overwrite --quiet --report "$work/report.json" "$work/faces"
    "$PY" -c "import json,sys; s=json.load(open(sys.argv[1]))['summary']; print(json.dumps({'tool':'facerecon-infer','batch':$b,'images':s['reconstructed'],'img_per_s':s['images_per_second']}))" \
      "$work/report.json" >> "$results"
    rm -rf "$work/out"
    "$PY" benches/py_infer.py "$MODEL" "$work/faces" "$work/out" --batch "$b" --threads "$THREADS" --box "$BOX" \
      | sed -n 's/^RESULT //p' >> "$results"
    runs=$(( 2000 / b > 20 ? 2000 / b : 20 ))
    "$BIN" --model "$MODEL" --bench-session "$runs" --batch-size "$b" --threads "$THREADS" \
      | sed -n 's/^RESULT //p' >> "$results"
    "$PY" benches/py_infer.py "$MODEL" "$work/faces" "$work/out" --batch "$b" --threads "$THREADS" --bench-session "$runs" \
      | sed -n 's/^RESULT //p' >> "$results"
    echo "  round $round, batch $b done" >&2
  done
done

"$PY" - "$results" "$ROUNDS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
med = {}
for r in rows:
    med.setdefault((r["tool"], r["batch"]), []).append(r["img_per_s"])
med = {k: statistics.median(v) for k, v in med.items()}
names = {
    "facerecon-infer": "facerecon-infer (end to end)",
    "python": "py_infer.py (end to end)",
    "runtime": "Runtime::infer (network only, batched from per-image tensors)",
    "session": "bare ORT session via Runtime::run_tensors (Rust)",
    "python-session": "bare ORT session.run (Python)",
}
batches = sorted({b for _, b in med})
print(f"\n| tool | batch | img/s (median of {sys.argv[2]}) | vs python end to end |")
print("|---|---:|---:|---:|")
for tool in names:
    for b in batches:
        if (tool, b) in med:
            py = med.get(("python", b))
            ratio = f"{med[(tool, b)] / py:.2f}x" if py else "-"
            print(f"| {names[tool]} | {b} | {med[(tool, b)]:.1f} | {ratio} |")
b = max(batches)
if ("runtime", b) in med and ("session", b) in med:
    over = med[("session", b)] / med[("runtime", b)] - 1
    print(f"\nRuntime overhead over the bare session at batch {b}: {100 * over:+.1f}% "
          f"(time per image, Runtime::infer vs run_tensors; target <= 10%)")
if ("facerecon-infer", b) in med and ("session", b) in med:
    share = med[("facerecon-infer", b)] / med[("session", b)]
    print(f"End to end vs bare session at batch {b}: the network is {100 * share:.0f}% of facerecon-infer's "
          f"time per image; decoding, fitting, compositing and PNG encoding the rest.")
for bb in batches:
    if ("facerecon-infer", bb) in med and ("python", bb) in med:
        r = med[("facerecon-infer", bb)] / med[("python", bb)]
        print(f"facerecon-infer / python end to end at batch {bb}: {r:.2f}x (target >= 2x)")
EOF
