"""Packs training faces for a GPU call (benches/gpu-edge.sh): the device tool carries at most 64 MiB, so the
faces travel as 128x128 JPEGs (q90, 4:4:4; centre square crop + bicubic resize, as the trainer's own fit_square
+ Catmull-Rom does) in one .tgz, and never one of the held-out faces.

Usage: python benches/gpu_edge_data.py DATA_DIR HELD_OUT_LIST OUT.tgz [--bytes 32e6] [--seed 2026]
(needs Pillow; HELD_OUT_LIST = the trainer's val_files.txt of a run on DATA_DIR, e.g. from
`facerecon-train --config exported/unet.yaml --data DATA_DIR --out /tmp/valrun --max-steps 1`).
The session of 2026-11-30 packed 6,700 faces of ../shared/data/utkface in 32.2 MB this way.
"""
import argparse
import glob
import io
import os
import random
import tarfile

from PIL import Image

p = argparse.ArgumentParser()
p.add_argument("data")
p.add_argument("held_out")
p.add_argument("out")
p.add_argument("--bytes", type=float, default=32e6, help="stop when the JPEGs reach this many bytes")
p.add_argument("--seed", type=int, default=2026)
a = p.parse_args()

held = {os.path.basename(l.strip()) for l in open(a.held_out) if l.strip()}
files = sorted(f for f in glob.glob(os.path.join(a.data, "*.jpg")) if os.path.basename(f) not in held)
random.Random(a.seed).shuffle(files)
total = 0
with tarfile.open(a.out, "w:gz") as tar:
    for n, f in enumerate(files):
        im = Image.open(f).convert("RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((128, 128), Image.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=90, subsampling=0)
        info = tarfile.TarInfo("./" + os.path.basename(f))
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
        total += info.size
        if total > a.bytes:
            break
print(f"{n + 1} faces, {total} bytes of JPEG -> {a.out} ({os.path.getsize(a.out)} bytes)")
