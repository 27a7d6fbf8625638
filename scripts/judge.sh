#!/usr/bin/env bash
# The face judge: PSNR beside identity, landmarks and sharpness, for models and the classical fills, on the
# 500 held-out UTKFace faces and on a looser crop of the same faces (docs/quality/identity.md).
#
#   scripts/judge.sh MODEL.onnx...          # e.g. scripts/judge.sh exported/unet.onnx exported/unet-sharp.onnx
#
# Per set (normal: the held-out files as they are; loose: each padded by reflection so the original frame fills
# FILL of the new one, then 128x128, benches/facejudge.py: the face's jaw line then spans ~70 % of the frame
# width instead of UTKFace's 87 %), every MODEL runs `facerecon-infer --eval --holes HOLES
# --eval-seed SEED` (the same seeded box per image for every method and both sets), the classical METHODS fill
# the very same holes (benches/telea_eval.py), and benches/identity_eval.py judges every result with dlib's
# face models. Prints one markdown table per set: psnr_hole (dB), id_dist (dlib descriptor distance, < 0.6 = same
# person), the fractions at or beyond 0.4 and 0.6, lm_err (in-hole 68-landmark error, % of the inter-ocular
# distance), sharpness (luma gradient energy in the hole, result / original; flat fill 0, original 1), and how
# many originals dlib found a face in. With two or more models, a last table checks issue 14's targets for each
# model after the first (the baseline): identity distance, fraction >= 0.4, landmark error, sharpness, psnr_hole
# against the first model on the normal set, identity distance against Telea on the loose set.
#
# Variables: VAL (the list of held-out images; default: the 500 that `facerecon-train --config exported/unet.yaml
# --data DATA --max-steps 1` writes to val_files.txt, made in a temp dir), DATA (../shared/data/utkface),
# METHODS (telea,biharmonic,fsr; empty: models only), SETS ("normal loose"), FILL (0.8), HOLES (box32-64),
# SEED (0), LIMIT (only the first N images of VAL), THREADS (2: facerecon-infer's threads and identity_eval.py's
# worker processes), JSON (write all figures there), KEEP (a
# directory to keep the triptychs, masks, loose images and reports in; default: a temp dir, removed), PY (default:
# the bench venv of scripts/bench-venv.sh, which has dlib), ORT_DYLIB_PATH (default: scripts/setup-ort.sh cpu),
# REPORT_ONLY=1 (with KEEP: print the tables of an earlier run kept there, computing nothing).
# Load on the 2-core machine: ~1 min per model per set for inference + judging, FSR ~2-3 min per set;
# all of unet, unet-edge and the three classical fills on both sets: see docs/quality/identity.md.
set -euo pipefail
# The whole script is one function, read before anything runs: editing this file during a run cannot derail it.
main() {
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/judge.sh MODEL.onnx... (see the header of this script)" >&2; exit 2; }
DATA=${DATA:-../shared/data/utkface}
METHODS=${METHODS-telea,biharmonic,fsr}
SETS=${SETS:-normal loose}
FILL=${FILL:-0.8}
HOLES=${HOLES:-box32-64}
SEED=${SEED:-0}
THREADS=${THREADS:-2}
PY=${PY:-${BENCH_PY:-}}
if [ -z "$PY" ]; then
  # The bench venv as it is when it has what the judge imports (bench-venv.sh's own check also imports
  # TensorFlow and PyTorch, ~10-30 s); else bench-venv.sh makes or completes it.
  PY=$PWD/.cache/bench-venv/bin/python
  "$PY" -c 'import numpy, PIL, skimage.restoration, cv2, dlib, importlib.util; cv2.xphoto.inpaint
assert importlib.util.find_spec("face_recognition_models")' 2>/dev/null || PY=$(scripts/bench-venv.sh)
fi
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/setup-ort.sh cpu)}
export ORT_DYLIB_PATH
for bin in facerecon-infer facerecon-train; do
  [ -x target/release/$bin ] || { echo "judge: target/release/$bin is missing (make build)" >&2; exit 2; }
done
declare -A seen
for m in "$@"; do
  [ -f "$m" ] || { echo "judge: no model file $m" >&2; exit 2; }
  n=$(basename "$m" .onnx)
  [ -z "${seen[$n]:-}" ] || { echo "judge: two models named $n" >&2; exit 2; }
  seen[$n]=1
