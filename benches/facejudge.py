#!/usr/bin/env python3
"""Shared pieces of the face judge (scripts/judge.sh), in numpy + Pillow only (no OpenCV, no dlib), so the
tests can run them with the small test venv (scripts/py-venv.sh):

    facejudge.py sharpness --masks MASK_DIR TRIPTYCH_DIR     # JSON: pooled and per-image sharpness (+ energies)
    facejudge.py loose --out DIR [--fill 0.8] [--size 128] IMAGES...   # the looser-crop set

Triptychs: what `facerecon-infer --eval --out DIR` writes per image (and `benches/telea_eval.py --out` for the
classical fills): corrupted | result (composited) | original, tiles of the model size side by side with a
2-pixel white gap, named <stem>.png like the `--save-masks` masks (255 = hole).

Sharpness ratio (the same definition as facerecon_imaging::metrics::sharpness, which `--eval` reports):
gradient energy = sum over every pair of horizontally or vertically adjacent pixels that are BOTH hole pixels
of the squared difference of their luma Y = 0.299 R + 0.587 G + 0.114 B (values / 255); the pairs that straddle
the hole's border are left out, so a flat fill scores 0 and the original 1. Per image: energy(result) /
energy(original); a set: summed energies of the results / summed energies of the originals (the per-image ratios
weighted by the originals' energies, so a hole over a flat cheek cannot swing the mean).

Looser crop: each image is centre-cropped to a square of side s (UTKFace: 200), padded by reflection to side
s + 2 round(s (1 / fill - 1) / 2) (fill 0.8: 200 -> 250, 25 px a side) so the original frame fills `fill` of the
new frame's width, then resized to `size` with Pillow's bicubic filter. On UTKFace's tight crops the face's jaw
line (dlib's 68-point landmarks 0-16) spans 87 % of the frame width on average, so fill 0.8 makes the face fill
~70 % of the frame (measured: benches/identity_eval.py's face_width; docs/quality/identity.md). Reflection rather than edge
replication: the padding keeps the photo's own texture, noise and colours (what a looser real crop shows around a
face is hair, neck, background, not constant streaks), and a streak-filled band would be trivially easy for the
diffusion fills (Telea, biharmonic) that continue isophotes, flattering them wherever a hole falls on it. The
price: the reflected bands are the frame's outer 25 px, so where UTKFace's crop cuts close under the mouth the
bottom band holds a mirrored chin (and lip edge) below the real one; the same for every method, and dlib's face
box (the largest detection) stays on the real face.
Deterministic: no randomness, PNG output; <stem>.png sorts like the inputs, so the seeded holes of
`facerecon-infer --eval` (drawn per index of the sorted list) are the same boxes as on the normal set.
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

LUMA = np.array([0.299, 0.587, 0.114])
GAP = 2  # facerecon_imaging::grid::GAP


def luma(img):
    """HxWx3 uint8 -> HxW float64 luma in [0, 1] (BT.601 weights)."""
    return img.astype(np.float64) @ LUMA / 255.0


def hole_gradient_energy(img, hole):
    """img: HxWx3 uint8, hole: HxW bool. Sum of squared luma differences over adjacent hole-hole pairs."""
    y = luma(img)
    dx = (y[:, 1:] - y[:, :-1]) ** 2 * (hole[:, 1:] & hole[:, :-1])
    dy = (y[1:, :] - y[:-1, :]) ** 2 * (hole[1:, :] & hole[:-1, :])
    return float(dx.sum() + dy.sum())


def sharpness(result, original, hole):
    """(ratio, energy of result, energy of original); ratio NaN when the original has no energy in the hole."""
    e, e0 = hole_gradient_energy(result, hole), hole_gradient_energy(original, hole)
    return (e / e0 if e0 > 0 else float("nan")), e, e0


def pooled(energies):
    """Set sharpness from (energy, energy_original) pairs: sum / sum (NaN when the originals have none)."""
    e = sum(p[0] for p in energies)
    e0 = sum(p[1] for p in energies)
    return e / e0 if e0 > 0 else float("nan")


def read_mask(path):
    return np.asarray(Image.open(path).convert("L")) >= 128


def read_triptych(path):
    """-> (corrupted, result, original), each SxSx3 uint8, from a facerecon triptych."""
    a = np.asarray(Image.open(path).convert("RGB"))
    s = a.shape[0]
    if a.shape[1] != 3 * s + 2 * GAP:
        raise ValueError(f"{path}: {a.shape[1]}x{s} is not a triptych of {s}x{s} tiles")
    return tuple(a[:, k * (s + GAP):k * (s + GAP) + s].copy() for k in range(3))


def write_triptych(path, corrupted, result, original):
    s = original.shape[0]
    out = np.full((s, 3 * s + 2 * GAP, 3), 255, np.uint8)
    for k, tile in enumerate((corrupted, result, original)):
        out[:, k * (s + GAP):k * (s + GAP) + s] = tile
    Image.fromarray(out).save(path)


def pair_names(masks_dir, tri_dir, limit=None):
    """The names of the masks that have a triptych, sorted (the first `limit`)."""
    names = sorted(n for n in os.listdir(masks_dir) if n.endswith(".png"))
    return [n for n in names if os.path.exists(os.path.join(tri_dir, n))][:limit]


def read_pair(masks_dir, tri_dir, name):
    """-> (hole, composited result, original) of one image."""
    hole = read_mask(os.path.join(masks_dir, name))
    _, result, original = read_triptych(os.path.join(tri_dir, name))
    if hole.shape != original.shape[:2]:
        raise ValueError(f"{name}: mask {hole.shape} vs image {original.shape[:2]}")
    # Composite (a triptych's result already is; a raw network output would not be).
    return hole, np.where(hole[..., None], result, original).astype(np.uint8), original


def triptych_pairs(masks_dir, tri_dir, limit=None):
    """(name, mask, result, original) for every mask that has a triptych, in sorted order."""
    for n in pair_names(masks_dir, tri_dir, limit):
        yield (n, *read_pair(masks_dir, tri_dir, n))


def loose_crop(img, fill=0.8, size=128):
    """PIL RGB image -> the looser-framed size x size PIL image (module docs)."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    sq = np.asarray(img.crop((left, top, left + s, top + s)))
    pad = int(round(s * (1.0 / fill - 1.0) / 2.0))
    padded = np.pad(sq, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    return Image.fromarray(padded).resize((size, size), Image.BICUBIC)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("sharpness", help="sharpness ratios of a directory of triptychs")
    sp.add_argument("--masks", required=True)
    sp.add_argument("--limit", type=int)
    sp.add_argument("triptychs")
    lp = sub.add_parser("loose", help="write the looser-crop set")
    lp.add_argument("--out", required=True)
    lp.add_argument("--fill", type=float, default=0.8)
    lp.add_argument("--size", type=int, default=128)
    lp.add_argument("images", nargs="+")
    a = p.parse_args(argv)
    if a.cmd == "sharpness":
        files, energies = {}, []
        for n, hole, result, original in triptych_pairs(a.masks, a.triptychs, a.limit):
            r, e, e0 = sharpness(result, original, hole)
            files[n] = {"sharpness": None if np.isnan(r) else r, "grad_energy_hole": e, "grad_energy_hole_original": e0}
            energies.append((e, e0))
        s = pooled(energies)
        print(json.dumps({"images": len(files), "sharpness": None if np.isnan(s) else s, "files": files}))
    else:
        if not 0 < a.fill <= 1:
            p.error("--fill must be in (0, 1]")
        os.makedirs(a.out, exist_ok=True)
        seen = set()
        for path in a.images:
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem in seen:
                sys.exit(f"two inputs share the name {stem}.png")
            seen.add(stem)
            loose_crop(Image.open(path).convert("RGB"), a.fill, a.size).save(os.path.join(a.out, stem + ".png"))
        print(f"{len(seen)} images -> {a.out} (fill {a.fill}, {a.size}x{a.size})", file=sys.stderr)


if __name__ == "__main__":
    main()
