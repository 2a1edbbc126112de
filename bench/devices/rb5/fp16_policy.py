"""QNN GPU's FP16 policy (RB5): the whole graph in FP16, IO kept FP32, for ``--emulate``."""

from __future__ import annotations

from bench.devices.emulation.fp16_policy import REDUCTION_RISK, Fp16Policy
from bench.devices.sources import Source

POLICIES: dict[str, Fp16Policy] = {
    "qnn_gpu_fp16": Fp16Policy(
        device="Qualcomm RB5, QNN GPU backend (AI Hub, qnn_dlc, GPU compute unit) with FP16 precision",
        fp32_ops=frozenset(),
        rationale=(
            "QNN's GPU backend sets precision per graph, not per op: FP16 stores and computes in FP16, HYBRID "
            "stores in FP16 and computes in FP32, applied to every tensor that is neither a graph input nor "
            "a graph output. No op type is kept in FP32, so only the graph IO stays FP32 (keep_io_types). "
            "The emulation's FP32 arithmetic inside ops is HYBRID exactly and a lower bound for pure FP16, "
            "whose kernels may also accumulate in FP16."
        ),
        sources=(
            Source("QnnGpu_Precision_t: FP32, FP16, HYBRID ('FP16 for storage and FP32 for calculations'), "
                   "USER_PROVIDED (default); 'a tensor may be optimized to the specified precision when it is a "
                   "graph tensor that is not a graph input or a graph output'",
                   "QNN SDK header include/QNN/GPU/QnnGpuGraph.h (QnnGpuGraph_CustomConfig_t; public copies on GitHub)",
                   "read 2026-11"),
            Source("GPU backend 'Precision Mode' section (graph-level custom config)",
                   "https://docs.qualcomm.com/bundle/publicresource/80-63442-10/topics/gpu_backend.md",
                   "read 2026-11 (page undated)"),
            Source("QNN TFLite delegate option gpu_precision: 0 graph types, 1 FP32, 2 FP16 (default, 'best "
                   "performance'), 3 hybrid; one setting for the whole graph",
                   "https://docs.qualcomm.com/doc/80-70014-54/topic/external-delegate-options-for-qnn-delegate.html",
                   "read 2026-11"),
        ),
        risky_ops={
            "LayerNormalization": "no FP32 fallback on QNN GPU: statistics stored in FP16",
            "ReduceMean": REDUCTION_RISK, "ReduceSum": REDUCTION_RISK, "ReduceSumSquare": REDUCTION_RISK,
            "ReduceL2": REDUCTION_RISK, "GlobalAveragePool": REDUCTION_RISK,
            "Pow": "squares activations: |x| > 256 overflows FP16",
            "Softmax": "softmax in FP16 precision mode",
            "Exp": "exp(x) overflows FP16 for x > 11.1",
        },
    ),
}
