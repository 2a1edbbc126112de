"""TensorRT's FP16 policy: what its engines keep in FP32, for ``--emulate`` and for TensorRT 11's FP16 ONNX."""

from __future__ import annotations

from bench.devices.emulation.fp16_policy import REDUCTION_RISK, Fp16Policy
from bench.devices.sources import Source

POLICIES: dict[str, Fp16Policy] = {
    "tensorrt_fp16": Fp16Policy(
        device="NVIDIA Jetson, TensorRT engine built with the FP16 flag from the exported ONNX",
        fp32_ops=frozenset({"LayerNormalization"}),
        rationale=(
            "TensorRT picks each layer's precision by timing (weak typing), with FP32 where no FP16 kernel "
            "exists; every float ONNX op that onnx-tensorrt imports has an FP16 kernel, so by default the "
            "network runs in FP16. The documented exception is LayerNormalization: the ONNX parser builds an "
            "INormalizationLayer whose compute precision is the op's stash_type, FP32 by default (opset 17+). "
            "Decomposed norms (ReduceMean/Pow/Sqrt) are not protected: TensorRT only warns that layernorm in "
            "FP16 may overflow. NVIDIA's own FP16 converter for strongly typed engines (ModelOpt AutoCast) "
            "keeps no op type in FP32 by default beyond those ONNX cannot type in FP16 (Upsample, "
            "NonMaxSuppression, Celu, Resize scales: the schema rule here, for every policy); its other FP32 "
            "choices are data driven (|activation| > 512, |weight| > 65504), which the explicit FP16 storage "
            "here reproduces as rounding and overflow."
        ),
        sources=(
            Source("LayerNormalization importer: INormalizationLayer::setComputePrecision(stash_type, default 1 "
                   "= FLOAT); GroupNormalization/InstanceNormalization importers set no compute precision",
                   "github.com/onnx/onnx-tensorrt onnxOpImporters.cpp and importerUtils.cpp (normalizationHelper), "
                   "tag release/10.1-GA, commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c", "2024-06-17"),
            Source("Operator support matrix: every float op listed with FP16 support (no FP32-only float op)",
                   "github.com/onnx/onnx-tensorrt docs/operators.md, same commit", "2024-06-17"),
            Source("Builder warning 'Running layernorm after self-attention in FP16 may cause overflow. Exporting "
                   "the model to the latest available ONNX opset (later than opset 17) to use the "
                   "INormalizationLayer, or forcing layernorm layers to run in FP32 precision can help'",
                   "github.com/pytorch/TensorRT issues/2730 and pull/2509 (quoted TensorRT log)", "read 2026-11"),
            Source("TensorRT chooses layer precision for performance; weakly typed builds may run any layer "
                   "in FP32; strongly typed networks follow the types in the graph",
                   "docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/precision-control.html and "
                   "accuracy-considerations.html (FP16 range 65504, ULP growth with magnitude)", "read 2026-11"),
            Source("AutoCast: OP_TYPES_NOT_SUPPORTED_IN_LOW_PRECISION = Upsample, NonMaxSuppression, Celu; Resize "
                   "scales kept FP32; defaults data_max=512, init_max=65504",
                   "github.com/NVIDIA/Model-Optimizer modelopt/onnx/autocast/precisionconverter.py, convert.py, "
                   "docs/source/guides/8_autocast.rst, commit a2fbac7bad8ab446d3f8783dadb0c3366eb0ad73",
                   "2026-08-21"),
        ),
        risky_ops={
            "ReduceMean": REDUCTION_RISK, "ReduceSum": REDUCTION_RISK, "ReduceSumSquare": REDUCTION_RISK,
            "ReduceL2": REDUCTION_RISK, "GlobalAveragePool": REDUCTION_RISK,
            "Pow": "squares activations: |x| > 256 overflows FP16 (the decomposed-layernorm overflow warning)",
            "Sqrt": "variance path of decomposed norms",
            "Softmax": "TensorRT does not document its softmax accumulation precision",
            "Exp": "exp(x) overflows FP16 for x > 11.1",
            "Erf": "GELU's erf in FP16; fused pointwise kernels may keep FP32 intermediates (not emulated)",
        },
    ),
}
