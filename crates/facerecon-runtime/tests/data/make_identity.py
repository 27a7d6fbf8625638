#!/usr/bin/env python3
"""Regenerate the tiny ONNX fixtures used by the facerecon-runtime and facerecon-infer tests.

    python3 -m venv /tmp/venv-rt && /tmp/venv-rt/bin/pip install onnx numpy
    /tmp/venv-rt/bin/python crates/facerecon-runtime/tests/data/make_identity.py

Files written next to this script:

- identity.onnx  the model-file contract of DESIGN.md at 32x32, with a trivial "network":
                 reconstruction = 0.5 * image + [0.1, 0.3, 0.5] (per RGB channel),
                 inpainted = mask * reconstruction + (1 - mask) * image.
                 Holes arrive zeroed, so every hole pixel is reconstructed as exactly
                 (0.1, 0.3, 0.5) -> RGB8 (26, 77, 128): tests can check channel order and
                 where the holes went. Batch dimension symbolic, metadata_props filled.
- nometa.onnx    the same graph without metadata_props and with a fixed batch of 2: the
                 runtime must fall back to the input shape and pad partial batches.
- wrong_io.onnx  a valid ONNX model whose input is called `x`: the runtime must reject it.
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 32
BIAS = [0.1, 0.3, 0.5]


def contract_graph(batch):
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, SIZE, SIZE])
    rec = helper.make_tensor_value_info("reconstruction", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])
    inp = helper.make_tensor_value_info("inpainted", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])
    inits = [
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(BIAS, dtype=np.float32).reshape(1, 3, 1, 1), "bias"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ]
    nodes = [
        helper.make_node("Mul", ["image", "half"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["reconstruction"]),
        helper.make_node("Mul", ["mask", "reconstruction"], ["filled"]),
        helper.make_node("Sub", ["one", "mask"], ["known"]),
        helper.make_node("Mul", ["known", "image"], ["kept"]),
        helper.make_node("Add", ["filled", "kept"], ["inpainted"]),
    ]
    return helper.make_graph(nodes, "identity_like", [image, mask], [rec, inp], inits)


def save(model, name):
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, os.path.join(HERE, name))


def main():
    opset = [helper.make_opsetid("", 17)]
    model = helper.make_model(contract_graph("batch"), opset_imports=opset, producer_name="make_identity.py")
    helper.set_model_props(model, {
        "facerecon.image_size": str(SIZE),
        "facerecon.channels": "3",
        "facerecon.mask_channel": "false",
        "facerecon.mask_convention": "1=hole,0=known",
        "facerecon.producer_version": "test-fixture",
        "facerecon.name": "identity",
        "facerecon.metrics": json.dumps({"psnr_full": 1.0, "psnr_hole": 2.0, "ssim": 0.5, "l1_hole": 3.0}),
        "facerecon.opset": "17",
    })
    save(model, "identity.onnx")

    save(helper.make_model(contract_graph(2), opset_imports=opset), "nometa.onnx")

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "wrong_io", [x], [y])
    save(helper.make_model(g, opset_imports=opset), "wrong_io.onnx")


if __name__ == "__main__":
    main()
