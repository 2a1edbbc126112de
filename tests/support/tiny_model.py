"""A tiny ONNX graph with the TinyGLASS output contract, built with onnx.helper (no torch).

score = max over a 4x4 grid of per-cell mean absolute input, so it is deterministic and
depends on the image, which is all the runner and record tests need.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from support.extras import need


def write_tiny_onnx(path: Path, size: int = 16) -> Path:
    onnx = need("export", "onnx")
    TensorProto, helper = onnx.TensorProto, onnx.helper

    cell = size // 4
    nodes = [
        helper.make_node("Abs", ["image"], ["absx"]),
        helper.make_node("ReduceMean", ["absx", "axes"], ["gray"], keepdims=1),
        helper.make_node("AveragePool", ["gray"], ["patch_scores"], kernel_shape=[cell, cell], strides=[cell, cell]),
        helper.make_node("ReduceMax", ["patch_scores"], ["score"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("patch_scores", TensorProto.FLOAT, [1, 1, 4, 4])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def write_mvtec_tree(root: Path, category: str = "widget", good: int = 4, bad: int = 4, size: int = 32) -> Path:
    """A minimal MVTec-layout category; defective images are brighter inside their mask."""
    rng = np.random.default_rng(0)
    base = root / category
    for split, kind, count in (("train", "good", good), ("test", "good", good), ("test", "dent", bad)):
        folder = base / split / kind
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.integers(90, 110, size=(size, size, 3), dtype=np.uint8)
            if kind != "good":
                mask = np.zeros((size, size), dtype=np.uint8)
                mask[4:12, 4:12] = 255
                img[mask > 0] = 240
                gt = base / "ground_truth" / kind
                gt.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(gt / f"{i:03d}_mask.png")
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root
