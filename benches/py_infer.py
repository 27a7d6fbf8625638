#!/usr/bin/env python3
"""The straightforward Python way of doing what `facerecon-infer` does on a folder, as a baseline.

For every image of INPUT_DIR (sorted): decode with Pillow, build the mask from a fixed --box
(original-image pixels, the same rule `facerecon-infer --box` uses), resize the whole image to the
model size (bilinear), zero the holes, run ONNX Runtime in batches of --batch, resize the
reconstruction back to the original size (bicubic) and replace only the hole pixels, then save a
PNG per image into OUT_DIR (Pillow's default PNG settings).

    python benches/py_infer.py exported/demo.onnx faces/ out/ --batch 64 --threads 2 --box 78,78,44,44

Prints one line `RESULT {"tool": "python", "batch": N, "images": n, "img_per_s": x, "seconds": s}`;
the time runs from creating the ONNX Runtime session to the last PNG written (imports excluded).
With --bench-session R it only times R bare `session.run` calls at the batch size on random input
(after 2 warm-up runs) and prints `RESULT {"tool": "python-session", ...}`.
Needs numpy, Pillow, onnxruntime.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def parse_box(text):
    x, y, w, h = (int(v) for v in text.split(","))
    return x, y, w, h


def bench_session(args):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    size = sess.get_inputs()[0].shape[2]
    rng = np.random.default_rng(0)
    mask = np.zeros((args.batch, 1, size, size), dtype=np.float32)
    side = max(1, round(28 * size / 128))
    lo = (size - side) // 2
    mask[:, :, lo:lo + side, lo:lo + side] = 1.0
    image = rng.random((args.batch, 3, size, size), dtype=np.float32) * (1.0 - mask)
    feed = {"image": image, "mask": mask}
    for _ in range(2):
        sess.run(None, feed)
    start = time.perf_counter()
    for _ in range(args.bench_session):
        sess.run(None, feed)
    per_batch = (time.perf_counter() - start) / args.bench_session
    print("RESULT " + json.dumps({
        "tool": "python-session", "batch": args.batch, "runs": args.bench_session,
        "ms_per_batch": per_batch * 1e3, "img_per_s": args.batch / per_batch,
    }))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("input_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    ap.add_argument("--box", type=parse_box, default=(0, 0, 1, 1), help="X,Y,W,H hole in original-image pixels")
    ap.add_argument("--bench-session", type=int, metavar="R", help="only time R bare session runs")
    args = ap.parse_args()
    if args.bench_session:
        return bench_session(args)

    files = sorted(
        os.path.join(root, f)
        for root, _, names in os.walk(args.input_dir)
        for f in names
        if f.lower().endswith(EXTENSIONS)
    )
    os.makedirs(args.out_dir, exist_ok=True)

    start = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    size = sess.get_inputs()[0].shape[2]
    bx, by, bw, bh = args.box

    done = 0
    for first in range(0, len(files), args.batch):
        names = files[first:first + args.batch]
        originals, masks, images, small_masks = [], [], [], []
        for path in names:
            img = Image.open(path).convert("RGB")
            w, h = img.size
            mask = np.zeros((h, w), dtype=bool)
            mask[by:by + bh, bx:bx + bw] = True
            small = np.asarray(img.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0
            small_mask = np.asarray(
                Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
            ) >= 128
            small[small_mask] = 0.0
            originals.append(np.asarray(img))
            masks.append(mask)
            images.append(small.transpose(2, 0, 1))
            small_masks.append(small_mask[None].astype(np.float32))
        rec = sess.run(
            ["reconstruction"],
            {"image": np.stack(images), "mask": np.stack(small_masks)},
        )[0]
        for path, original, mask, r in zip(names, originals, masks, rec):
            h, w = mask.shape
            r8 = (np.clip(r.transpose(1, 2, 0), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            big = np.asarray(Image.fromarray(r8).resize((w, h), Image.BICUBIC))
            out = original.copy()
            out[mask] = big[mask]
            stem = os.path.splitext(os.path.basename(path))[0]
            Image.fromarray(out).save(os.path.join(args.out_dir, stem + ".png"))
            done += 1
    seconds = time.perf_counter() - start
    print("RESULT " + json.dumps({
        "tool": "python", "batch": args.batch, "images": done,
        "img_per_s": done / seconds if seconds > 0 else 0.0, "seconds": seconds,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
