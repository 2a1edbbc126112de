"""The IMX500's numerics for ``--emulate``: the very MCT INT8 model its converter receives, on the host.

``compile`` writes the MCTQ ONNX exactly as the IMX500 converter receives it (that file is the
artifact). Opening it converts the graph in memory (:func:`mctq_to_qdq`): each mct_quantizers
activation quantizer becomes a standard QuantizeLinear/DequantizeLinear pair and each weight
quantizer the INT8 weights behind a DequantizeLinear, so ONNX Runtime runs it natively (with its
QDQ fusions off: the pairs stay float simulation of MCT's rounding) instead of calling
mct_quantizers' NumPy ops through onnxruntime-extensions, about 1 s per image. ``compile`` also
runs both graphs on some representative images and records how far they agree.
The model takes RGB in [0, 1] (the normalisation is inside, as on the sensor); the runner's
normalised tensors are mapped back first.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.devices.base import Artifact, ExportedModel, InferenceResult, Session
from bench.devices.emulation.numerics import Numerics
from bench.devices.imx500.quant import CUSTOM_DOMAIN, Normalization, ort_session, quantize_exported, to_pixels
from bench.errors import BadInput
from bench.util import installed_version

DEFAULT_REPRESENTATIVE_IMAGES = 32
DEFAULT_AGREEMENT_IMAGES = 8
QDQ_NAME = "model_qdq.onnx"
# ONNX Runtime config key: no QDQ fusion (QLinearConv and friends) at any optimisation level
DISABLE_QDQ_FUSION = "session.disable_quant_qdq"

_ACTIVATIONS = ("ActivationPOTQuantizer", "ActivationSymmetricQuantizer")
_WEIGHTS = ("WeightsPOTQuantizer", "WeightsSymmetricQuantizer")


class MctInt8Numerics(Numerics):
    """MCT post-training quantization with the IMX500 TPC on ``emulation.representative_images`` images."""

    name = "int8_mct"
    extra = "imx500"

    def toolchain(self) -> dict[str, str]:
        return {"model-compression-toolkit": installed_version("model-compression-toolkit") or "not installed",
                "mct-quantizers": installed_version("mct-quantizers") or "not installed"}

    def quantization_images(self) -> int:
        return int(self.profile.emulation.get("representative_images", DEFAULT_REPRESENTATIVE_IMAGES))

    def agreement_images(self) -> int:
        return int(self.profile.emulation.get("agreement_images", DEFAULT_AGREEMENT_IMAGES))

    def resolved(self) -> dict[str, Any]:
        return {"numerics": self.name, "representative_images": self.quantization_images(),
                "engine": "qdq", "agreement_images": self.agreement_images()}

    def compile(self, exported: ExportedModel, workdir: Path) -> tuple[Path, dict[str, Any]]:
        report = quantize_exported(exported, workdir, self.quantization_images(), self.profile.name)
        details = {"quantization": report.to_json(), "normalization": report.normalization,
                   "mctq_onnx_sha256": report.onnx_sha256}
        import onnx

        converted, replaced = mctq_to_qdq(onnx.load(str(report.onnx_path)))
        digest = hashlib.sha256(converted.SerializeToString()).hexdigest()
        details["qdq"] = {"replaced_nodes": replaced, "sha256": digest,
                          "runtime": f"ONNX Runtime, basic optimisation, {DISABLE_QDQ_FUSION}=1"}
        count = min(self.agreement_images(), self.quantization_images())
        if count > 0 and exported.representative is not None:
            images = exported.representative(count)
            if report.normalization:
                images = [to_pixels(image, Normalization.from_json(report.normalization)) for image in images]
            mode = (exported.calibration or {}).get("mode")
            # train-synthetic alternates a normal image and the synthetic anomaly made from it
            labels = [i % 2 for i in range(len(images))] if mode == "train-synthetic" else None
            details["qdq"]["agreement"] = agreement(Path(report.onnx_path), images, labels, converted=converted)
        return Path(report.onnx_path), details

    def session_options(self) -> ort.SessionOptions:
        return qdq_session_options()

    def runnable(self, artifact: Artifact, workdir: Path) -> Artifact:
        """The artifact's MCTQ graph converted to standard Q/DQ, written under ``workdir``."""
        import onnx

        converted, _ = mctq_to_qdq(onnx.load(str(artifact.path)))
        target = workdir / QDQ_NAME
        target.write_bytes(converted.SerializeToString())
        return replace(artifact, path=target)

    def session(self, inner: Session, artifact: Artifact) -> Session:
        normalization = artifact.details.get("normalization")
        return PixelInputSession(inner, Normalization.from_json(normalization)) if normalization else inner


