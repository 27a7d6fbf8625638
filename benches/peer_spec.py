"""The network of a facerecon config, resolved for the Python peers (benches/keras_peer.py, torch_peer.py).

Mirrors crates/facerecon-model/src/spec.rs: the same defaults, layer names, inputs, output shapes, paddings
(`same` = (dilation*(k-1))//2 on both sides; a transposed convolution's `same` = padding (k-1)//2 plus
output_padding stride+2p-k at the end) and the same parameter / multiply-add counts. The peers build their
layers from this list, so both read the one config that facerecon-train reads.

Also: the config's loss and Adam settings, the in-memory batch, step timing and the RESULT line.
Run `python benches/peer_spec.py configs/unet.yaml` to print the layer table and totals.
"""
import json
import sys
import time

import numpy as np
import yaml

INPUT, IMAGE, MASK = "input", "image", "mask"  # graph inputs a layer may read (spec.rs INPUT, IMAGE, MASK)


def load(path):
    """The config file as a dict: `model` (as written), `train` with the trainer's defaults filled in."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    train = cfg.get("train") or {}
    opt = {"kind": "adam", "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-7, **(train.get("optimizer") or {})}
    loss = {"kind": "mse", "hole_weight": 1.0, **(train.get("loss") or {})}
    if opt["kind"] != "adam" or loss["kind"] not in ("mse", "l1"):
        sys.exit(f"peer_spec: the peers implement adam with mse/l1 only, not {opt['kind']} / {loss['kind']}")
    name = cfg.get("name") or path.rsplit("/", 1)[-1].split(".")[0]
    return {"name": name, "model": cfg["model"], "batch_size": train.get("batch_size", 64), "optimizer": opt,
            "loss": loss}


def resolve(model):
    """Layers with defaults, names, inputs and shapes (one sample: (C,H,W) or (F,)), like ModelSpec::resolve."""
    s, c = model.get("image_size", 128), model.get("channels", 3)
    mask_channel = bool(model.get("mask_channel", False))
    shapes = {INPUT: (c + mask_channel, s, s), IMAGE: (c, s, s), MASK: (1, s, s)}
    prev, out = INPUT, []
    for i, raw in enumerate(model["layers"]):
        l = dict(raw)
        l.setdefault("name", f"layer{i}")
        src = l.pop("from", None)
        l["inputs"] = [prev] if src is None else ([src] if isinstance(src, str) else list(src))
        x = shapes[l["inputs"][0]]
        op = l["op"]
        if op in ("conv2d", "conv_transpose2d"):
            l.setdefault("stride", 1)
            l.setdefault("padding", "same")
            l.setdefault("dilation", 1)
            l.setdefault("bias", True)
            k, st, d, pad = l["kernel"], l["stride"], l["dilation"], l["padding"]
            _, h, w = x
            if op == "conv2d":
                p = {"same": d * (k - 1) // 2, "valid": 0}.get(pad, pad)
                eff = d * (k - 1) + 1
                l["pad"], l["out_pad"] = p, 0
                y = (l["filters"], (h + 2 * p - eff) // st + 1, (w + 2 * p - eff) // st + 1)
            else:
                p, op_ = {"same": ((k - 1) // 2, st + 2 * ((k - 1) // 2) - k), "valid": (0, 0)}.get(pad, (pad, 0))
                l["pad"], l["out_pad"] = p, op_
                y = (l["filters"], (h - 1) * st + k + op_ - 2 * p, (w - 1) * st + k + op_ - 2 * p)
        elif op == "dense":
            l.setdefault("bias", True)
            y = (l["units"],)
        elif op == "flatten":
            y = (int(np.prod(x)),)
        elif op == "reshape":
            y = tuple(l["shape"])
        elif op == "leaky_relu":
            l.setdefault("slope", 0.2)
            y = x
        elif op in ("relu", "sigmoid", "tanh"):
            y = x
        elif op == "upsample":
            l.setdefault("scale", 2)
            y = (x[0], x[1] * l["scale"], x[2] * l["scale"])
        elif op == "concat":
            y = (sum(shapes[n][0] for n in l["inputs"]), x[1], x[2])
        elif op == "add":
            y = x
        else:
            sys.exit(f"peer_spec: unknown op {op}")
        l["in_shape"], l["out_shape"] = x, y
        shapes[l["name"]] = y
        prev = l["name"]
        out.append(l)
    assert out[-1]["out_shape"] == (c, s, s), out[-1]["out_shape"]
    return out


def counts(layers):
    """(parameters, multiply-adds per image forward), as spec.rs's num_params / flops_per_image / 2."""
    params = macs = 0
    for l in layers:
        cin = l["in_shape"][0]
        if l["op"] == "conv2d":
            k, (f, h, w) = l["kernel"], l["out_shape"]
            params += f * cin * k * k + f * l["bias"]
            macs += f * h * w * cin * k * k
        elif l["op"] == "conv_transpose2d":
            k, f, (_, h, w) = l["kernel"], l["filters"], l["in_shape"]
            params += cin * f * k * k + f * l["bias"]
            macs += h * w * cin * f * k * k
        elif l["op"] == "dense":
            params += cin * l["units"] + l["units"] * l["bias"]
            macs += cin * l["units"]
    return params, macs


def make_batch(model, batch, seed=42):
    """One constant in-memory batch (NCHW float32): target images, masks (1 = hole, one 28x28 box each,
    the tutorial's hole) and the network's image input (holes zeroed), like ../shared/bench/keras_seed_ae.py."""
    s, c = model.get("image_size", 128), model.get("channels", 3)
    rng = np.random.default_rng(seed)
    y = rng.random((batch, c, s, s), dtype=np.float32)
    m = np.zeros((batch, 1, s, s), np.float32)
    for i in range(batch):
        r, q = rng.integers(0, s - 28, size=2)
        m[i, :, r:r + 28, q:q + 28] = 1.0
    return y * (1.0 - m), m, y


def time_steps(step, warmup, steps):
    """Runs `step` warmup + steps times; returns the timed steps' durations (seconds)."""
    ts = []
    for _ in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    return ts[warmup:]


def result(framework, cfg, batch, threads, ts, loss, **extra):
    """Prints the RESULT line that benches/train_tables.py reads: img/s from the median step (as the seed's
    Keras bench) and from the mean (images over the timed steps' wall time, as facerecon-train's steady state)."""
    med = float(np.median(ts))
    print("RESULT " + json.dumps({
        "framework": framework, "model": cfg["name"], "batch": batch, "threads": threads, "steps": len(ts),
        "step_ms_median": med * 1e3, "img_per_s": batch / med, "img_per_s_mean": batch * len(ts) / sum(ts),
        "loss": float(loss), **extra}), flush=True)


if __name__ == "__main__":
    cfg = load(sys.argv[1] if len(sys.argv) > 1 else "configs/unet.yaml")
    layers = resolve(cfg["model"])
    for l in layers:
        print(f"{l['name']:10s} {l['op']:17s} {str(l['inputs']):22s} {str(l['in_shape']):16s} -> {l['out_shape']}")
    p, m = counts(layers)
    print(f"{cfg['name']}: {p:,} parameters, {m / 1e6:.2f} M multiply-adds ({2 * m / 1e6:.1f} MFLOP) per image")
