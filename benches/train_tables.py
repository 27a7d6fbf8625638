"""Markdown tables from benches/train_peers.sh's results.jsonl: facerecon-train vs Keras vs PyTorch.

Usage: python benches/train_tables.py .cache/bench/train/results.jsonl > results.md
Per network and batch size: the median img/s over the interleaved rounds (per-round values beside it), the
ratio facerecon / faster peer from the medians and, as a paired cross-check, the median of the per-round
ratios (each round's facerecon run against the same round's faster peer). Needs benches/peer_spec.py (numpy,
pyyaml) for the networks' FLOPs when the results have no check lines (CHECK=0).
"""
import json
import os
import sys
from statistics import median

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
meta = next((r for r in rows if r["source"] == "meta"), {})
meta_end = next((r for r in rows if r["source"] == "meta-end"), {})
# Issue 13's targets: facerecon-train / the faster peer on the unet, / Keras on the seed.
TARGETS = {"unet": (1.2, ("keras", "pytorch")), "seed": (1.25, ("keras",))}
NAMES = {"facerecon": "facerecon-train, JPEG faces end to end", "keras": "Keras 3 / TensorFlow, in-memory batch",
         "pytorch": "PyTorch (eager), in-memory batch"}
FLOPS = {}  # network -> forward FLOPs per image, from the check (2 per multiply-add)


def by_round(source, net, batch, key="img_per_s"):
    """{round: value} of one configuration."""
    return {r["round"]: float(r[key]) for r in rows
            if r["source"] == source and r.get("net") == net and r.get("batch_size") == batch and key in r}


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


out = []
rounds = meta.get("rounds", "?")
out.append(f"## Training speed: facerecon-train against Keras and PyTorch on the identical network "
           f"({meta.get('threads', '?')} threads, medians of {rounds} interleaved rounds)")
out.append("")
loads = "; ".join(f"round {r['round']}: {r['loadavg']}" for r in rows if r["source"] == "load")
out.append(f"Machine: {meta.get('cpu', '?')}; load average (1/5/15 min) at the start {meta.get('load_start', '?')}, "
           f"at the end {meta_end.get('load_end', '?')}; at each round's start: {loads}. A load above "
           f"{meta.get('threads', '?')} means other work shared the cores: absolute numbers drop, the interleaved "
           "ratios stay comparable.")
out.append("")

checks = [r for r in rows if r["source"] == "check"]
if checks:
    out.append("Peers checked against facerecon (benches/peer_check.py, our weights from a 1-step run, our "
               "forward pass = ONNX Runtime on its export):")
    out.append("")
    out.append("| network | peer | parameters (ours) | multiply-adds / image (ours) | max abs diff of the "
               "forward pass vs ours |")
    out.append("|---|---|---:|---:|---:|")
    for c in checks:
        FLOPS[c["net"]] = 2 * c["macs_spec"]
        note = " (Keras `same`: pixels shifted by one, not compared)" if c["check"] == "keras-same" else ""
        out.append(f"| {c['net']} | {c['check']} | {c['params']:,} ({c['params_ours']:,}) | "
                   f"{c['macs'] / 1e6:.2f} M ({c['macs_spec'] / 1e6:.2f} M) | "
                   f"{c['max_abs_diff_vs_onnx']:.1e}{note} |")
    out.append("")
    out.append("(`keras` = --exact 1: facerecon's padding through ZeroPadding2D / `valid` + Cropping2D; TensorFlow's "
               "profiler counts those `valid` transposed convolutions over their uncropped output. `keras-same` = "
               "Keras' own padding=\"same\": exactly our multiply-adds.)")
    out.append("")

summary = []
for net in dict.fromkeys(r["net"] for r in rows if r.get("net") and r["source"] != "check"):
    batches = sorted({r["batch_size"] for r in rows if r.get("net") == net and r["source"] == "facerecon"})
    if net not in FLOPS and os.path.exists(f"configs/{net}.yaml"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import peer_spec
        FLOPS[net] = 2 * peer_spec.counts(peer_spec.resolve(peer_spec.load(f"configs/{net}.yaml")["model"]))[1]
    flops = FLOPS.get(net)
    out.append(f"### {net} (configs/{net}.yaml)" + (f": {flops / 1e6:.1f} MFLOP per image forward" if flops else ""))
    out.append("")
    out.append("| batch | trainer | img/s (median) | per round | GFLOP/s (3x forward) | facerecon / this |")
    out.append("|---:|---|---:|---|---:|---:|")
    for b in batches:
        ours = by_round("facerecon", net, b)
        med_ours = median(ours.values()) if ours else None
        for src in ("facerecon", "keras", "pytorch"):
            v = by_round(src, net, b)
            if not v:
                continue
            m = median(v.values())
            gf = fmt(m * 3 * flops / 1e9) if flops else "–"
            rel = "–" if src == "facerecon" or not med_ours else f"{med_ours / m:.2f}x"
            out.append(f"| {b} | {NAMES[src]} | {m:.1f} | {', '.join(fmt(x) for x in v.values())} | {gf} | {rel} |")
        target, peers = TARGETS.get(net, (None, ("keras", "pytorch")))
        meds = {p: median(by_round(p, net, b).values()) for p in peers if by_round(p, net, b)}
        if meds and med_ours:
            best = max(meds, key=meds.get)
            ratio = med_ours / meds[best]
            # Paired: each round's facerecon against that round's faster of the peers.
            paired = [ours[r] / max(by_round(p, net, b)[r] for p in meds) for r in ours
                      if all(r in by_round(p, net, b) for p in meds)]
            verdict = "" if target is None else (f"; target >= {target}x: " + ("met" if ratio >= target else
                                                 f"missed by {target / ratio:.2f}x"))
            summary.append(f"- **{net}, batch {b}: facerecon / {'faster peer' if len(meds) > 1 else best} "
                           f"({best}) = {ratio:.2f}x** (ratio of medians); per-round ratios "
                           f"{', '.join(f'{x:.2f}' for x in paired)}, median {median(paired):.2f}x{verdict}")
    waits = [r["data_wait"] for r in rows if r["source"] == "facerecon" and r.get("net") == net and "data_wait" in r]
    if waits:
        out.append("")
        out.append(f"facerecon-train waited for its data thread {100 * median(waits):.1f} % of the time (median).")
    out.append("")

out.append("facerecon-train: steady state (images over the wall time of the steps after 3 warm-up steps) of "
           f"`--max-steps {meta.get('ft_steps', '?')}` on the first images of {meta.get('faces', '?')}: JPEG "
           "decoding, resizing, masks and flips on the same cores, loss, backward, Adam. Peers: img/s of the "
           f"median of {meta.get('peer_steps', '?')} steps after 3 warm-up steps on one constant in-memory batch "
           f"(no data pipeline; Keras --exact {meta.get('keras_exact', '?')}, PyTorch channels_last "
           f"{meta.get('torch_cl', '?')}, OMP_WAIT_POLICY={meta.get('torch_omp_wait') or 'default'}). GFLOP/s counts a training step as 3x the forward pass.")
out.append("")
out.extend(summary)
print("\n".join(out))
