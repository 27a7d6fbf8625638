#!/usr/bin/env python3
"""Check an exported facerecon ONNX model with the official tools.

    python3 scripts/check_onnx.py exported/seed.onnx [--reference ref.npz] [--tolerance 1e-4]

Runs onnx.checker.check_model(full_check=True) (schema + shape inference), prints the model's
metadata, and runs it once through onnxruntime. With --reference (a .npz holding `image`, `mask` and
the expected `reconstruction`/`inpainted`, or a .npy holding the expected `reconstruction` for the
inputs stored beside it as <name>.image.npy / <name>.mask.npy) it compares the outputs and fails
if max |diff| exceeds the tolerance. Needs: pip install onnx onnxruntime numpy.
"""
import argparse
import pathlib
import sys

import numpy as np
import onnx
import onnxruntime as ort


def load_reference(path: pathlib.Path):
    """Returns (inputs, expected outputs) from a .npz or a .npy reference."""
    if path.suffix == ".npz":
        z = np.load(path)
        inputs = {"image": z["image"], "mask": z["mask"]}
        expected = {k: z[k] for k in ("reconstruction", "inpainted") if k in z}
        return inputs, expected
    stem = path.with_suffix("")
    inputs = {
        "image": np.load(f"{stem}.image.npy"),
        "mask": np.load(f"{stem}.mask.npy"),
    }
    return inputs, {"reconstruction": np.load(path)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=pathlib.Path)
    ap.add_argument("--reference", type=pathlib.Path, help=".npz (image, mask, outputs) or .npy reference")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    # full_check runs strict shape inference over the whole graph, not only the schema checks.
    onnx.checker.check_model(str(args.model), full_check=True)
    model = onnx.load(str(args.model))
    print(f"OK: {args.model} passes onnx.checker full_check "
          f"(ir_version {model.ir_version}, opset {model.opset_import[0].version}, "
          f"producer {model.producer_name} {model.producer_version})")
    for p in model.metadata_props:
        value = p.value if len(p.value) <= 120 else p.value[:117].replace("\n", " ") + "..."
        print(f"  {p.key} = {value}")

    meta = {p.key: p.value for p in model.metadata_props}
    size = int(meta.get("facerecon.image_size", "128"))
    channels = int(meta.get("facerecon.channels", "3"))
    sess = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    if args.reference:
        inputs, expected = load_reference(args.reference)
    else:
        rng = np.random.default_rng(0)
        mask = np.zeros((2, 1, size, size), np.float32)
        mask[:, :, size // 4: size // 2, size // 4: size // 2] = 1.0
        image = rng.random((2, channels, size, size), dtype=np.float32) * (1.0 - mask)
        inputs, expected = {"image": image, "mask": mask}, {}
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, inputs)))
    for name, out in outputs.items():
        print(f"  onnxruntime {ort.__version__}: {name} {list(out.shape)} range [{out.min():.4f}, {out.max():.4f}]")
    # The contract: known pixels are kept exactly.
    known = np.broadcast_to(inputs["mask"], inputs["image"].shape) == 0
    if not np.array_equal(outputs["inpainted"][known], inputs["image"][known]):
        print("FAIL: inpainted changes known pixels", file=sys.stderr)
        return 1
    worst = 0.0
    for name, want in expected.items():
        diff = float(np.abs(outputs[name] - want).max())
        worst = max(worst, diff)
        print(f"  {name}: max |onnxruntime - reference| = {diff:.3e}")
    if worst > args.tolerance:
        print(f"FAIL: difference {worst:.3e} > {args.tolerance:.0e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
