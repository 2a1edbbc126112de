"""Deployability lint: the exported ONNX graph checked against what each target toolchain accepts.

Why: a compile for the IMX500 (MCT + imxconv-pt), for TensorRT on the Jetson or for QNN on AI Hub
takes minutes to hours and fails late, often with a message that names neither the layer nor the
reason. Reading the graph takes milliseconds, so this runs first and names the op type, the node
and why, per target.

It is a conservative pre-check, not a verdict:

- ``error``: the graph uses something a source documents as rejected (see ``SOURCES``), or a fact
  observed in public deployment code (TinyGLASS on the IMX500, EdgeZSAD on QNN's GPU backend).
- ``warning``: the op is not in the known-supported list derived from the sources, or the target
  handles the property only with extra work (dynamic shapes on TensorRT). Unknown is not
  unsupported: the lists are only as complete as their sources. Sony publishes no ONNX op list for
  the IMX500 converter (the list below is MCT's IMX500 target-platform operator sets mapped to ONNX),
  and Qualcomm's per-backend table was only partly readable, so the QNN GPU list is curated.
  A warning means "confirm with the real toolchain", never "will fail".

A clean result does not promise a successful compile either: the checks are static (no value
ranges, no quantisation, no memory or latency limits).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx
import onnx.inliner
from onnx import numpy_helper

Severity = Literal["error", "warning"]

TARGETS: tuple[str, ...] = ("imx500", "tensorrt", "qnn_gpu")

INPUT = "input"
OPSET = "opset_import"
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass(frozen=True)
class Finding:
    """One reason a target may not accept the graph; ``node`` is the node (or input) name."""

    target: str
    severity: Severity
    op_type: str
    node: str
    message: str


@dataclass(frozen=True)
class Source:
    """Where a rule or an op list comes from, so a maintainer can re-read it and update."""

    what: str
    where: str
    date: str


SOURCES: dict[str, tuple[Source, ...]] = {
    "tensorrt": (
        Source(
            "Operator support matrix (Y = supported with restrictions, N = documented unsupported), "
            "opset range 9-20, Resize/pooling/TopK/LSTM/ScatterND/axes restrictions",
            "github.com/onnx/onnx-tensorrt docs/operators.md, tag release/10.1-GA "
            "(commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c)",
            "2024-06-17",
        ),
    ),
    "qnn_gpu": (
        Source(
            "ONNX converter op list and notes (ArgMax/ArgMin select_last_index, BatchNormalization training_mode)",
            "https://docs.qualcomm.com/bundle/publicresource/80-63442-10/topics/supported_onnx_ops.md",
            "stored copy read 2026-08 (page undated); only the first rows were readable",
        ),
        Source(
            "Per-backend op table (GPU column); the core CNN rows of QNN_GPU_SUPPORTED were curated from it",
            "https://docs.qualcomm.com/bundle/publicresource/80-63442-10/topics/SupportedOps.md",
            "stored copy read 2026-08 (page undated); truncated, rows not re-read one by one",
        ),
        Source(
            "GPU op support revision history: HardSigmoid 2.28, Softplus 2.32, GridSample 2.34, "
            "CumSum/GatherNd 2.38, ScatterND/ScatterElements/Sign; also 'Resize nearest/linear' in 2.28",
            "https://docs.qualcomm.com/bundle/publicresource/80-63442-10/topics/gpu_opdef_version_history.md",
            "last published 2026-08-06",
        ),
        Source(
            "Ops exercised on the QNN GPU backend (QnnGPUBackendTests): Conv, ConvTranspose, AveragePool, "
            "GlobalAveragePool, Cast, Clip, Flatten, Gemm, MatMul, Pad, Reshape, Expand",
            "github.com/onnxruntime/onnxruntime-qnn onnxruntime/test/providers/qnn/*_test.cc "
            "(commit cee6c0d91e583d43f5ecef6391e93c19b4042c0f)",
            "2026-03-13",
        ),
        Source(
            "Resize is rejected by QNN's GPU backend (the published EdgeZSAD work; bench/models/edgezsad.py)",
            "EdgeZSAD, arXiv 2606.16119; corroborated by github.com/microsoft/onnxruntime/issues/22549 "
            "(QNN SDK 2.22: 'Resize is not supported by QNN on GPU')",
            "2024-10-22 (issue); the revision history above claims GPU Resize since QNN 2.28: re-check on "
            "the QAIRT version AI Hub uses before relaxing the rule",
        ),
        Source(
            "AI Hub compile fails on DynamicQuantizeLinear: 'No translation registered for op type'",
            "github.com/microsoft/onnxruntime/issues/25334",
            "2025-07-09",
        ),
    ),
    "imx500": (
        Source(
            "IMX500 target platform capabilities: the operator sets MCT knows for the IMX500",
            "github.com/sony/model_optimization model_compression_toolkit/target_platform_capabilities/"
            "tpc_models/imx500_tpc/v1/tpc.py (2025-01-14), schema/v2.py OperatorSetNames (2025-05-15), "
            "targetplatform2framework/attach2pytorch.py (2025-05-15); snapshot commit fad922fe",
            "2025-06-30",
        ),
        Source(
            "The IMX500 converter rejects multi-index Gather (torch.nn.Unfold exports to it) and supports "
            "batch 1/None only (no flattening of patches into the batch dimension)",
            "github.com/ETH-PBL/TinyGLASS model.py (PatchMaker) and common.py "
            "(reduce_channels_keep_spatial), commit ea903065b22162b4049a2dd7bdbce2cc372f7f99",
            "2026-03-23",
        ),
    ),
}

# onnx-tensorrt docs/operators.md (10.1-GA): every row marked Y.
TENSORRT_SUPPORTED = frozenset({
    "Abs", "Acos", "Acosh", "Add", "And", "ArgMax", "ArgMin", "Asin", "Asinh", "Atan", "Atanh", "AveragePool",
    "BatchNormalization", "Cast", "CastLike", "Ceil", "Celu", "Clip", "Concat", "Constant", "ConstantOfShape",
    "Conv", "ConvTranspose", "Cos", "Cosh", "CumSum", "DeformConv", "DepthToSpace", "DequantizeLinear", "Div",
    "Dropout", "Einsum", "Elu", "Equal", "Erf", "Exp", "Expand", "EyeLike", "Flatten", "Floor", "GRU", "Gather",
    "GatherElements", "GatherND", "Gelu", "Gemm", "GlobalAveragePool", "GlobalLpPool", "GlobalMaxPool", "Greater",
    "GreaterOrEqual", "GridSample", "GroupNormalization", "HardSigmoid", "HardSwish", "Hardmax", "Identity", "If",
    "ImageScaler", "InstanceNormalization", "IsInf", "IsNaN", "LRN", "LSTM", "LayerNormalization", "LeakyRelu",
    "Less", "LessOrEqual", "Log", "LogSoftmax", "Loop", "LpNormalization", "LpPool", "MatMul", "Max", "MaxPool",
    "Mean", "MeanVarianceNormalization", "Min", "Mish", "Mod", "Mul", "Neg", "NonMaxSuppression", "NonZero", "Not",
    "OneHot", "Or", "PRelu", "Pad", "ParametricSoftplus", "Pow", "QuantizeLinear", "RNN", "RandomNormal",
    "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Range", "Reciprocal", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",
    "ReduceSumSquare", "Relu", "Reshape", "Resize", "ReverseSequence", "RoiAlign", "Round", "ScaledTanh", "Scan",
    "Scatter", "ScatterElements", "ScatterND", "Selu", "Shape", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Size",
    "Slice", "Softmax", "Softplus", "Softsign", "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Sum", "Tan",
    "Tanh", "ThresholdedRelu", "Tile", "TopK", "Transpose", "Trilu", "Unsqueeze", "Upsample", "Where", "Xor",
})

# onnx-tensorrt docs/operators.md (10.1-GA): every row marked N, i.e. documented rejections.
TENSORRT_UNSUPPORTED = frozenset({
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "BlackmanWindow",
    "CenterCropPad", "Col2Im", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det", "DynamicQuantizeLinear",
    "HammingWindow", "HannWindow", "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix",
    "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement", "OptionalHasElement", "QLinearConv",
    "QLinearMatMul", "RegexFullMatch", "STFT", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
    "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat",
    "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique",
})
TENSORRT_OPSET_RANGE = (9, 20)

QNN_GPU_SUPPORTED = frozenset({
    # Exercised on the GPU backend by onnxruntime-qnn's QnnGPUBackendTests.
    "AveragePool", "Cast", "Clip", "Conv", "ConvTranspose", "Expand", "Flatten", "Gemm", "GlobalAveragePool",
    "MatMul", "Pad", "Reshape",
    # Named in the GPU op support revision history.
    "CumSum", "GatherND", "GridSample", "HardSigmoid", "ScatterElements", "ScatterND", "Sign", "Softplus",
    # Core CNN rows of the converter table whose QNN op has GPU support in SupportedOps (curated).
    "Add", "BatchNormalization", "Concat", "Constant", "DepthToSpace", "Div", "Dropout", "Elu", "Exp", "Gather",
    "GlobalMaxPool", "HardSwish", "Identity", "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Max",
    "MaxPool", "Min", "Mul", "PRelu", "Pow", "ReduceMax", "ReduceMean", "Relu", "Sigmoid", "Slice", "Softmax",
    "SpaceToDepth", "Split", "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze",
})

QNN_GPU_REJECTED: dict[str, str] = {
    "Resize": "QNN's GPU backend rejects Resize (EdgeZSAD; onnxruntime#22549); align scales by pooling or a "
    "strided conv, or upsample on the host",
    "Upsample": "the QNN converter maps Upsample to Resize, which QNN's GPU backend rejects (EdgeZSAD); "
    "upsample on the host",
    "DynamicQuantizeLinear": "the QNN converter has no translation for it (AI Hub compile fails, onnxruntime#25334)",
}

# MCT's IMX500 operator sets (schema OperatorSetNames, attach2pytorch layers) as the ONNX ops they export to,
# plus ReduceMean/GlobalAveragePool (channel and spatial means, deployed on the IMX500 by TinyGLASS and by
# MCT's MobileNetV2 IMX500 tutorial) and graph plumbing the converter folds (Constant, Identity).
IMX500_SUPPORTED = frozenset({
    "Conv", "ConvTranspose", "Gemm", "MatMul",  # CONV, DEPTHWISE_CONV, CONV_TRANSPOSE, FULLY_CONNECTED
    "Concat", "Split", "Gather", "Slice", "Expand",  # CONCATENATE, STACK, UNSTACK, SPLIT_CHUNK, GATHER, GET_ITEM
    "BatchNormalization", "LpNormalization",  # BATCH_NORM, L2NORM
    "Relu", "Clip", "LeakyRelu", "Elu", "PRelu", "Sigmoid", "Tanh", "Gelu", "HardSigmoid", "HardSwish",
    "Softmax", "LogSoftmax", "Exp", "Sin", "Cos",
    "Add", "Sub", "Mul", "Div", "Min", "Max",
    "Flatten", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Dropout", "Shape",
    "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean",
    "Resize", "Pad", "Equal", "ArgMax", "TopK", "Cast",
    "Constant", "Identity",
})

KNOWN_SUPPORTED: dict[str, frozenset[str]] = {
    "imx500": IMX500_SUPPORTED,
    "tensorrt": TENSORRT_SUPPORTED,
    "qnn_gpu": QNN_GPU_SUPPORTED,
}


@dataclass(frozen=True)
class _Const:
    shape: tuple[int, ...]
    values: tuple


@dataclass
class _Context:
    """The model once, pre-digested for every rule: real inputs, constants, nodes with labels, shapes."""

    model: onnx.ModelProto
    inputs: list[onnx.ValueInfoProto]
    consts: dict[str, _Const]
    nodes: list[tuple[str, onnx.NodeProto]]
    _shapes: dict[str, list[int | str | None]] | None = field(default=None, repr=False)

    def const(self, name: str) -> _Const | None:
        return self.consts.get(name) if name else None

    def shape(self, name: str) -> list[int | str | None] | None:
        """Static shape information from ONNX shape inference (None where inference gives nothing)."""
        if self._shapes is None:
            self._shapes = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError):
                inferred = self.model
            graph = inferred.graph
            for info in (*graph.input, *graph.value_info, *graph.output):
                dims = _dims(info)
                if dims is not None:
                    self._shapes[info.name] = dims
        return self._shapes.get(name)


def lint(model: onnx.ModelProto | str | Path, targets: Iterable[str] | None = None) -> dict[str, list[Finding]]:
    """Findings per target (an empty list means no known obstacle); unknown targets raise ValueError."""
    chosen = _targets(targets)
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    ctx = _context(proto)
    return {target: _RULES[target](ctx) for target in chosen}


def format_findings(result: dict[str, list[Finding]]) -> str:
    """One line per finding, then one "ok" line per clean target."""
    lines = [f"{f.target}: {f.severity}: {f.op_type} '{f.node}': {f.message}"
             for findings in result.values() for f in findings]
    lines += [f"{target}: ok" for target, findings in result.items() if not findings]
    return "\n".join(lines)


def _targets(targets: Iterable[str] | None) -> list[str]:
    if targets is None:
        return list(TARGETS)
    requested = [targets] if isinstance(targets, str) else list(targets)
    unknown = [t for t in requested if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(map(repr, unknown))}; valid targets: {', '.join(TARGETS)}")
    return list(dict.fromkeys(requested))


def _context(model: onnx.ModelProto) -> _Context:
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    consts: dict[str, _Const] = {}
    nodes = list(_walk(graph, ""))
    for init in _all_initializers(graph):
        consts[init.name] = _tensor_const(init)
    for _, node in nodes:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
            value = _constant_node_value(node)
            if value is not None:
                consts[node.output[0]] = value
    inputs = [info for info in graph.input if info.name not in initializer_names]
    return _Context(model=model, inputs=inputs, consts=consts, nodes=nodes)


def _walk(graph: onnx.GraphProto, prefix: str) -> Iterator[tuple[str, onnx.NodeProto]]:
    """Every node with a readable label, subgraphs (If/Loop/Scan bodies) included."""
    for index, node in enumerate(graph.node):
        label = prefix + (node.name or f"{node.op_type}#{index}")
        yield label, node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g, f"{label}/{attr.name}/")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for i, sub in enumerate(attr.graphs):
                    yield from _walk(sub, f"{label}/{attr.name}[{i}]/")


def _all_initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subgraphs:
                yield from _all_initializers(sub)


def _tensor_const(tensor: onnx.TensorProto) -> _Const:
    array = numpy_helper.to_array(tensor)
    return _Const(shape=tuple(array.shape), values=tuple(array.ravel().tolist()))


def _constant_node_value(node: onnx.NodeProto) -> _Const | None:
    for attr in node.attribute:
        if attr.name == "value":
            return _tensor_const(attr.t)
        if attr.name in ("value_float", "value_int"):
            return _Const(shape=(), values=(onnx.helper.get_attribute_value(attr),))
        if attr.name in ("value_floats", "value_ints"):
            values = tuple(onnx.helper.get_attribute_value(attr))
            return _Const(shape=(len(values),), values=values)
    return None


def _dims(info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """Dims of a tensor value: an int if static, the symbol if named, None if unknown; None for no shape."""
    kind = info.type
    if not kind.HasField("tensor_type") or not kind.tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in kind.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def _shape_text(dims: list[int | str | None] | None) -> str:
    if dims is None:
        return "unknown"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _attr(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def _default_opset(model: onnx.ModelProto) -> int | None:
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS:
            return opset.version
    return None


# ---------------------------------------------------------------------------------------------------------------
# Shared rules
# ---------------------------------------------------------------------------------------------------------------


def _dynamic_inputs(ctx: _Context) -> Iterator[tuple[onnx.ValueInfoProto, list[int | str | None] | None]]:
    for info in ctx.inputs:
        dims = _dims(info)
        if dims is None or not all(isinstance(d, int) for d in dims):
            yield info, dims


def _op_membership(target: str, label: str, node: onnx.NodeProto, rejected: dict[str, str]) -> list[Finding]:
    """Custom domains and unlisted ops are warnings; documented rejections are errors."""
    if node.domain not in DEFAULT_DOMAINS:
        return [Finding(target, "warning", node.op_type, label,
                        f"op from domain '{node.domain}' is not in the known-supported list for {target}; "
                        "it needs a plugin or custom op on the target, or a rewrite to standard ONNX ops")]
    if node.op_type in rejected:
        return [Finding(target, "error", node.op_type, label, rejected[node.op_type])]
    if node.op_type not in KNOWN_SUPPORTED[target]:
        return [Finding(target, "warning", node.op_type, label,
                        f"not in the known-supported list for {target} (see SOURCES); confirm with the toolchain")]
    return []


def _run_node_rules(
    ctx: _Context, target: str, rejected: dict[str, str], rules: dict[str, Callable[..., list[Finding]]]
) -> list[Finding]:
    findings: list[Finding] = []
    for label, node in ctx.nodes:
        findings += _op_membership(target, label, node, rejected)
        rule = rules.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        if rule is not None:
            findings += rule(ctx, label, node)
    return findings


# ---------------------------------------------------------------------------------------------------------------
# IMX500 (MCT + imxconv-pt)
# ---------------------------------------------------------------------------------------------------------------


def _imx500(ctx: _Context) -> list[Finding]:
    findings: list[Finding] = []
    for info, dims in _dynamic_inputs(ctx):
        findings.append(Finding("imx500", "error", INPUT, info.name,
                                f"input shape {_shape_text(dims)} is not static; export with fixed shapes "
                                "for MCT and the IMX500 converter"))
    for info in ctx.inputs:
        dims = _dims(info)
        if dims and isinstance(dims[0], int) and dims[0] > 1:
            findings.append(Finding("imx500", "error", INPUT, info.name,
                                    f"batch size {dims[0]}; the IMX500 converter supports batch 1/None only"))
    return findings + _run_node_rules(ctx, "imx500", {}, _IMX500_NODE_RULES)


def _imx500_gather(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    indices = ctx.const(_input(node, 1))
    if indices is None:
        return [Finding("imx500", "warning", node.op_type, label,
                        "indices are computed at run time; the IMX500 converter accepts only single-index Gather")]
    if len(indices.values) > 1:
        return [Finding("imx500", "error", node.op_type, label,
                        f"multi-index Gather ({len(indices.values)} indices, shape {list(indices.shape)}); "
                        "the IMX500 converter rejects it (torch.nn.Unfold exports to this): extract patches "
                        "with a grouped Conv instead")]
    return []


def _imx500_batch_fold(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    """Reshape/Flatten that moves data into the leading (batch) dimension of a batch-1 graph."""
    if ctx.const(_input(node, 0)) is not None or not node.output:
        return []
    input_batches = [(_dims(info) or [None])[0] for info in ctx.inputs]
    if not input_batches or any(b != 1 for b in input_batches):
        return []
    dims = ctx.shape(node.output[0])
    if dims is None or len(dims) < 2 or not isinstance(dims[0], int) or dims[0] <= 1:
        return []
    return [Finding("imx500", "error", node.op_type, label,
                    f"output {_shape_text(dims)} folds data into the batch dimension ({dims[0]}); the IMX500 "
                    "converter supports batch 1/None only: keep patches on the spatial grid")]


_IMX500_NODE_RULES: dict[str, Callable[..., list[Finding]]] = {
    "Gather": _imx500_gather,
    "Reshape": _imx500_batch_fold,
    "Flatten": _imx500_batch_fold,
}


# ---------------------------------------------------------------------------------------------------------------
# TensorRT 10.x (onnx-tensorrt parser)
# ---------------------------------------------------------------------------------------------------------------

_TRT_RESIZE_MODES = frozenset({"nearest", "linear"})
_TRT_RESIZE_COORDS = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                                "align_corners"})
_TRT_MAX_TOPK = 3840
# op type -> index of the input that the parser needs as an initializer (the doc's "`axes` must be an initializer").
_TRT_CONST_INPUTS: dict[str, tuple[int, str]] = {
    **{op: (1, "axes") for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                  "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
    "Slice": (3, "axes"),
    "Squeeze": (1, "axes"),
    "Unsqueeze": (1, "axes"),
    "Pad": (3, "axes"),
    "CumSum": (1, "axis"),
}


def _tensorrt(ctx: _Context) -> list[Finding]:
    findings: list[Finding] = []
    opset = _default_opset(ctx.model)
    low, high = TENSORRT_OPSET_RANGE
    if opset is not None and not low <= opset <= high:
        findings.append(Finding("tensorrt", "warning", OPSET, "ai.onnx",
                                f"opset {opset} is outside the documented range {low}-{high} of the TensorRT 10.0/10.1 "
                                "ONNX parser"))
    for info, dims in _dynamic_inputs(ctx):
        findings.append(Finding("tensorrt", "warning", INPUT, info.name,
                                f"input shape {_shape_text(dims)} is not static; the engine then needs an "
                                "optimization profile (--minShapes/--optShapes/--maxShapes)"))
    rejected = {op: "documented as unsupported by the TensorRT ONNX parser (onnx-tensorrt operators.md)"
                for op in TENSORRT_UNSUPPORTED}
    return findings + _run_node_rules(ctx, "tensorrt", rejected, _TRT_NODE_RULES)


def _trt_error(label: str, node: onnx.NodeProto, message: str) -> Finding:
    return Finding("tensorrt", "error", node.op_type, label, message)


def _trt_resize(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    mode = _attr(node, "mode", "nearest")
    if mode not in _TRT_RESIZE_MODES:
        findings.append(_trt_error(label, node, f"mode '{mode}'; TensorRT supports nearest and linear only"))
    coords = _attr(node, "coordinate_transformation_mode", "half_pixel")
    if coords not in _TRT_RESIZE_COORDS:
        findings.append(_trt_error(label, node, f"coordinate_transformation_mode '{coords}' is not supported"))
    if _attr(node, "antialias", 0):
        findings.append(_trt_error(label, node, "antialiasing is not supported"))
    policy = _attr(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        findings.append(_trt_error(label, node, f"keep_aspect_ratio_policy '{policy}'; only 'stretch' is supported"))
    return findings


def _trt_pool(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    dilations = _attr(node, "dilations", [])
    if any(d != 1 for d in dilations):
        findings.append(_trt_error(label, node, f"dilations {list(dilations)}; must be empty or all ones"))
    kernel = _attr(node, "kernel_shape", [])
    if node.op_type != "LpPool" and len(kernel) not in (2, 3):
        findings.append(_trt_error(label, node, f"{len(kernel)}-D pooling; TensorRT pools in 2-D or 3-D only"))
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        findings.append(_trt_error(label, node, "the Indices output is not supported"))
    return findings


def _trt_topk(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    if _attr(node, "sorted", 1) != 1:
        findings.append(_trt_error(label, node, "sorted=0 is not supported"))
    k = ctx.const(_input(node, 1))
    if k is not None and k.values and k.values[0] >= _TRT_MAX_TOPK:
        findings.append(_trt_error(label, node, f"K={k.values[0]}; TensorRT needs K < {_TRT_MAX_TOPK}"))
    return findings


def _trt_scatter_nd(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    reduction = _attr(node, "reduction", "none")
    return [_trt_error(label, node, f"reduction '{reduction}' is not supported")] if reduction != "none" else []


def _trt_lstm(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    return [_trt_error(label, node, f"{name}={_attr(node, name)} is not supported; it must be 0")
            for name in ("input_forget", "layout") if _attr(node, name, 0) != 0]


def _trt_constant(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    return [_trt_error(label, node, f"the '{attr.name}' attribute is not supported") for attr in node.attribute
            if attr.name in ("sparse_value", "value_string", "value_strings")]


def _trt_layer_norm(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if any(node.output[1:]):
        return [_trt_error(label, node, "only the first output Y is supported (Mean/InvStdDev are used)")]
    return []


def _trt_zero_point(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    name = _input(node, 2)
    if not name:
        return []
    zero_point = ctx.const(name)
    if zero_point is None:
        return [_trt_error(label, node, "the zero point must be a constant zero")]
    if any(v != 0 for v in zero_point.values):
        return [_trt_error(label, node, "the zero point must be zero (symmetric quantization only)")]
    return []


def _trt_dropout(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    name = _input(node, 2)
    if not name:
        return []
    training = ctx.const(name)
    if training is None or any(training.values):
        return [_trt_error(label, node, "training_mode must be an initializer that is False")]
    return []


def _trt_const_input(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    index, what = _TRT_CONST_INPUTS[node.op_type]
    name = _input(node, index)
    if name and ctx.const(name) is None:
        return [_trt_error(label, node, f"'{what}' is computed at run time; TensorRT needs it as an initializer")]
    return []


_TRT_NODE_RULES: dict[str, Callable[..., list[Finding]]] = {
    **dict.fromkeys(_TRT_CONST_INPUTS, _trt_const_input),
    "Resize": _trt_resize,
    "AveragePool": _trt_pool,
    "MaxPool": _trt_pool,
    "LpPool": _trt_pool,
    "TopK": _trt_topk,
    "ScatterND": _trt_scatter_nd,
    "LSTM": _trt_lstm,
    "Constant": _trt_constant,
    "LayerNormalization": _trt_layer_norm,
    "QuantizeLinear": _trt_zero_point,
    "DequantizeLinear": _trt_zero_point,
    "Dropout": _trt_dropout,
}


# ---------------------------------------------------------------------------------------------------------------
# QNN GPU FP16 (Qualcomm AI Hub, target runtime qnn_dlc, GPU compute unit)
# ---------------------------------------------------------------------------------------------------------------


def _qnn_gpu(ctx: _Context) -> list[Finding]:
    findings = [
        Finding("qnn_gpu", "error", INPUT, info.name,
                f"input shape {_shape_text(dims)} is not static; QNN graphs are compiled for fixed shapes "
                "(give AI Hub fixed input_specs or export static)")
        for info, dims in _dynamic_inputs(ctx)
    ]
    return findings + _run_node_rules(ctx, "qnn_gpu", QNN_GPU_REJECTED, _QNN_NODE_RULES)


def _qnn_select_last_index(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if _attr(node, "select_last_index", 0) != 0:
        return [Finding("qnn_gpu", "error", node.op_type, label,
                        "select_last_index=1; the QNN ONNX converter supports only the default 0")]
    return []


def _qnn_batch_norm(ctx: _Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if _attr(node, "training_mode", 0) != 0:
        return [Finding("qnn_gpu", "error", node.op_type, label,
                        "training_mode=1; the QNN ONNX converter supports inference mode (0) only")]
    return []


_QNN_NODE_RULES: dict[str, Callable[..., list[Finding]]] = {
    "ArgMax": _qnn_select_last_index,
    "ArgMin": _qnn_select_last_index,
    "BatchNormalization": _qnn_batch_norm,
}

_RULES: dict[str, Callable[[_Context], list[Finding]]] = {
    "imx500": _imx500,
    "tensorrt": _tensorrt,
    "qnn_gpu": _qnn_gpu,
}
