"""Python onnxruntime on a facerecon export (inputs `image` [B,3,S,S] and `mask` [B,1,S,S]).

Like ../shared/bench/ort_bench.py (same session options: intra-op threads, sequential, all graph
optimisations), but feeding both of our model's inputs: a random image with a centred 28x28 hole.

Usage: python benches/ort_py_bench.py MODEL.onnx [--threads 2] [--steps 10] [--steps1 50] [--batches 1,64] [--profile]
Prints one line "RESULT {json}" per batch size (median ms per run, images/s).

--profile (one batch size): also ORT's own per-operator times, one line per node (name, operator, median kernel
time in us over the timed runs), to compare with candle's per layer
(`RAYON_NUM_THREADS=N target/release/examples/train_bench 3 B`, column "ops fwd"). The profiler adds a little
time per node: take the RESULT line from a run without it.
"""
import collections
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=10, help="timed runs at batch sizes > 1")
p.add_argument("--steps1", type=int, default=50, help="timed runs at batch 1")
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--batches", default="1,64")
p.add_argument("--profile", action="store_true", help="print ORT's per-operator times (one batch size)")
a = p.parse_args()
if a.profile and "," in a.batches:
    raise SystemExit("--profile needs a single batch size (--batches B)")

so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.enable_profiling = a.profile
s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
names = [i.name for i in s.get_inputs()]
if sorted(names) != ["image", "mask"]:
    raise SystemExit(f"{a.model}: expected inputs image and mask, got {names}")
size = s.get_inputs()[names.index("image")].shape[-1]
if not isinstance(size, int):
    raise SystemExit(f"{a.model}: the image size is not fixed ({size})")
rng = np.random.default_rng(0)


def median(ts):
    ts = sorted(ts)
    n = len(ts)
    return ts[n // 2] if n % 2 else 0.5 * (ts[n // 2 - 1] + ts[n // 2])


for b in [int(v) for v in a.batches.split(",")]:
    side = min(28, size)
    lo = (size - side) // 2
    mask = np.zeros((b, 1, size, size), np.float32)
    mask[:, :, lo:lo + side, lo:lo + side] = 1.0
    image = rng.random((b, 3, size, size), dtype=np.float32) * (1.0 - mask)
    feed = {"image": image, "mask": mask}
    steps = a.steps1 if b == 1 else a.steps
    for _ in range(a.warmup):
        s.run(None, feed)
    ts = []
    for _ in range(steps):
        t0 = time.perf_counter()
        s.run(None, feed)
        ts.append(time.perf_counter() - t0)
    m = median(ts)
    print("RESULT " + json.dumps({"tool": "ort-python", "mode": "infer", "batch": b, "threads": a.threads,
                                  "ort_version": ort.__version__, "steps": steps, "ms_median": m * 1e3,
                                  "img_per_s": b / m}), flush=True)

if a.profile:
    trace = s.end_profiling()
    events = json.load(open(trace))
    os.remove(trace)
    times = collections.OrderedDict()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = (e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?"))
            times.setdefault(key, []).append(e["dur"])
    print(f"# per operator: batch {a.batches}, {a.threads} intra-op threads, median us over the timed runs")
    for (name, op), ts in times.items():
        ts = ts[a.warmup:]  # the first runs are the warm-up
        print(f"{name:40s} {op:16s} {median(ts):9.1f}")
