#!/usr/bin/env python3
"""Classical inpainting baselines scored on the very same holes as `facerecon-infer --eval`.

    facerecon-infer --model M.onnx --eval --holes box28 --save-masks /tmp/masks IMAGES...
    python3 benches/telea_eval.py --masks /tmp/masks IMAGES...

Each image is fitted to the mask size like facerecon does (centre square crop, bicubic/Catmull-Rom resize),
its hole (mask >= 128) is filled by OpenCV Telea (cv2.inpaint, radius 3) and by the mean colour of the hole's
border, and scored with the metrics of ../shared/DESIGN.md: psnr_full, psnr_hole, ssim (Gaussian 11x11,
sigma 1.5, K1 0.01, K2 0.03, mean over RGB), l1_hole (x100). Prints a markdown table and RESULT json lines.
Needs numpy, pillow, opencv-python-headless, scikit-image.
"""
import argparse, json, os, sys
import numpy as np
from PIL import Image
import cv2
from skimage.metrics import structural_similarity

p = argparse.ArgumentParser()
p.add_argument("--masks", required=True, help="directory of <stem>.png masks written by --save-masks")
p.add_argument("images", nargs="+")
a = p.parse_args()


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


rows = {"telea": [], "border_mean": []}
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
    telea = cv2.inpaint(corrupted, mask.astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    telea[~mask] = orig[~mask]
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
    mean = orig.copy()
    mean[mask] = orig[ring].mean(axis=0).round().astype(np.uint8)
    rows["telea"].append(metrics(telea, orig, mask))
    rows["border_mean"].append(metrics(mean, orig, mask))

print("| method | images | psnr_hole | psnr_full | ssim | l1_hole |")
print("|---|---|---|---|---|---|")
for name, rs in rows.items():
    m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
    print(f"| {name} | {len(rs)} | {m['psnr_hole']:.2f} | {m['psnr_full']:.2f} | {m['ssim']:.4f} | {m['l1_hole']:.2f} |")
    print("RESULT " + json.dumps({"method": name, "images": len(rs), **m}), file=sys.stderr)
