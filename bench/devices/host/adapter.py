"""The host reference: ONNX Runtime, CPU execution provider, FP32, threads set explicitly.

It is the reference every device run is compared with, so its settings are pinned and
recorded rather than left to ONNX Runtime's defaults (which depend on the machine).
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.devices.base import Artifact, Device, ExportedModel, InferenceResult, Session
from bench.devices.host import HostSettings
from bench.errors import BadInput

GRAPH_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def physical_cores() -> int:
    """Cores available to this process (affinity-aware), the sane default for intra-op threads."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class HostSession(Session):
    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self._outputs = [o.name for o in session.get_outputs()]

    def infer(self, batch: np.ndarray) -> InferenceResult:
        values = self._session.run(self._outputs, {self._input: batch})
        return InferenceResult(dict(zip(self._outputs, values, strict=True)))

    def _close(self) -> None:
        self._session = None  # type: ignore[assignment]


class HostDevice(Device):
    settings: HostSettings

    def options(self) -> HostSettings:
        """The ONNX Runtime settings sessions are opened with (the emulation engine's differ)."""
        return self.settings

    def resolved_options(self) -> dict[str, Any]:
        """The session settings as recorded; ``auto`` becomes the number of threads used."""
        options = self.options()
        intra = options.intra_op_num_threads
        return {
            "providers": list(options.providers),
            "intra_op_num_threads": physical_cores() if intra == "auto" else int(intra),
            "inter_op_num_threads": options.inter_op_num_threads,
            "execution_mode": options.execution_mode,
            "graph_optimization_level": options.graph_optimization_level,
        }

    def toolchain(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__}

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        """The host runs the exported ONNX itself; it is copied so the cache owns its artifact."""
        workdir.mkdir(parents=True, exist_ok=True)
        target = workdir / "model.onnx"
        shutil.copyfile(exported.onnx_path, target)
        return Artifact(target, exported.sha256, self.profile.precision, self.toolchain(), exported.sha256)

    def session_options(self) -> ort.SessionOptions:
        """Options from the profile; subclasses add what their graphs need (custom op libraries)."""
        return ort.SessionOptions()

    def _open(self, artifact: Artifact) -> Session:
        s = self.resolved_options()
        options = self.session_options()
        options.intra_op_num_threads = s["intra_op_num_threads"]
        options.inter_op_num_threads = s["inter_op_num_threads"]
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if s["execution_mode"] == "parallel" else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        options.graph_optimization_level = GRAPH_LEVELS[s["graph_optimization_level"]]
        try:
            session = ort.InferenceSession(str(artifact.path), sess_options=options, providers=s["providers"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BadInput(f"{artifact.path}: ONNX Runtime cannot load it ({exc})") from exc
        return HostSession(session)

    def availability(self) -> tuple[bool, str]:
        available = ort.get_available_providers()
        wanted = list(self.options().providers)
        missing = [p for p in wanted if p not in available]
        if missing:
            gpu = "CUDAExecutionProvider" in missing
            hint = " (install onnxruntime-gpu on a machine with an NVIDIA GPU)" if gpu else ""
            return False, f"onnxruntime {ort.__version__} lacks {', '.join(missing)}{hint}; has {', '.join(available)}"
        return True, f"onnxruntime {ort.__version__}: {', '.join(wanted)}"

    def environment(self) -> dict[str, Any]:
        return {
            "os": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "runtime": {"onnxruntime": ort.__version__, "numpy": np.__version__},
            "settings": self.resolved_options(),
            "power_mode": None,
        }
