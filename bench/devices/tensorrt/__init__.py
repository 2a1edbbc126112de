"""NVIDIA TensorRT: an FP16 engine on a Jetson (JetPack 6) or any NVIDIA GPU.

Its parts: the adapter (``adapter``), engine building (``build``), the session with CUDA-event timing
(``session``) over cuda-python (``cuda_runtime``), a Jetson's power mode and clocks (``jetson_env``),
the FP16 policy for ``--emulate`` and TensorRT 11's FP16 ONNX (``fp16_policy``) and the ONNX parser's
deployability rules (``deployability``). Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.devices.family import DeviceFamily


@dataclass(frozen=True)
class TensorRTSettings:
    """The profile's ``runtime`` section.

    ``workspace_mib`` is the builder's workspace pool limit; ``builder_optimization_level`` TensorRT's
    (None: its default); ``timing_cache`` a path (None: in the cache folder per TensorRT version and GPU);
    ``cuda_graph`` replays each inference as a captured CUDA graph; ``gpu_index`` picks the GPU.
    ``expected_power_mode`` (nvpmodel's mode name) marks a Jetson profile: a different mode, or a machine
    that is no Jetson, is warned about. ``system_root`` is where /etc and /sys are read (tests: a fake tree).
    """

    workspace_mib: int = 1024
    cuda_graph: bool = False
    gpu_index: int = 0
    builder_optimization_level: int | None = None
    timing_cache: str | None = None
    expected_power_mode: str | None = None
    system_root: str = "/"


FAMILY = DeviceFamily(
    name="tensorrt",
    description="NVIDIA TensorRT FP16 engine on a Jetson or any NVIDIA GPU",
    adapter="bench.devices.tensorrt.adapter:TensorRTDevice",
    settings=TensorRTSettings,
    emulation="bench.devices.emulation.fp16_numerics:Fp16Numerics",
    lint="bench.devices.tensorrt.deployability:lint",
    lint_label="TensorRT",
    compiles_with=("bench.devices.emulation",),  # TensorRT 11 builds from the engine's FP16 ONNX
)
