#!/usr/bin/env python3
"""Identity preservation, in-hole landmark error and sharpness of inpainted faces, judged by dlib's pretrained
face models (adapted from ../shared/bench/identity_eval.py to facerecon's eval layout; same metrics). PSNR rewards
blur; a face recognizer and a landmark predictor notice an erased eye.

    identity_eval.py --masks MASK_DIR [--limit N] [--jobs J] [--json FILE] NAME=TRIPTYCH_DIR...

MASK_DIR: the masks of `facerecon-infer --eval --save-masks` (<stem>.png, 255 = hole). Each TRIPTYCH_DIR holds
<stem>.png triptychs (corrupted | result | original, see benches/facejudge.py) as written by
`facerecon-infer --eval --out` or `benches/telea_eval.py --out`; NAME labels its row. Only masks that have a
triptych are scored (in sorted order, the first N with --limit).

Per image (as the reference): original and composited result upscaled 128 -> 256 (Pillow Lanczos); the face box is
dlib's HOG detection on the ORIGINAL (the largest; none: the frame less 8 px, counted in faces_detected), used
for both images; the 5-point alignment and the 128-d ResNet descriptor (one jitter) are computed on each image
itself.
  id_dist         mean Euclidean distance between the original's and the result's descriptors (dlib: < 0.6 is the
                  same person; lower is better)
  id_0.4, id_0.6  fraction of faces with id_dist >= 0.4 / >= 0.6
  lm_err          mean displacement of the 68 landmarks (predicted on each image in the original's face box) that
                  lie inside the hole dilated by 2 px (5x5), in % of the original's inter-ocular distance (eye
                  centres); images whose hole holds no landmark are left out (lm_n says how many count)
  sharpness       benches/facejudge.py's ratio (luma gradient energy inside the hole, result / original, pooled)
  face_width      (framing, not quality) mean width of the original's jaw line (68-point landmarks 0-16) as a
                  fraction of the frame width
The original's detection, descriptor and landmarks are computed once per distinct original image and reused
across the NAME=DIR arguments (the models' triptychs share their originals). --jobs J splits the images over J
worker processes (image i to worker i mod J, in every run); the figures do not depend on J.

Prints a markdown table, and with --json a list of one object per NAME. Needs numpy, Pillow, OpenCV (the 5x5
dilation) and dlib with its models: PyPI `dlib-bin` (prebuilt dlib) and `face-recognition-models` (the model
files, ~100 MB; found on disk, not imported: its __init__ needs pkg_resources). scripts/bench-venv.sh installs them.
"""
import os

for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(v, "1")
import argparse
import hashlib
import importlib.util
import json
import sys
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import facejudge  # noqa: E402


def model_dir():
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("identity_eval: the PyPI package face-recognition-models is missing (scripts/bench-venv.sh)")
    return os.path.join(list(spec.submodule_search_locations)[0], "models")


