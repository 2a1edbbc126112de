"""Recognise an anomalib 2.x ONNX export and state the card the harness needs to run it (docs/anomalib-exports.md).

anomalib 2.7.0 stores no metadata with an ONNX export (no metadata_props, no file beside it), so the graph is the
only evidence: ``AnomalibModule.to_onnx`` names the input ``input`` and the outputs after the non-None fields of
``InferenceBatch`` in field order (models/components/base/export_mixin/mixin.py ExportMixin.to_onnx;
data/dataclasses/torch/base.py InferenceBatch). The pre-processor (resize, ImageNet mean/std) and the
post-processor (min-max normalisation around the threshold, clamped to [0, 1]) are both inside the graph
(models/components/base/anomalib_module.py AnomalibModule.forward), so the image goes in as [0, 1] RGB floats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BadInput
from bench.models.exported import graph_constants, load_graph

# anomalib 2.7.0 data/dataclasses/torch/base.py InferenceBatch, in field order
_FIELDS = ("pred_score", "pred_label", "anomaly_map", "pred_mask")
_PASS_THROUGH = {"Identity", "Reshape", "Squeeze", "Unsqueeze", "Cast"}


def recognise(onnx_path: Path) -> dict[str, Any] | None:
    """The card data for an anomalib 2.x ONNX export, or None when the graph is not one."""
    model = _load(Path(onnx_path))
    graph = model.graph
    initialised = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialised]
    outputs = [value.name for value in graph.output]
    if model.producer_name != "pytorch" or len(inputs) != 1 or "pred_score" not in outputs:
        return None
    if tuple(outputs) != tuple(name for name in _FIELDS if name in outputs):
        return None
    shape = _dims(inputs[0])
    if len(shape) != 4 or shape[1] != 3 or inputs[0].type.tensor_type.elem_type != 1:  # FLOAT
        return None
    constants = _constants(graph)
    size = [shape[2], shape[3]] if all(isinstance(d, int) for d in shape[2:]) else _in_graph_resize(graph, constants)
    normalised, words = _score_normalisation(graph, constants)
    return {
        "name": Path(onnx_path).stem,
        "family": "onnx",
        "source_format": "anomalib-2",
        "input": {"resize": size, "crop": size, "mean": None, "std": None, "layout": "NCHW",
                  "dtype": "float32", "channel_order": "RGB", "value_range": [0, 1]},
        "outputs": {"score": "pred_score", "map": "anomaly_map" if "anomaly_map" in outputs else None,
                    "score_range": [0.0, 1.0] if normalised else None},
        "normalisation": words,
    }


def _load(path: Path) -> Any:
    if not path.is_file():
        raise BadInput(f"{path}: no such ONNX file")
    return load_graph(path)  # without the weights (model.onnx.data): not needed here


def _dims(value: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Small initializers and Constant nodes by name (the folded thresholds, flags and sizes)."""
    return graph_constants(graph, max_elements=16)


def _in_graph_resize(graph: Any, constants: dict[str, np.ndarray]) -> list[int] | None:
    """A dynamic-size export's working size: the first Resize's constant target (the pre-processor's Resize).

    Feeding that size makes the in-graph resize an identity; None where the size is not a constant.
    """
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 4:
            continue
        sizes = node.input[3]
        if sizes in constants:
            return [int(v) for v in constants[sizes].reshape(-1)[-2:]]
        concat = producer.get(sizes)
        if concat is not None and concat.op_type == "Concat" and concat.input[-1] in constants:
            tail = constants[concat.input[-1]].reshape(-1)
            if tail.size >= 2:
                return [int(v) for v in tail[-2:]]
        return None
    return None


def _score_normalisation(graph: Any, constants: dict[str, np.ndarray]) -> tuple[bool, str]:
    """Whether pred_score leaves the graph min-max normalised, following constant-condition Where nodes.

    anomalib 2.7.0 post_processing/post_processor.py PostProcessor._normalize returns
    ``where(has_range, clamp((x - threshold) / (max - min) + 0.5, 0, 1), x)``; the exporter folds ``has_range``,
    the threshold and the range to constants, so they are read back here.
    """
    producer = {out: node for node in graph.node for out in node.output}
    name = "pred_score"
    for _ in range(8):
        node = producer.get(name)
        if node is None:
            break
        if node.op_type in _PASS_THROUGH:
            name = node.input[0]
        elif node.op_type == "Where" and node.input[0] in constants:
            name = node.input[1] if bool(constants[node.input[0]].all()) else node.input[2]
        elif node.op_type == "Where" and node.input[2] in producer and producer[node.input[2]].op_type == "Clip":
            name = node.input[2]  # the degenerate-range guard around the clamp
        elif node.op_type == "Clip":
            low, high = (constants.get(part) for part in node.input[1:3])
            if low is not None and high is not None and float(low) == 0.0 and float(high) == 1.0:
                return True, _normalised_words(producer, constants, node)
            break
        else:
            break
    return False, ("none in the graph: pred_score is the model's raw score (the export's post-processor had no "
                   "min/max statistics or normalisation was disabled); no fixed range or threshold")


def _normalised_words(producer: dict[str, Any], constants: dict[str, np.ndarray], clip: Any) -> str:
    words = ("anomalib min-max normalisation inside the graph: score = clamp((raw - threshold) / (max - min) + 0.5, "
             "0, 1) with the threshold (F1-adaptive) and min/max from the validation set, so 0.5 is the decision "
             "threshold (pred_label = score > 1 - image_sensitivity, 0.5 by default); anomaly_map likewise with the "
             "pixel threshold and min/max")
    add = producer.get(clip.input[0])
    div = producer.get(add.input[0]) if add is not None and add.op_type == "Add" else None
    sub = producer.get(div.input[0]) if div is not None and div.op_type == "Div" else None
    if sub is not None and sub.op_type == "Sub" and sub.input[1] in constants and div.input[1] in constants:
        threshold, spread = float(constants[sub.input[1]]), float(constants[div.input[1]])
        words += f"; raw threshold {threshold:.6g}, raw range {spread:.6g}"
    return words
