"""The RB5's deployability rules: what QNN's GPU backend (AI Hub, qnn_dlc, GPU compute unit) accepts.

Qualcomm's per-backend op table was only partly readable, so ``SUPPORTED`` is curated from the sources.
The engine is ``bench.devices.deployability``.
"""

from __future__ import annotations

import onnx

from bench.devices.deployability import (
    INPUT,
    Context,
    Finding,
    NodeRule,
    attribute,
    dynamic_inputs,
    run_node_rules,
    shape_text,
)
from bench.devices.sources import Source

TARGET = "rb5"

SOURCES: tuple[Source, ...] = (
    Source(
        "ONNX converter op list and notes (ArgMax/ArgMin select_last_index, BatchNormalization training_mode)",
        "https://docs.qualcomm.com/bundle/publicresource/80-63442-10/topics/supported_onnx_ops.md",
        "stored copy read 2026-08 (page undated); only the first rows were readable",
    ),
    Source(
        "Per-backend op table (GPU column); the core CNN rows of SUPPORTED were curated from it",
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
)

SUPPORTED = frozenset({
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

REJECTED: dict[str, str] = {
    "Resize": "QNN's GPU backend rejects Resize (found by the EdgeZSAD authors; onnxruntime#22549); align "
    "scales by pooling or a strided conv, or upsample on the host",
    "Upsample": "the QNN converter maps Upsample to Resize, which QNN's GPU backend rejects (found by the "
    "EdgeZSAD authors); upsample on the host",
    "DynamicQuantizeLinear": "the QNN converter has no translation for it (AI Hub compile fails, onnxruntime#25334)",
}


def lint(ctx: Context) -> list[Finding]:
    findings = [
        Finding(TARGET, "error", INPUT, info.name,
                f"input shape {shape_text(dims)} is not static; QNN graphs are compiled for fixed shapes "
                "(give AI Hub fixed input_specs or export static)")
        for info, dims in dynamic_inputs(ctx)
    ]
    return findings + run_node_rules(ctx, TARGET, SUPPORTED, REJECTED, _NODE_RULES)


def _select_last_index(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if attribute(node, "select_last_index", 0) != 0:
        return [Finding(TARGET, "error", node.op_type, label,
                        "select_last_index=1; the QNN ONNX converter supports only the default 0")]
    return []


def _batch_norm(ctx: Context, label: str, node: onnx.NodeProto) -> list[Finding]:
    if attribute(node, "training_mode", 0) != 0:
        return [Finding(TARGET, "error", node.op_type, label,
                        "training_mode=1; the QNN ONNX converter supports inference mode (0) only")]
    return []


_NODE_RULES: dict[str, NodeRule] = {
    "ArgMax": _select_last_index,
    "ArgMin": _select_last_index,
    "BatchNormalization": _batch_norm,
}
