#!/usr/bin/env python3
"""Classical inpainting baselines scored on the very same holes as `facerecon-infer --eval`.

    facerecon-infer --model M.onnx --eval --holes box28 --save-masks /tmp/masks IMAGES...
    python3 benches/telea_eval.py --masks /tmp/masks [--methods telea,biharmonic,fsr,mean] [--out DIR] IMAGES...

Each image is fitted to the mask size like facerecon does (centre square crop, bicubic/Catmull-Rom resize),
its hole (mask >= 128) is zeroed and filled by each method, the known pixels are put back (composited), and
the result is scored with the metrics of ../shared/DESIGN.md: psnr_full, psnr_hole, ssim (Gaussian 11x11,
sigma 1.5, K1 0.01, K2 0.03, mean over RGB), l1_hole (x100), and the sharpness ratio of `--eval` (luma gradient
energy inside the hole, result / original, pooled over the set: benches/facejudge.py). --out DIR writes
DIR/<method>/<stem>.png triptychs (corrupted | result | original, facerecon's layout) for benches/identity_eval.py.
Methods (--methods, default all, in this order):

    telea       OpenCV Telea, cv2.inpaint(img, hole, 3, cv2.INPAINT_TELEA)
    biharmonic  skimage.restoration.inpaint_biharmonic(img, hole, channel_axis=-1)
    fsr         frequency-selective reconstruction, cv2.xphoto.inpaint(img, 1 - hole, out, INPAINT_FSR_FAST)
                (row fsr_fast; ~7 img/s, by far the slowest)
    mean        the mean colour of the hole's one-pixel border ring (row border_mean)

Prints a markdown table (one row per method; img/s = images per second of the fill alone, on one thread) and
RESULT json lines on stderr. Needs numpy, pillow, scikit-image and opencv-contrib-python-headless (cv2.xphoto;
not together with opencv-python-headless, they clash): scripts/bench-venv.sh installs them.
"""
import os
for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as reported
    os.environ.setdefault(v, "1")
import argparse, json, sys, time
import numpy as np
from PIL import Image
import cv2
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facejudge  # noqa: E402
from skimage.metrics import structural_similarity
from skimage.restoration import inpaint_biharmonic

ALIASES = {"telea": "telea", "biharmonic": "biharmonic", "fsr": "fsr_fast", "fsr_fast": "fsr_fast",
           "mean": "border_mean", "border_mean": "border_mean"}
p = argparse.ArgumentParser()
p.add_argument("--masks", required=True, help="directory of <stem>.png masks written by --save-masks")
p.add_argument("--methods", default="telea,biharmonic,fsr,mean",
               help="comma-separated: telea, biharmonic, fsr, mean (default: all)")
p.add_argument("--out", help="write <method>/<stem>.png triptychs here")
p.add_argument("images", nargs="+")
a = p.parse_args()
methods = []
for m in a.methods.split(","):
    m = m.strip()
    if m not in ALIASES:
        p.error(f"unknown method {m!r} (telea, biharmonic, fsr, mean)")
    if ALIASES[m] not in methods:
        methods.append(ALIASES[m])
cv2.setNumThreads(1)


def fit(img, size):
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((size, size), Image.BICUBIC)


def metrics(res, orig, hole):
    res, orig = res.astype(np.float64) / 255, orig.astype(np.float64) / 255
    d2 = (res - orig) ** 2
    psnr = lambda mse: 100.0 if mse == 0 else min(100.0, 10 * np.log10(1 / mse))
    hmask = hole[..., None].repeat(3, axis=2)
    ssim = structural_similarity(res, orig, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0, channel_axis=2)
    return dict(psnr_full=psnr(d2.mean()), psnr_hole=psnr(d2[hmask].mean()), ssim=ssim,
                l1_hole=100 * np.abs(res - orig)[hmask].mean())


def fill(method, corrupted, mask):
    """corrupted: HxWx3 uint8 with the hole zeroed; mask: HxW bool (True = hole). Returns HxWx3 uint8."""
    if method == "telea":
        return cv2.inpaint(corrupted, mask.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    if method == "biharmonic":
        out = inpaint_biharmonic(corrupted, mask, channel_axis=-1)  # float in [0, 1]
        return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    if method == "fsr_fast":
        out = np.zeros_like(corrupted)
        cv2.xphoto.inpaint(corrupted, (1 - mask).astype(np.uint8), out, cv2.xphoto.INPAINT_FSR_FAST)
        return out
    if method == "border_mean":
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
        out = corrupted.copy()
        out[mask] = corrupted[ring].mean(axis=0).round().astype(np.uint8)
        return out
    raise ValueError(method)


if a.out:
    for m in methods:
        os.makedirs(os.path.join(a.out, m), exist_ok=True)
rows = {m: [] for m in methods}
energy = {m: [] for m in methods}
secs = {m: 0.0 for m in methods}
for path in a.images:
    stem = os.path.splitext(os.path.basename(path))[0]
    mpath = os.path.join(a.masks, stem + ".png")
    if not os.path.exists(mpath):
        print(f"skip {path}: no mask {mpath}", file=sys.stderr)
        continue
    mask = np.array(Image.open(mpath).convert("L")) >= 128
    orig = np.array(fit(Image.open(path).convert("RGB"), mask.shape[0]))
    corrupted = orig.copy()
    corrupted[mask] = 0
    for m in methods:
        t = time.perf_counter()
        res = fill(m, corrupted, mask)
        secs[m] += time.perf_counter() - t
        res[~mask] = orig[~mask]
        rows[m].append(metrics(res, orig, mask))
        energy[m].append(facejudge.sharpness(res, orig, mask)[1:])
        if a.out:
            facejudge.write_triptych(os.path.join(a.out, m, stem + ".png"), corrupted, res, orig)

print("| method | images | psnr_hole | psnr_full | ssim | l1_hole | sharpness | img/s |")
print("|---|---|---|---|---|---|---|---|")
for name, rs in rows.items():
    if not rs:
        continue
    m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
    m["sharpness"] = facejudge.pooled(energy[name])
    ips = len(rs) / secs[name] if secs[name] > 0 else float("inf")
    print(f"| {name} | {len(rs)} | {m['psnr_hole']:.2f} | {m['psnr_full']:.2f} | {m['ssim']:.4f} | {m['l1_hole']:.2f}"
          f" | {m['sharpness']:.3f} | {ips:.1f} |")
    print("RESULT " + json.dumps({"method": name, "images": len(rs), **m, "img_per_s": ips}), file=sys.stderr)
