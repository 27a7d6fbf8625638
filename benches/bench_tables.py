"""Markdown tables from benches/run.sh's results.jsonl (RESULT lines tagged with source and round).

Usage: python benches/bench_tables.py .cache/bench/results.jsonl > results.md
Medians over the rounds; each cell also lists the per-round values so that the spread is visible.
Standard library only.
"""
import json
import sys
from statistics import median

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
meta = next((r for r in rows if r["source"] == "meta"), {})
meta_end = next((r for r in rows if r["source"] == "meta-end"), {})
threads = meta.get("threads", "?")


def values(source, key="img_per_s", **match):
    """The `key` of every round's result of `source` whose fields equal `match`."""
    out = []
    for r in rows:
        if r["source"] == source and all(r.get(k) == v for k, v in match.items()) and r.get(key) is not None:
            out.append(float(r[key]))
    return out


def med(v):
    return median(v) if v else None


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def spread(v, digits=1):
    return ", ".join(f"{x:.{digits}f}" for x in v) if v else "–"


def ratio(a, b):
    return "–" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


out = []
p = out.append
p(f"# facerecon benchmarks ({threads} threads, medians of {len(values('train-fast'))} interleaved rounds)")
p("")
p(f"Machine: {meta.get('cpu', '?')}; load average at the start {meta.get('load_start', '?')}, "
  f"at the end {meta_end.get('load_end', '?')} (1/5/15 min). A load above {threads} means other work shared "
  "the cores: compare the rows of one table, not absolute numbers across runs.")
p("")

# ---- training ----
fast, ref = values("train-fast"), values("train-reference")
keras = values("keras", mode="train")
kmed = med(keras)
steps_fast = med(values("train-fast", "steady_steps"))
steps_ref = med(values("train-reference", "steady_steps"))
p("## Training: seed autoencoder, batch 64, 128x128, Adam")
p("")
p("| trainer | img/s (median) | per round | vs Keras |")
p("|---|---:|---|---:|")
p(f"| facerecon-train, fast CPU kernels | {fmt(med(fast))} | {spread(fast)} | {ratio(med(fast), kmed)} |")
p(f"| facerecon-train --reference-ops (candle's plain ops) | {fmt(med(ref))} | {spread(ref)} | {ratio(med(ref), kmed)} |")
p(f"| Keras 3 / TensorFlow-CPU (train_on_batch) | {fmt(kmed)} | {spread(keras)} | 1.00x |")
p("")
p(f"facerecon-train: steady state over {fmt(steps_fast, 0)} (fast) / {fmt(steps_ref, 0)} (reference) steps after 3 "
  "warm-up steps, the whole trainer (data thread decoding PNGs, mask sampling, loss, backward, Adam); "
  "Keras: median step of `train_on_batch` on one constant in-memory batch (no data pipeline). "
  f"Fast kernels vs plain candle: {ratio(med(fast), med(ref))}.")
wait = med(values("train-fast", "data_wait"))
if wait is not None:
    p(f"The fast trainer waited for its data thread {100 * wait:.1f} % of the time (median over rounds; ~0 = "
      "decoding and masks keep up).")
p("")

# ---- inference ----
def infer_row(name, src, **match):
    b64 = values(src, batch=64, **match)
    b1 = values(src, batch=1, **match)
    ms_key = "ms_per_batch" if src == "ort-rust" else "ms_median"
    b1_ms = values(src, ms_key, batch=1, **match)
    return name, med(b64), b64, med(b1_ms), med(b1)


infer = [
    infer_row("candle Model::forward, fast CPU kernels", "candle-infer", ops="fast"),
    infer_row("candle Model::forward, plain candle ops (reference)", "candle-infer", ops="reference"),
    infer_row("ONNX Runtime via facerecon-runtime (`run_tensors`)", "ort-rust", tool="session"),
    infer_row("ONNX Runtime via facerecon-runtime (`Runtime::infer`)", "ort-rust", tool="runtime"),
    infer_row("ONNX Runtime, Python API", "ort-python"),
    infer_row("Keras `predict_on_batch`", "keras", mode="infer", api="predict_on_batch"),
    infer_row("Keras `tf.function` call", "keras", mode="infer", api="tf.function"),
]
ort_py = infer[4]
p("## Inference (forward only): seed autoencoder, 128x128, random weights / exported file")
p("")
p("| runtime | b64 img/s | b64 per round | b1 latency ms | b1 img/s | b64 vs ORT-Python | b1 vs ORT-Python |")
p("|---|---:|---|---:|---:|---:|---:|")
for name, b64, b64s, b1ms, b1 in infer:
    p(f"| {name} | {fmt(b64)} | {spread(b64s)} | {fmt(b1ms, 2)} | {fmt(b1)} | {ratio(b64, ort_py[1])} | {ratio(b1, ort_py[4])} |")
p("")
candle = infer[0]
verdict = []
for label, mine, theirs in [("b64", candle[1], ort_py[1]), ("b1", candle[4], ort_py[4])]:
    if mine is not None and theirs:
        r = mine / theirs
        verdict.append(f"{label} {r:.2f}x ({'met' if r >= 0.8 else 'MISSED'})")
p(f"Target: candle inference >= 0.8x ONNX Runtime's (Python API, same file, same threads): {'; '.join(verdict) or 'no data'}.")
p("Every row times one ready batch in memory: the network and, for candle and the ONNX file, the composite "
  "`mask*rec + (1-mask)*image` (a second output). facerecon-runtime's rows are means over the runs (the others "
  "medians); its `Runtime::infer` row adds gathering the images into a batch and splitting the result.")
print("\n".join(out))
