"""The host: ONNX Runtime on this machine, FP32; the CPU profile is the drift reference.

Its parts: the adapter and session (``adapter``) and the typed ``runtime`` settings below. The
emulation engine (``bench.devices.emulation``) runs other families' numerics on the same runtime.
Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.devices.family import DeviceFamily

GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
EXECUTION_MODES = ("sequential", "parallel")


@dataclass(frozen=True)
class HostSettings:
    """The profile's ``runtime`` section: ONNX Runtime's session options, pinned rather than left to its
    machine-dependent defaults. ``intra_op_num_threads: auto`` is the cores this process may use."""

    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_num_threads: int | str = "auto"
    inter_op_num_threads: int = 1
    execution_mode: str = "sequential"
    graph_optimization_level: str = "all"

    def __post_init__(self) -> None:
        if self.graph_optimization_level not in GRAPH_OPTIMIZATION_LEVELS:
            raise ValueError(f"graph_optimization_level must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}")
        if self.execution_mode not in EXECUTION_MODES:
            raise ValueError(f"execution_mode must be one of {', '.join(EXECUTION_MODES)}")
        if self.intra_op_num_threads != "auto" and not isinstance(self.intra_op_num_threads, int):
            raise ValueError("intra_op_num_threads must be a number or auto")


FAMILY = DeviceFamily(
    name="host",
    description="ONNX Runtime on this machine, FP32 (the CPU profile is the drift reference)",
    adapter="bench.devices.host.adapter:HostDevice",
    settings=HostSettings,
)
