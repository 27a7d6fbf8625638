"""Per-operator times of ONNX Runtime on a facerecon export, from ORT's own profiler: what to compare with
candle's per-layer table (`RAYON_NUM_THREADS=N target/release/examples/train_bench 3 1`, column "ops fwd").

Usage: python benches/ort_profile.py MODEL.onnx [--threads 1] [--batch 1] [--runs 2000]
Prints one line per node: its name, operator and median kernel time in microseconds (the first 10 % of the
runs are dropped as warm-up). The profiler adds a little time per node; compare nodes, not the sum with
`ort_py_bench.py`.
"""
import argparse
import collections
import json
import os

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--batch", type=int, default=1)
p.add_argument("--runs", type=int, default=2000)
a = p.parse_args()

so = ort.SessionOptions()
so.intra_op_num_threads = a.threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.enable_profiling = True
s = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
feeds = {}
for i in s.get_inputs():
    if not all(isinstance(d, int) for d in i.shape[1:]):
        raise SystemExit(f"{a.model}: input {i.name} has no fixed shape ({i.shape})")
    feeds[i.name] = rng.random((a.batch, *i.shape[1:]), dtype=np.float32)
for _ in range(a.runs):
    s.run(None, feeds)
trace = s.end_profiling()
events = json.load(open(trace))
os.remove(trace)
times = collections.OrderedDict()
for e in events:
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
        times.setdefault((e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?")), []).append(e["dur"])
print(f"# {a.model}: batch {a.batch}, {a.threads} intra-op threads, ORT {ort.__version__}, median us per run")
for (name, op), ts in times.items():
    ts = sorted(ts[len(ts) // 10 :])
    print(f"{name:40s} {op:16s} {ts[len(ts) // 2]:7d}")
