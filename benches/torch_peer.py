"""PyTorch peer: a facerecon config's network (configs/unet.yaml, configs/seed.yaml) trained in eager PyTorch.

Usage (a Python with torch, numpy, pyyaml: scripts/bench-venv.sh makes one):
  python benches/torch_peer.py --config configs/unet.yaml --batches 16,32 [--steps 8] [--warmup 3] [--threads 2]

The layers come from the config through benches/peer_spec.py, so they are facerecon's exactly: NCHW, the
same symmetric paddings and output_padding (PyTorch's Conv2d / ConvTranspose2d take them as facerecon does),
mask channel, concatenations, residual add, the config's loss (MSE or L1 weighted hole_weight in the hole)
and Adam (lr, betas, eps). Each batch size trains on one constant in-memory batch (no data pipeline), like
../shared/bench/keras_seed_ae.py; one RESULT line per batch size (see peer_spec.result).
"""
import argparse

import numpy as np
import torch
from torch import nn

import peer_spec


class Net(nn.Module):
    """The resolved layer list as a module; forward(image, mask) returns the reconstruction (NCHW)."""

    def __init__(self, layers, mask_channel):
        super().__init__()
        self.layers, self.mask_channel = layers, mask_channel
        self.mods = nn.ModuleDict()
        for l in layers:
            cin = l["in_shape"][0]
            if l["op"] == "conv2d":
                self.mods[l["name"]] = nn.Conv2d(cin, l["filters"], l["kernel"], l["stride"], l["pad"],
                                                 l["dilation"], bias=l["bias"])
            elif l["op"] == "conv_transpose2d":
                self.mods[l["name"]] = nn.ConvTranspose2d(cin, l["filters"], l["kernel"], l["stride"], l["pad"],
                                                          l["out_pad"], bias=l["bias"])
            elif l["op"] == "dense":
                self.mods[l["name"]] = nn.Linear(cin, l["units"], bias=l["bias"])

    def forward(self, image, mask):
        v = {"image": image, "mask": mask, "input": torch.cat([image, mask], 1) if self.mask_channel else image}
        for l in self.layers:
            x, op = v[l["inputs"][0]], l["op"]
            if op in ("conv2d", "conv_transpose2d", "dense"):
                y = self.mods[l["name"]](x)
            elif op == "flatten":
                y = x.flatten(1)  # C-major, as facerecon's flatten
            elif op == "reshape":
                y = x.reshape(x.shape[0], *l["shape"])
            elif op == "leaky_relu":
                y = nn.functional.leaky_relu(x, l["slope"])
            elif op == "relu":
                y = torch.relu(x)
            elif op == "sigmoid":
                y = torch.sigmoid(x)
            elif op == "tanh":
                y = torch.tanh(x)
            elif op == "upsample":
                y = nn.functional.interpolate(x, scale_factor=l["scale"], mode="nearest")
            elif op == "concat":
                y = torch.cat([v[n] for n in l["inputs"]], 1)
            else:  # add
                y = v[l["inputs"][0]]
                for n in l["inputs"][1:]:
                    y = y + v[n]
            v[l["name"]] = y
        return y


def loss_fn(cfg):
    """facerecon's loss: per-pixel MSE or L1, weighted hole_weight in the hole and 1 outside, mean over all."""
    hw, l1 = cfg["loss"]["hole_weight"], cfg["loss"]["kind"] == "l1"

    def f(rec, target, mask):
        d = rec - target
        per = d.abs() if l1 else d * d
        return per.mean() if hw == 1.0 else (per * (1.0 + (hw - 1.0) * mask)).mean()
    return f


def build(cfg):
    """(network, Adam optimiser) for the config."""
    net = Net(peer_spec.resolve(cfg["model"]), bool(cfg["model"].get("mask_channel", False)))
    o = cfg["optimizer"]
    return net, torch.optim.Adam(net.parameters(), lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="configs/unet.yaml")
    p.add_argument("--batches", default="16,32")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--channels-last", type=int, default=0, help="1: NHWC memory format (oneDNN's native one)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(a.threads)
    cfg = peer_spec.load(a.config)
    loss_f = loss_fn(cfg)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    for b in [int(s) for s in a.batches.split(",")]:
        torch.manual_seed(0)
        net, opt = build(cfg)
        net = net.to(memory_format=fmt)
        x, m, y = (torch.from_numpy(t).contiguous(memory_format=fmt) for t in peer_spec.make_batch(cfg["model"], b))
        last = [0.0]

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_f(net(x, m), y, m)
            loss.backward()
            opt.step()
            last[0] = loss.item()
        ts = peer_spec.time_steps(step, a.warmup, a.steps)
        params = sum(t.numel() for t in net.parameters())
        peer_spec.result("pytorch", cfg, b, a.threads, ts, last[0], params=params, torch=torch.__version__,
                         channels_last=a.channels_last)


if __name__ == "__main__":
    main()
