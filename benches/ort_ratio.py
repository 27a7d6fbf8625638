"""Batch-1 speed of several facerecon ONNX models relative to the first, through Python onnxruntime,
measured in interleaved rounds so that a busy machine slows every model alike.

Usage: python benches/ort_ratio.py BASE.onnx OTHER.onnx... [--threads 1] [--rounds 15] [--runs 20]

Session options as benches/ort_py_bench.py (intra-op threads, sequential, all graph optimisations). Each
round runs every model `--runs` times back to back (the order rotates per round) on the same input (a
random face-sized image with a centred 28x28 hole). Prints, per model, the median over rounds of the
wall time per run and of the process CPU time per run (with one intra-op thread the CPU time is the
compute the run needed, much less disturbed by other processes than the wall time), the speed ratios
against the first model, and the load average before and after. One line "RESULT {json}" at the end.
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("models", nargs="+")
p.add_argument("--threads", type=int, default=1)
p.add_argument("--rounds", type=int, default=15)
p.add_argument("--runs", type=int, default=20, help="runs per model per round")
p.add_argument("--warmup", type=int, default=5)
a = p.parse_args()


def session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


sessions = [session(m) for m in a.models]
size = sessions[0].get_inputs()[0].shape[-1]
rng = np.random.default_rng(0)
mask = np.zeros((1, 1, size, size), np.float32)
lo = (size - 28) // 2
mask[:, :, lo:lo + 28, lo:lo + 28] = 1.0
feed = {"image": rng.random((1, 3, size, size), dtype=np.float32) * (1.0 - mask), "mask": mask}
for s in sessions:
    for _ in range(a.warmup):
        s.run(None, feed)

load_before = os.getloadavg()
wall = [[] for _ in sessions]
cpu = [[] for _ in sessions]
for r in range(a.rounds):
    order = list(range(len(sessions)))
    order = order[r % len(order):] + order[:r % len(order)]
    for i in order:
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.runs):
            sessions[i].run(None, feed)
        wall[i].append((time.perf_counter() - w0) / a.runs * 1e3)
        cpu[i].append((time.process_time() - c0) / a.runs * 1e3)
load_after = os.getloadavg()

med = lambda v: float(np.median(v))
print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
      f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs); "
      f"{a.threads} intra-op thread(s), batch 1, {a.rounds} interleaved rounds x {a.runs} runs")
rows = []
for m, wv, cv in zip(a.models, wall, cpu):
    row = {"model": m, "size_bytes": os.path.getsize(m), "wall_ms": med(wv), "cpu_ms": med(cv),
           "speedup_wall": med(wall[0]) / med(wv), "speedup_cpu": med(cpu[0]) / med(cv)}
    rows.append(row)
    print(f"{m:40s} wall {row['wall_ms']:6.2f} ms  cpu {row['cpu_ms']:6.2f} ms  "
          f"speed vs first: wall {row['speedup_wall']:.2f}x  cpu {row['speedup_cpu']:.2f}x")
print("RESULT " + json.dumps({"tool": "ort_ratio", "ort_version": ort.__version__, "threads": a.threads,
                              "load_before": load_before, "load_after": load_after, "models": rows}))