class Judge:
    def __init__(self):
        import cv2
        import dlib

        self.cv2, self.dlib = cv2, dlib
        d = model_dir()
        self.det = dlib.get_frontal_face_detector()
        self.sp5 = dlib.shape_predictor(os.path.join(d, "shape_predictor_5_face_landmarks.dat"))
        self.sp68 = dlib.shape_predictor(os.path.join(d, "shape_predictor_68_face_landmarks.dat"))
        self.rec = dlib.face_recognition_model_v1(os.path.join(d, "dlib_face_recognition_resnet_model_v1.dat"))
        self.cache = {}

    @staticmethod
    def up(a):
        s = 2 * a.shape[0]
        return np.asarray(Image.fromarray(a).resize((s, s), Image.LANCZOS))

    def desc(self, img, box):
        return np.array(self.rec.compute_face_descriptor(img, self.sp5(img, box), 1))

    def lms(self, img, box):
        return np.array([[p.x, p.y] for p in self.sp68(img, box).parts()], float)

    def original(self, gt):
        """Detection box, found?, descriptor and 68 landmarks of an original (cached by its pixels)."""
        key = hashlib.sha1(gt.tobytes()).hexdigest()
        if key not in self.cache:
            G = self.up(gt)
            dets = self.det(G, 0)
            if dets:
                box = max(dets, key=lambda r: r.area())
            else:
                s = G.shape[0]
                box = self.dlib.rectangle(8, 8, s - 8, s - 8)
            self.cache[key] = (box, bool(dets), self.desc(G, box), self.lms(G, box))
        return self.cache[key]

    def score(self, hole, result, gt):
        """-> (id_dist, lm_err or None, face found, face width / frame width)."""
        box, found, dg, lg = self.original(gt)
        O = self.up(result)
        dist = float(np.linalg.norm(dg - self.desc(O, box)))
        lo = self.lms(O, box)
        io = np.linalg.norm(lg[36:42].mean(0) - lg[42:48].mean(0))
        dil = self.cv2.dilate(hole.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        s = hole.shape[0]
        inside = [i for i, (x, y) in enumerate(lg)
                  if 0 <= int(y / 2) < s and 0 <= int(x / 2) < s and dil[int(y / 2), int(x / 2)]]
        lm = None
        if inside and io > 1:
            lm = float(np.mean(np.linalg.norm(lg[inside] - lo[inside], axis=1)) / io * 100)
        return dist, lm, found, float(np.ptp(lg[0:17, 0]) / (2 * s))


def score_share(masks, runs, limit, k, jobs):
    """Per-image records of every run for the images k, k + jobs, k + 2 jobs, ... (one worker's share; the same
    images in every run, so each original is analysed once per worker)."""
    judge = Judge()
    out = {}
    for name, d in runs:
        recs = []
        names = facejudge.pair_names(masks, d, limit)
        for i in range(k, len(names), jobs):
            hole, result, original = facejudge.read_pair(masks, d, names[i])
            dist, lm, found, width = judge.score(hole, result, original)
            _, e, e0 = facejudge.sharpness(result, original, hole)
            recs.append((i, dist, lm, found, width, e, e0))
        out[name] = recs
    return out


def summarise(name, recs):
    recs = sorted(recs)
    d = np.array([r[1] for r in recs])
    lm = [r[2] for r in recs if r[2] is not None]
    s = facejudge.pooled([(r[5], r[6]) for r in recs])
    return {"method": name, "n": len(d), "id_dist": float(d.mean()), "id_0.4": float((d >= 0.4).mean()),
            "id_0.6": float((d >= 0.6).mean()), "lm_err": float(np.mean(lm)) if lm else None, "lm_n": len(lm),
            "sharpness": None if np.isnan(s) else s, "faces_detected": int(sum(r[3] for r in recs)),
            "face_width": float(np.mean([r[4] for r in recs]))}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--masks", required=True, help="directory of --save-masks masks")
    p.add_argument("--limit", type=int, help="score only the first N masks (sorted)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (each loads dlib's models, ~0.2 GB)")
    p.add_argument("--json", help="write the results here (a list of objects)")
    p.add_argument("runs", nargs="+", metavar="NAME=TRIPTYCH_DIR")
    a = p.parse_args()
    runs = []
    for r in a.runs:
        name, sep, d = r.partition("=")
        if not sep or not name or not os.path.isdir(d):
            p.error(f"{r!r} is not NAME=DIRECTORY")
        if not facejudge.pair_names(a.masks, d, a.limit):
            p.error(f"no triptych in {d} matches a mask in {a.masks}")
        runs.append((name, d))
    t = time.perf_counter()
    jobs = max(1, a.jobs)
    if jobs == 1:
        shares = [score_share(a.masks, runs, a.limit, 0, 1)]
    else:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            shares = pool.starmap(score_share, [(a.masks, runs, a.limit, k, jobs) for k in range(jobs)])
    out = []
    print("| method | images | id_dist | id >= 0.4 | id >= 0.6 | lm_err (% iod) | sharpness | faces detected |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in runs:
        r = summarise(name, [rec for share in shares for rec in share[name]])
        out.append(r)
        lm = "-" if r["lm_err"] is None else f"{r['lm_err']:.2f}"
        sh = "-" if r["sharpness"] is None else f"{r['sharpness']:.3f}"
        print(f"| {name} | {r['n']} | {r['id_dist']:.4f} | {100 * r['id_0.4']:.1f} % | {100 * r['id_0.6']:.1f} % "
              f"| {lm} | {sh} | {r['faces_detected']} |")
    print(f"identity_eval: {sum(r['n'] for r in out)} results in {time.perf_counter() - t:.0f} s ({jobs} jobs)",
          file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
