"""TensorRT's deployability rules: the onnx-tensorrt parser's operator matrix and restrictions (TensorRT 10.x).

The engine is ``bench.devices.deployability``.
"""

from __future__ import annotations

import onnx

from bench.devices.deployability import (
    INPUT,
    OPSET,
    Context,
    Finding,
    NodeRule,
    attribute,
    default_opset,
    dynamic_inputs,
    input_at,
    run_node_rules,
    shape_text,
)
from bench.devices.sources import Source

TARGET = "tensorrt"

SOURCES: tuple[Source, ...] = (
    Source(
        "Operator support matrix (Y = supported with restrictions, N = documented unsupported), "
        "opset range 9-20, Resize/pooling/TopK/LSTM/ScatterND/axes restrictions",
        "github.com/onnx/onnx-tensorrt docs/operators.md, tag release/10.1-GA "
        "(commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c)",
        "2024-06-17",
    ),
)

# onnx-tensorrt docs/operators.md (10.1-GA): every row marked Y.
SUPPORTED = frozenset({
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
UNSUPPORTED = frozenset({
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "BlackmanWindow",
    "CenterCropPad", "Col2Im", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det", "DynamicQuantizeLinear",
    "HammingWindow", "HannWindow", "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix",
    "Multinomial", "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement", "OptionalHasElement", "QLinearConv",
    "QLinearMatMul", "RegexFullMatch", "STFT", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
    "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat",
    "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique",
})
OPSET_RANGE = (9, 20)


_RESIZE_MODES = frozenset({"nearest", "linear"})
_RESIZE_COORDS = frozenset({"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                                "align_corners"})
_MAX_TOPK = 3840
# op type -> index of the input that the parser needs as an initializer (the doc's "`axes` must be an initializer").
_CONST_INPUTS: dict[str, tuple[int, str]] = {
    **{op: (1, "axes") for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                  "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
    "Slice": (3, "axes"),
    "Squeeze": (1, "axes"),
    "Unsqueeze": (1, "axes"),
    "Pad": (3, "axes"),
    "CumSum": (1, "axis"),
}


def lint(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    opset = default_opset(ctx.model)
    low, high = OPSET_RANGE
    if opset is not None and not low <= opset <= high:
        findings.append(Finding(TARGET, "warning", OPSET, "ai.onnx",
                                f"opset {opset} is outside the documented range {low}-{high} of the TensorRT 10.0/10.1 "
                                "ONNX parser"))
    for info, dims in dynamic_inputs(ctx):
        findings.append(Finding(TARGET, "warning", INPUT, info.name,
                                f"input shape {shape_text(dims)} is not static; the engine then needs an "
                                "optimization profile (--minShapes/--optShapes/--maxShapes)"))
    rejected = {op: "documented as unsupported by the TensorRT ONNX parser (onnx-tensorrt operators.md)"
                for op in UNSUPPORTED}
    return findings + run_node_rules(ctx, TARGET, SUPPORTED, rejected, _NODE_RULES)


def _error(label: str, node: onnx.NodeProto, message: str) -> Finding:
    return Finding(TARGET, "error", node.op_type, label, message)


def _resize(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    mode = attribute(node, "mode", "nearest")
    if mode not in _RESIZE_MODES:
        findings.append(_error(label, node, f"mode '{mode}'; TensorRT supports nearest and linear only"))
    coords = attribute(node, "coordinate_transformation_mode", "half_pixel")
    if coords not in _RESIZE_COORDS:
        findings.append(_error(label, node, f"coordinate_transformation_mode '{coords}' is not supported"))
    if attribute(node, "antialias", 0):
        findings.append(_error(label, node, "antialiasing is not supported"))
    policy = attribute(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        findings.append(_error(label, node, f"keep_aspect_ratio_policy '{policy}'; only 'stretch' is supported"))
    return findings


def _pool(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    dilations = attribute(node, "dilations", [])
    if any(d != 1 for d in dilations):
        findings.append(_error(label, node, f"dilations {list(dilations)}; must be empty or all ones"))
    kernel = attribute(node, "kernel_shape", [])
    if node.op_type != "LpPool" and len(kernel) not in (2, 3):
        findings.append(_error(label, node, f"{len(kernel)}-D pooling; TensorRT pools in 2-D or 3-D only"))
    if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
        findings.append(_error(label, node, "the Indices output is not supported"))
    return findings


def _topk(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    findings = []
    if attribute(node, "sorted", 1) != 1:
        findings.append(_error(label, node, "sorted=0 is not supported"))
    k = ctx.const(input_at(node, 1))
    if k is not None and k.values and k.values[0] >= _MAX_TOPK:
        findings.append(_error(label, node, f"K={k.values[0]}; TensorRT needs K < {_MAX_TOPK}"))
    return findings


def _scatter_nd(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    reduction = attribute(node, "reduction", "none")
    return [_error(label, node, f"reduction '{reduction}' is not supported")] if reduction != "none" else []


def _lstm(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    return [_error(label, node, f"{name}={attribute(node, name)} is not supported; it must be 0")
            for name in ("input_forget", "layout") if attribute(node, name, 0) != 0]


def _constant(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    return [_error(label, node, f"the '{attr.name}' attribute is not supported") for attr in node.attribute
            if attr.name in ("sparse_value", "value_string", "value_strings")]


def _layer_norm(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if any(node.output[1:]):
        return [_error(label, node, "only the first output Y is supported (Mean/InvStdDev are used)")]
    return []


def _zero_point(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    name = input_at(node, 2)
    if not name:
        return []
    zero_point = ctx.const(name)
    if zero_point is None:
        return [_error(label, node, "the zero point must be a constant zero")]
    if any(v != 0 for v in zero_point.values):
        return [_error(label, node, "the zero point must be zero (symmetric quantization only)")]
    return []


def _dropout(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    name = input_at(node, 2)
    if not name:
        return []
    training = ctx.const(name)
    if training is None or any(training.values):
        return [_error(label, node, "training_mode must be an initializer that is False")]
    return []


def _const_input(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    index, what = _CONST_INPUTS[node.op_type]
    name = input_at(node, index)
    if name and ctx.const(name) is None:
        return [_error(label, node, f"'{what}' is computed at run time; TensorRT needs it as an initializer")]
    return []


_NODE_RULES: dict[str, NodeRule] = {
    **dict.fromkeys(_CONST_INPUTS, _const_input),
    "Resize": _resize,
    "AveragePool": _pool,
    "MaxPool": _pool,
    "LpPool": _pool,
    "TopK": _topk,
    "ScatterND": _scatter_nd,
    "LSTM": _lstm,
    "Constant": _constant,
    "LayerNormalization": _layer_norm,
    "QuantizeLinear": _zero_point,
    "DequantizeLinear": _zero_point,
    "Dropout": _dropout,
}
