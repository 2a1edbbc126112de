"""The IMX500's deployability rules: MCT's IMX500 operator sets and what Sony's converter rejects.

Sony publishes no ONNX op list for the IMX500 converter: ``SUPPORTED`` is MCT's IMX500 target-platform
operator sets mapped to ONNX. The engine is ``bench.devices.deployability``.
"""

from __future__ import annotations

import onnx

from bench.devices.deployability import (
    INPUT,
    Context,
    Finding,
    NodeRule,
    dims_of,
    dynamic_inputs,
    input_at,
    run_node_rules,
    shape_text,
)
from bench.devices.sources import Source

TARGET = "imx500"

SOURCES: tuple[Source, ...] = (
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
)

# MCT's IMX500 operator sets (schema OperatorSetNames, attach2pytorch layers) as the ONNX ops they export to,
# plus ReduceMean/GlobalAveragePool (channel and spatial means, deployed on the IMX500 by TinyGLASS and by
# MCT's MobileNetV2 IMX500 tutorial) and graph plumbing the converter folds (Constant, Identity).
SUPPORTED = frozenset({
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


def lint(ctx: Context) -> list[Finding]:
    findings: list[Finding] = []
    for info, dims in dynamic_inputs(ctx):
        findings.append(Finding(TARGET, "error", INPUT, info.name,
                                f"input shape {shape_text(dims)} is not static; export with fixed shapes "
                                "for MCT and the IMX500 converter"))
    for info in ctx.inputs:
        dims = dims_of(info)
        if dims and isinstance(dims[0], int) and dims[0] > 1:
            findings.append(Finding(TARGET, "error", INPUT, info.name,
                                    f"batch size {dims[0]}; the IMX500 converter supports batch 1/None only"))
    return findings + run_node_rules(ctx, TARGET, SUPPORTED, {}, _NODE_RULES)


def _gather(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    indices = ctx.const(input_at(node, 1))
    if indices is None:
        return [Finding(TARGET, "warning", node.op_type, label,
                        "indices are computed at run time; the IMX500 converter accepts only single-index Gather")]
    if len(indices.values) > 1:
        return [Finding(TARGET, "error", node.op_type, label,
                        f"multi-index Gather ({len(indices.values)} indices, shape {list(indices.shape)}); "
                        "the IMX500 converter rejects it (torch.nn.Unfold exports to this): extract patches "
                        "with a grouped Conv instead")]
    return []


def _batch_fold(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    """Reshape/Flatten that moves data into the leading (batch) dimension of a batch-1 graph."""
    if ctx.const(input_at(node, 0)) is not None or not node.output:
        return []
    input_batches = [(dims_of(info) or [None])[0] for info in ctx.inputs]
    if not input_batches or any(b != 1 for b in input_batches):
        return []
    dims = ctx.shape(node.output[0])
    if dims is None or len(dims) < 2 or not isinstance(dims[0], int) or dims[0] <= 1:
        return []
    return [Finding(TARGET, "error", node.op_type, label,
                    f"output {shape_text(dims)} folds data into the batch dimension ({dims[0]}); the IMX500 "
                    "converter supports batch 1/None only: keep patches on the spatial grid")]


_NODE_RULES: dict[str, NodeRule] = {
    "Gather": _gather,
    "Reshape": _batch_fold,
    "Flatten": _batch_fold,
}
