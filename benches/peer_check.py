"""Checks that the Python peers build facerecon's network: same parameters, multiply-adds and forward pass.

Usage: python benches/peer_check.py --config configs/unet.yaml --checkpoint RUN_DIR --onnx RUN.onnx [--tol 1e-4]

  RUN_DIR  a facerecon-train run of that config (its model.safetensors holds our trainer's weights);
  RUN.onnx facerecon-export of that run (the exporter has checked it against candle's forward pass).

For the PyTorch (benches/torch_peer.py) and Keras (benches/keras_peer.py, --exact 1 and 0) networks:
  * parameters: the framework's own count vs our checkpoint's tensors (and vs peer_spec.counts);
  * multiply-adds per image: the framework's own counter (torch.utils.flop_counter; TensorFlow's profiler on
    the frozen forward graph) / 2 vs peer_spec.counts (spec.rs's flops_per_image / 2); Keras --exact 1's
    profiler count is reported but not compared (it counts the cropped pixels of `valid` transposed convs);
  * forward pass: our weights loaded into the peer, 4 faces with holes, max |peer - ONNX Runtime| on
    `reconstruction` (exact layout only: Keras' own `same` shifts pixels, see keras_peer.py).
Prints one RESULT line per peer and exits 1 when a count differs or a difference exceeds --tol.
"""
import argparse
import json
import os
import struct

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"

import numpy as np  # noqa: E402

import peer_spec  # noqa: E402


def read_safetensors(path):
    """{name: float32 array} from a safetensors file (8-byte header length, JSON header, raw data)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", (k, v["dtype"])
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], np.float32).reshape(v["shape"])
    return out


def torch_peer(cfg, weights, x, m):
    """(params, MACs per image, forward output NCHW) of the PyTorch peer with our weights."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    import torch_peer as tp
    net, _ = tp.build(cfg)
    params = sum(t.numel() for t in net.parameters())
    with torch.no_grad():
        for name, t in net.mods.named_parameters():  # "e1.weight", ... as facerecon names them
            t.copy_(torch.from_numpy(weights[name].copy()))
        s, c = cfg["model"].get("image_size", 128), cfg["model"].get("channels", 3)
        with FlopCounterMode(display=False) as fc:
            net(torch.zeros(1, c, s, s), torch.zeros(1, 1, s, s))
        y = net(torch.from_numpy(x), torch.from_numpy(m)).numpy()
    return params, fc.get_total_flops() // 2, y


def keras_peer(cfg, weights, x, m, exact):
    """(params, MACs per image from TF's profiler, forward output NCHW) of the Keras peer with our weights."""
    import tensorflow as tf
    import keras_peer as kp
    model = kp.build(cfg, exact=exact)
    for layer in model.layers:
        if layer.name + ".weight" not in weights:
            continue
        w = weights[layer.name + ".weight"]
        # facerecon: conv [out, in, k, k], transposed conv [in, out, k, k], dense [out, in];
        # Keras: conv (k, k, in, out), transposed conv (k, k, out, in), dense (in, out).
        w = w.T if w.ndim == 2 else w.transpose(2, 3, 1, 0)
        layer.set_weights([w] + ([weights[layer.name + ".bias"]] if layer.name + ".bias" in weights else []))
    s, c = cfg["model"].get("image_size", 128), cfg["model"].get("channels", 3)
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    f = tf.function(lambda a, b: model([a, b], training=False)).get_concrete_function(
        tf.TensorSpec([1, s, s, c], tf.float32), tf.TensorSpec([1, s, s, 1], tf.float32))
    g = convert_variables_to_constants_v2(f).graph
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    prof = tf.compat.v1.profiler.profile(graph=g, run_meta=tf.compat.v1.RunMetadata(), cmd="scope", options=opts)

    # The profiler counts 2 FLOPs per multiply-add of the convolutions and matmuls (leaf scopes
    # .../convolution, .../conv_transpose, .../MatMul), plus bias adds and activations: keep the former.
    # A transposed conv is counted by its output positions: exact (`valid` + crop) counts the cropped row
    # and column too, Keras' `same` counts exactly facerecon's multiply-adds.
    def macs(node):
        own = node.float_ops if node.name.rsplit("/", 1)[-1] in ("convolution", "conv_transpose", "MatMul") else 0
        return own + sum(macs(c) for c in node.children)
    y = model.predict_on_batch([kp.nhwc(x), kp.nhwc(m)]).transpose(0, 3, 1, 2)
    return int(model.count_params()), macs(prof) // 2, y


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/unet.yaml")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--onnx", required=True)
    p.add_argument("--tol", type=float, default=1e-4)
    a = p.parse_args()
    cfg = peer_spec.load(a.config)
    spec_params, spec_macs = peer_spec.counts(peer_spec.resolve(cfg["model"]))
    weights = read_safetensors(os.path.join(a.checkpoint, "model.safetensors"))
    ours = sum(w.size for w in weights.values())
    x, m, _ = peer_spec.make_batch(cfg["model"], 4, seed=7)
    import onnxruntime as ort
    sess = ort.InferenceSession(a.onnx, providers=["CPUExecutionProvider"])
    ref = sess.run(["reconstruction"], {"image": x, "mask": m})[0]
    ok = ours == spec_params
    peers = [("pytorch", lambda: torch_peer(cfg, weights, x, m)),
             ("keras", lambda: keras_peer(cfg, weights, x, m, True)),
             ("keras-same", lambda: keras_peer(cfg, weights, x, m, False))]
    for name, run in peers:
        params, macs, y = run()
        diff = float(np.abs(y - ref).max())
        # Keras exact: its profiler counts the transposed convs' cropped pixels (see keras_peer); Keras' own
        # `same` shifts pixels by one, so only its counts are compared.
        good = params == ours and (macs == spec_macs or name == "keras") and (name == "keras-same" or diff <= a.tol)
        ok &= good
        print("RESULT " + json.dumps({
            "check": name, "model": cfg["name"], "params": params, "params_ours": ours, "macs": macs,
            "macs_spec": spec_macs, "max_abs_diff_vs_onnx": diff, "ok": good}), flush=True)
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
