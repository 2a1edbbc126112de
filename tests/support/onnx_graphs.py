"""Small ONNX graphs with the harness's output contract, for adapter tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench.devices.base import ExportedModel
from bench.util import file_sha256


def conv_onnx(path: Path, size: int = 16) -> Path:
    """The tiny model's output contract after a 1x1 convolution, so there are float weights to convert."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(3, 3, 1, 1)).astype(np.float32), "w")
    cell = size // 4
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["conv"], name="conv"),
        helper.make_node("Abs", ["conv"], ["absx"], name="abs"),
        helper.make_node("ReduceMean", ["absx", "axes"], ["gray"], keepdims=1, name="mean"),
        helper.make_node("AveragePool", ["gray"], ["patch_scores"], kernel_shape=[cell, cell], strides=[cell, cell],
                         name="pool"),
        helper.make_node("ReduceMax", ["patch_scores"], ["score"], keepdims=0, name="max"),
    ]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("patch_scores", TensorProto.FLOAT, [1, 1, 4, 4])],
        initializer=[weight, helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return path


def exported(path: Path) -> ExportedModel:
    return ExportedModel(path, file_sha256(path), "image", (1, 3, 16, 16), ("score", "patch_scores"))
