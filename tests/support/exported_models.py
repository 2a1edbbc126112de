"""Small exported anomaly models built with onnx.helper (no torch), shaped like the graphs users bring.

The map is the per-pixel channel mean of the input, the score its maximum, so brighter defects score
higher. ``normalise_inside`` puts ImageNet's mean/std into the graph, as anomalib 2.x exports do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from support.extras import need

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def anomaly_onnx(path: Path, size: int = 32, normalise_inside: bool = False, constant_map: bool = False,
                 dynamic: bool = False, inputs: int = 1, resize: bool = False) -> Path:
    """A tiny anomaly model: the map is the channel mean, the score its maximum; ``resize`` routes the map
    through an identity Resize (an op QNN's GPU backend rejects)."""
    onnx = need("export", "onnx")
    TensorProto, helper, numpy_helper = onnx.TensorProto, onnx.helper, onnx.numpy_helper
    nodes, init = [], [numpy_helper.from_array(np.array([1], np.int64), "axes")]
    x = "input"
    if normalise_inside:
        init += [numpy_helper.from_array(np.array(MEAN, np.float32).reshape(1, 3, 1, 1), "mean"),
                 numpy_helper.from_array(np.array(STD, np.float32).reshape(1, 3, 1, 1), "std")]
        nodes += [helper.make_node("Sub", [x, "mean"], ["centred"]), helper.make_node("Div", ["centred", "std"], ["x"])]
        x = "x"
    nodes.append(helper.make_node("ReduceMean", [x, "axes"], ["gray"], keepdims=1))
    if constant_map:
        init.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
        nodes.append(helper.make_node("Mul", ["gray", "zero"], ["anomaly_map"]))
    elif resize:
        init.append(numpy_helper.from_array(np.ones(4, np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["gray", "", "scales"], ["anomaly_map"], mode="linear"))
    else:
        nodes.append(helper.make_node("Identity", ["gray"], ["anomaly_map"]))
    nodes.append(helper.make_node("ReduceMax", ["anomaly_map"], ["pred_score"], keepdims=0))
    shape = ["batch", 3, size, size] if dynamic else [1, 3, size, size]
    graph_inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)]
    graph_inputs += [helper.make_tensor_value_info(f"extra{i}", TensorProto.FLOAT, [1]) for i in range(1, inputs)]
    graph = helper.make_graph(
        nodes, "exported", graph_inputs,
        [helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def exported_card(path: Path, model: Path, size: int = 32, normalise: bool = False, input: dict | None = None,
                  **outputs: object) -> Path:
    """A card for ``anomaly_onnx``'s graph; ``normalise`` has the card normalise with ImageNet's mean/std."""
    card = {
        "name": "byo", "family": "onnx", "model": str(model),
        "input": input or {"resize": size, "crop": size, "mean": MEAN if normalise else None,
                           "std": STD if normalise else None},
        "outputs": {"score": "pred_score", "map": "anomaly_map", **outputs},
    }
    path.write_text(yaml.safe_dump(card, sort_keys=False))
    return path