done
[ -z "${REPORT_ONLY:-}" ] || [ -n "${KEEP:-}" ] || { echo "judge: REPORT_ONLY needs KEEP" >&2; exit 2; }
if [ -n "${KEEP:-}" ]; then work=$KEEP; mkdir -p "$work"; else work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; fi
start=$(date +%s)

if [ -z "${REPORT_ONLY:-}" ]; then
  if [ -z "${VAL:-}" ]; then
    target/release/facerecon-train --config exported/unet.yaml --data "$DATA" --out "$work/valrun" --max-steps 1 \
      >"$work/valrun.log" 2>&1 || { cat "$work/valrun.log" >&2; exit 1; }
    VAL=$work/valrun/val_files.txt
  fi
  mapfile -t val < <(LC_ALL=C sort "$VAL" | head -n "${LIMIT:-1000000}")
  [ ${#val[@]} -gt 0 ] || { echo "judge: $VAL lists no image" >&2; exit 2; }

  for set in $SETS; do
    t0=$(date +%s)
    dir=$work/$set; mkdir -p "$dir"
    case $set in
      normal) inputs=("${val[@]}") ;;
      loose)
        rm -rf "$dir/images"
        "$PY" benches/facejudge.py loose --out "$dir/images" --fill "$FILL" --size 128 "${val[@]}" 2>/dev/null
        mapfile -t inputs < <(printf '%s\n' "$dir"/images/*.png | LC_ALL=C sort) ;;
      *) echo "judge: unknown set $set (normal, loose)" >&2; exit 2 ;;
    esac
    runs=(); first=1
    for m in "$@"; do
      n=$(basename "$m" .onnx)
      extra=(); [ $first = 1 ] && extra=(--save-masks "$dir/masks")
      target/release/facerecon-infer --model "$m" --eval --holes "$HOLES" --eval-seed "$SEED" --threads "$THREADS" \
        --overwrite --out "$dir/$n" --report "$dir/$n.json" "${extra[@]}" "${inputs[@]}" >/dev/null 2>"$dir/$n.log" \
        || { cat "$dir/$n.log" >&2; exit 1; }
      runs+=("$n=$dir/$n"); first=0
    done
    : >"$dir/peers.log"; rm -rf "$dir/peers"
    if [ -n "$METHODS" ]; then
      "$PY" benches/telea_eval.py --masks "$dir/masks" --methods "$METHODS" --out "$dir/peers" "${inputs[@]}" \
        >/dev/null 2>"$dir/peers.log" || { cat "$dir/peers.log" >&2; exit 1; }
      for p in "$dir"/peers/*/; do p=${p%/}; runs+=("$(basename "$p")=$p"); done
    fi
    "$PY" benches/identity_eval.py --masks "$dir/masks" --jobs "$THREADS" --json "$dir/identity.json" "${runs[@]}" \
      >/dev/null
    echo "$(( $(date +%s) - t0 ))" >"$dir/seconds"
  done
fi

"$PY" - "$work" "${JSON:-}" "$HOLES" "$SEED" "$FILL" "$SETS" "$@" <<'PY'
import json, math, os, sys
work, out, holes, seed, fill, sets, models = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split(), sys.argv[7:]
names = [os.path.basename(m)[:-5] if m.endswith(".onnx") else os.path.basename(m) for m in models]
order = names + ["telea", "biharmonic", "fsr_fast", "border_mean"]
alltabs = {}
def f(v, fmt):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)
for s in sets:
    d = os.path.join(work, s)
    ids = {r["method"]: r for r in json.load(open(os.path.join(d, "identity.json")))}
    rows = {}
    for n in names:
        rep = json.load(open(os.path.join(d, n + ".json")))["sets"][-1]
        rows[n] = {"psnr_hole": rep["mean"]["psnr_hole"], "sharpness_rust": rep.get("sharpness")}
    for line in open(os.path.join(d, "peers.log")):
        if line.startswith("RESULT "):
            r = json.loads(line[7:])
            rows[r["method"]] = {"psnr_hole": r["psnr_hole"]}
    for n, r in rows.items():
        r.update({k: ids[n].get(k) for k in ("n", "id_dist", "id_0.4", "id_0.6", "lm_err", "lm_n", "sharpness",
                                              "faces_detected", "face_width")})
        sr = r.pop("sharpness_rust", None)
        if sr is not None and r["sharpness"] is not None and abs(sr - r["sharpness"]) > 1e-6 * max(1, abs(sr)):
            print(f"judge: {n}: sharpness {sr} (facerecon-infer) vs {r['sharpness']} (facejudge.py)", file=sys.stderr)
    secs = int(open(os.path.join(d, "seconds")).read())
    n_img = max(r["n"] for r in rows.values())
    fw = next(iter(ids.values())).get("face_width")
    what = "held-out faces as they are" if s == "normal" else f"looser crop (original frame = {fill} of the width)"
    fw = "" if fw is None else f"; jaw line {100 * fw:.0f} % of the frame width"
    print(f"\n### {s}: {n_img} {what}{fw}, one {holes} hole (seed {seed}); {secs} s\n")
    print("| method | psnr_hole | id_dist | id >= 0.4 | id >= 0.6 | lm_err (% iod) | sharpness | faces found |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in sorted(rows, key=lambda k: order.index(k) if k in order else len(order)):
        r = rows[n]
        print(f"| {n} | {f(r['psnr_hole'], '.2f')} | {f(r['id_dist'], '.4f')} | {100 * r['id_0.4']:.1f} % "
              f"| {100 * r['id_0.6']:.1f} % | {f(r['lm_err'], '.2f')} | {f(r['sharpness'], '.3f')} "
              f"| {r['faces_detected']}/{r['n']} |")
    alltabs[s] = {"seconds": secs, "methods": rows}
# Issue 14's "Done means", for every model after the first (the baseline, e.g. unet) against it and Telea.
base = names[0]
norm, loose = alltabs.get("normal", {}).get("methods", {}), alltabs.get("loose", {}).get("methods", {})
checks = []
for n in names[1:]:
    def get(tab, m, k):
        v = tab.get(m, {}).get(k)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    def check(what, got, want, ok, tfmt, gfmt):
        verdict = "-" if got is None or want is None else ("yes" if ok(got, want) else "NO")
        checks.append((n, what, "-" if want is None else format(want, tfmt), f(got, gfmt), verdict))
    b = lambda k: get(norm, base, k)
    scaled = lambda v, x: None if v is None else v * x
    check(f"id_dist <= 0.8 x {base}", get(norm, n, "id_dist"), scaled(b("id_dist"), 0.8), lambda g, w: g <= w, ".4f", ".4f")
    check(f"id >= 0.4 (%) <= 0.5 x {base}", scaled(get(norm, n, "id_0.4"), 100), scaled(b("id_0.4"), 50),
          lambda g, w: g <= w, ".1f", ".1f")
    check(f"lm_err <= 0.85 x {base}", get(norm, n, "lm_err"), scaled(b("lm_err"), 0.85), lambda g, w: g <= w, ".2f", ".2f")
    check("sharpness >= 0.7", get(norm, n, "sharpness"), 0.7, lambda g, w: g >= w, ".1f", ".3f")
    check(f"psnr_hole >= {base} - 1 dB", get(norm, n, "psnr_hole"), None if b("psnr_hole") is None else b("psnr_hole") - 1,
          lambda g, w: g >= w, ".2f", ".2f")
    check("loose: id_dist <= 0.85 x Telea", get(loose, n, "id_dist"), scaled(get(loose, "telea", "id_dist"), 0.85),
          lambda g, w: g <= w, ".4f", ".4f")
if checks:
    print(f"\n### issue 14 targets (against {base} on the normal set, Telea on the loose set)\n")
    print("| model | target | wanted | measured | met |")
    print("|---|---|---:|---:|---|")
    for c in checks:
        print("| " + " | ".join(c) + " |")
    alltabs["targets"] = [dict(zip(("model", "target", "wanted", "measured", "met"), c)) for c in checks]
if out:
    json.dump(alltabs, open(out, "w"), indent=1)
PY
echo "judge: $(( $(date +%s) - start )) s in all" >&2
}
main "$@"; exit