class PixelInputSession(Session):
    """Feeds a network that normalises inside: the runner's normalised tensor goes back to RGB in [0, 1]."""

    def __init__(self, inner: Session, normalization: Normalization) -> None:
        self.inner = inner
        self.normalization = normalization

    def infer(self, batch: np.ndarray) -> InferenceResult:
        return self.inner.infer(to_pixels(batch, self.normalization))

    def _close(self) -> None:
        self.inner.close()


def qdq_session_options(threads: int | None = None) -> ort.SessionOptions:
    """Options for a converted graph: basic optimisation and no QDQ fusion, so Q/DQ run as MCT's float rounding."""
    options = ort.SessionOptions()
    options.add_session_config_entry(DISABLE_QDQ_FUSION, "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def qdq_session(graph: Any, threads: int | None = None) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of an MCTQ graph (ModelProto) after :func:`mctq_to_qdq`."""
    converted, _ = mctq_to_qdq(graph)
    return ort.InferenceSession(converted.SerializeToString(), qdq_session_options(threads),
                                providers=["CPUExecutionProvider"])


def mctq_session(onnx_path: Path, threads: int | None = None) -> ort.InferenceSession:
    """The MCTQ graph as MCT runs it (mct_quantizers' ops through onnxruntime-extensions), basic optimisation."""
    return ort_session(onnx_path, threads, basic=True)


def agreement(onnx_path: Path, images: list[np.ndarray], labels: list[int] | None = None,
              threads: int | None = None, converted: Any = None) -> dict[str, Any]:
    """MCT's graph and its Q/DQ conversion (``converted``, made here if None) on the same images.

    The largest per-image difference of each output, and with ``labels`` (1: anomalous) the image AUROC
    of each: MCT's own graph is the reference the conversion must match."""
    import onnx

    from bench.metrics.accuracy import image_auroc

    reference = mctq_session(onnx_path, threads)
    if converted is None:
        converted, _ = mctq_to_qdq(onnx.load(str(onnx_path)))
    fast = ort.InferenceSession(converted.SerializeToString(), qdq_session_options(threads),
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in reference.get_outputs()]
    first = reference.get_inputs()[0].name
    diffs = {name: 0.0 for name in names}
    scores: dict[str, list[float]] = {"mctq": [], "qdq": []}
    for image in images:
        want = reference.run(names, {first: image})
        got = fast.run(names, {first: image})
        for name, a, b in zip(names, want, got, strict=True):
            diffs[name] = max(diffs[name], float(np.max(np.abs(a.astype(np.float64) - b))))
        scores["mctq"].append(float(np.ravel(want[0])[0]))
        scores["qdq"].append(float(np.ravel(got[0])[0]))
    result: dict[str, Any] = {"images": len(images), "source": "representative images",
                              "max_abs_difference": diffs, "score_output": names[0],
                              "identical_scores": sum(a == b for a, b in zip(scores["mctq"], scores["qdq"],
                                                                              strict=True))}
    if labels is not None and 0 < sum(labels) < len(labels):
        result["labels"] = "normal (0) and synthetic anomaly (1), alternating"
        result["image_auroc"] = {k: image_auroc(labels, v) for k, v in scores.items()}
    return result


def mctq_to_qdq(graph: Any) -> tuple[Any, dict[str, int]]:
    """An MCTQ ONNX graph with every mct_quantizers node replaced by standard ONNX ops of the same numerics.

    mct_quantizers 1.7.0 (``quantize_sym_activations_numpy``, ``quantize_sym_weights_numpy``) computes, in
    float32, ``round(clip(x, lo, hi) / scale) * scale`` with NumPy's half-to-even rounding: activations
    (POT and symmetric, per tensor) with ``scale = threshold / 2**(bits - signed)``, ``lo = -threshold``
    signed or 0 unsigned, ``hi = threshold - scale``; weights (POT and symmetric, signed, per tensor or
    per ``channel_axis``) with ``scale = threshold / 2**(bits - 1)``. QuantizeLinear (zero point 0, int8
    signed or uint8, half-to-even, saturating) followed by DequantizeLinear is the same function for 8
    bits, and a Clip between them narrows the integer range for fewer. Weights are quantized here once, by
    that formula, and stored as INT8 behind a DequantizeLinear. Returns the new graph and the count of
    replaced nodes by op type; a quantizer it does not know (uniform, LUT) is a one-line error.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(graph)
    g = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None:
                constants[node.output[0]] = numpy_helper.to_array(value.t)
    new_nodes: list[Any] = []
    new_inits: list[Any] = []
    replaced: dict[str, int] = {}
    for node in g.node:
        if node.domain != CUSTOM_DOMAIN:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        bits = int(attrs.get("num_bits", 0))
        if not 2 <= bits <= 8:
            raise BadInput(f"{node.op_type} '{node.name}': {bits}-bit quantization is not supported by the Q/DQ "
                           f"emulation (2 to 8 bits)")
        base = node.output[0]
        if node.op_type in _ACTIVATIONS:
            signed = bool(attrs.get("signed", 0))
            threshold = np.float32(attrs["threshold"])
            scale = np.float32(threshold / np.float32(2 ** (bits - signed)))
            zero = np.zeros((), np.int8 if signed else np.uint8)
            new_inits += [numpy_helper.from_array(np.asarray(scale, np.float32), f"{base}__scale"),
                          numpy_helper.from_array(zero, f"{base}__zero")]
            nodes = _qdq(node.input[0], base, bits, signed, new_inits)
        elif node.op_type in _WEIGHTS:
            weight, threshold = (constants.get(name) for name in node.input[:2])
            if weight is None or threshold is None:
                raise BadInput(f"{node.op_type} '{node.name}': its weight or threshold is not a constant")
            per_channel = bool(attrs.get("per_channel", 0))
            axis = int(attrs.get("channel_axis", 0)) % weight.ndim
            q, scale = quantize_weights(weight, threshold, bits, axis if per_channel else None)
            new_inits += [numpy_helper.from_array(q, f"{base}__int"),
                          numpy_helper.from_array(scale, f"{base}__scale"),
                          numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{base}__zero")]
            nodes = [helper.make_node("DequantizeLinear", [f"{base}__int", f"{base}__scale", f"{base}__zero"],
                                      [base], name=f"{node.name}__dq", **({"axis": axis} if per_channel else {}))]
        else:
            raise BadInput(f"mct_quantizers op {node.op_type} ('{node.name}') is not supported by the Q/DQ "
                           f"emulation (it converts {', '.join(_ACTIVATIONS + _WEIGHTS)})")
        new_nodes += nodes
        replaced[node.op_type] = replaced.get(node.op_type, 0) + 1
    used = {name for node in new_nodes for name in node.input} | {o.name for o in g.output}
    kept_nodes = [n for n in new_nodes if not (n.op_type == "Constant" and n.output[0] not in used)]
    kept_inits = [i for i in g.initializer if i.name in used]
    del g.node[:]
    g.node.extend(kept_nodes)
    del g.initializer[:]
    g.initializer.extend(kept_inits + new_inits)
    opsets = [o for o in model.opset_import if o.domain != CUSTOM_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    onnx.checker.check_model(model)
    return model, dict(sorted(replaced.items()))


def quantize_weights(weight: np.ndarray, threshold: np.ndarray, bits: int,
                     axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """INT8 weights and their float32 scale (per ``axis`` or one), as mct_quantizers' symmetric rule rounds them."""
    w = np.asarray(weight, np.float32)
    t = np.asarray(threshold, np.float32).reshape(-1)
    scale = t / np.float32(2 ** (bits - 1))
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = -1
    else:
        t, scale = t[:1], scale[:1]
    lo, hi, s = (np.reshape(v, shape) for v in (-t, t - scale, scale))
    clipped = np.where(w < lo, lo, np.where(w > hi, hi, w))
    q = np.round(clipped / s).astype(np.int8)
    return q, (scale if axis is not None else scale.reshape(()))


def _qdq(source: str, target: str, bits: int, signed: bool, inits: list[Any]) -> list[Any]:
    """QuantizeLinear, a Clip to ``bits`` where fewer than 8, and DequantizeLinear, from ``source`` to ``target``."""
    from onnx import helper, numpy_helper

    quantized, scale, zero = f"{target}__q", f"{target}__scale", f"{target}__zero"
    nodes = [helper.make_node("QuantizeLinear", [source, scale, zero], [quantized], name=f"{target}__quantize")]
    if bits < 8:
        dtype = np.int8 if signed else np.uint8
        lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        inits += [numpy_helper.from_array(np.asarray(lo, dtype), f"{target}__lo"),
                  numpy_helper.from_array(np.asarray(hi, dtype), f"{target}__hi")]
        nodes.append(helper.make_node("Clip", [quantized, f"{target}__lo", f"{target}__hi"], [f"{quantized}c"],
                                      name=f"{target}__clip"))
        quantized = f"{quantized}c"
    nodes.append(helper.make_node("DequantizeLinear", [quantized, scale, zero], [target], name=f"{target}__dq"))
    return nodes
