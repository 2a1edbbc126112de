"""The TensorRT adapter: a Jetson Orin or any NVIDIA GPU (profile ``kind: tensorrt``).

compile builds an engine with TensorRT's Python API (``build``); open runs it with cuda-python
buffers and CUDA-event timing (``session``). Engines are cached by the artifact cache under
(model, profile, toolchain) where the toolchain is the TensorRT version, CUDA runtime and the GPU
with its compute capability: an engine is only valid for the TensorRT version and GPU that built
it. On a Jetson, the environment adds L4T/JetPack, the nvpmodel power mode and the clocks
(``jetson_env``). Nothing here assumes where the CLI runs: the adapter only needs TensorRT and
CUDA on the machine it runs on. Its ``runtime`` settings are ``TensorRTSettings``.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import Artifact, Device, ExportedModel, Session
from bench.devices.tensorrt import TensorRTSettings
from bench.devices.tensorrt.build import BuildSettings, build_engine, build_mode
from bench.devices.tensorrt.cuda_runtime import Cuda, CudaError, load_cudart
from bench.devices.tensorrt.jetson_env import is_jetson, jetson_environment
from bench.devices.tensorrt.session import TensorRTSession
from bench.errors import BadInput, BenchError
from bench.paths import cache_dir
from bench.util import file_sha256

PRECISIONS = ("fp16", "fp32")
INSTALL_HINT = ("on a Jetson, JetPack's python3-libnvinfer and pip install -e '.[jetson]'; on a desktop GPU, "
                "pip install -e '.[tensorrt-cu12]' (or '.[tensorrt-cu13]' with a 580-class driver)")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


class TensorRTDevice(Device):
    settings: TensorRTSettings

    def __init__(self, profile: Any) -> None:
        super().__init__(profile)
        if profile.precision not in PRECISIONS:
            raise BadInput(f"{profile.source}: precision must be one of {', '.join(PRECISIONS)} for TensorRT")
        self._modules: tuple[Any, Cuda] | None = None

    # -- the runtime, imported on first use so a host without TensorRT can still list and doctor profiles
    def modules(self) -> tuple[Any, Cuda]:
        if self._modules is None:
            trt = importlib.import_module("tensorrt")
            self._modules = trt, Cuda(load_cudart())
        return self._modules

    @property
    def system_root(self) -> Path:
        return Path(self.settings.system_root)

    def on_jetson(self) -> bool:
        """A Jetson profile (it names a power mode) or a Jetson board: TensorRT 11+ is refused there."""
        return self.settings.expected_power_mode is not None or is_jetson(self.system_root)

    def build_mode(self, version: str) -> str:
        """``build.build_mode`` for this profile: TensorRT 11 does not support JetPack (Jetsons run JetPack 6,
        TensorRT 10.3), so a Jetson profile that finds TensorRT 11 or newer is one clear error."""
        return build_mode(version, self.profile.precision, self.on_jetson())

    def gpu(self) -> dict[str, Any]:
        _, cuda = self.modules()
        count = cuda.check(cuda.rt.cudaGetDeviceCount(), "cudaGetDeviceCount")
        index = self.settings.gpu_index
        if index >= int(count):
            raise BadInput(f"{self.profile.source}: gpu_index {index} but this machine has {count} CUDA device(s)")
        cuda.check(cuda.rt.cudaSetDevice(index), "cudaSetDevice")
        return {"index": index, **cuda.device_properties(index)}

    def availability(self) -> tuple[bool, str]:
        try:
            trt, cuda = self.modules()
            gpu = self.gpu()
            versions = cuda.versions()
        except ImportError as exc:
            return False, f"{exc.name or exc}: not installed ({INSTALL_HINT})"
        except (CudaError, BadInput) as exc:
            return False, f"no usable CUDA device: {exc}"
        try:
            self.build_mode(str(trt.__version__))
        except BadInput as exc:
            return False, str(exc)
        return True, (f"TensorRT {trt.__version__}, CUDA {versions['cuda_runtime']}, {gpu['name']} "
                      f"(sm {gpu['compute_capability']})")

    def toolchain(self) -> dict[str, str]:
        self.require_available()
        trt, cuda = self.modules()
        gpu = self.gpu()
        return {"tensorrt": str(trt.__version__), "cuda_runtime": cuda.versions()["cuda_runtime"],
                "gpu": f"{gpu['name']} (sm {gpu['compute_capability']})"}

    def timing_cache_path(self, toolchain: dict[str, str]) -> Path:
        configured = self.settings.timing_cache
        if configured:
            return Path(os.path.expanduser(configured))
        return cache_dir() / "tensorrt" / f"timing-{_slug(toolchain['tensorrt'])}-{_slug(toolchain['gpu'])}.cache"

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        toolchain = self.toolchain()
        trt, _ = self.modules()
        workdir.mkdir(parents=True, exist_ok=True)
        source, details = exported.onnx_path, {}
        mode = self.build_mode(str(trt.__version__))
        if mode == "strongly_typed":
            from bench.devices.emulation.fp16 import to_fp16

            source = workdir / "model_fp16.onnx"
            details["fp16_conversion"] = to_fp16(exported.onnx_path, source, "tensorrt_fp16", explicit_storage=False)
        settings = BuildSettings(
            mode=mode, workspace_mib=self.settings.workspace_mib,
            builder_optimization_level=self.settings.builder_optimization_level,
            timing_cache=self.timing_cache_path(toolchain))
        target = workdir / "model.engine"
        report = build_engine(trt, source, target, settings)
        details["build"] = report.to_json()
        return Artifact(target, file_sha256(target), self.profile.precision, toolchain, exported.sha256,
                        json.loads(json.dumps(details, default=str)))

    def _open(self, artifact: Artifact) -> Session:
        trt, cuda = self.modules()
        self.gpu()  # selects the profile's GPU
        try:
            engine = artifact.path.read_bytes()
        except OSError as exc:
            raise BadInput(f"{artifact.path}: cannot read the engine ({exc.strerror})") from exc
        return TensorRTSession(trt, cuda, engine, str(artifact.path), self.settings.cuda_graph)

    def environment(self) -> dict[str, Any]:
        env: dict[str, Any] = {
            "os": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "runtime": {"numpy": np.__version__}, "gpu": None,
            "settings": {"workspace_mib": self.settings.workspace_mib, "cuda_graph": self.settings.cuda_graph,
                         "builder_optimization_level": self.settings.builder_optimization_level},
            "power_mode": None, "jetson": None, "warnings": [],
        }
        try:
            trt, cuda = self.modules()
            env["runtime"].update({"tensorrt": str(trt.__version__), **cuda.versions()})
            env["gpu"] = self.gpu()
            env["settings"]["build_mode"] = self.build_mode(str(trt.__version__))
        except (ImportError, BenchError) as exc:
            env["warnings"].append(f"TensorRT/CUDA not usable here: {exc}")
        if is_jetson(self.system_root):
            jetson = jetson_environment(self.settings.expected_power_mode, self.system_root)
            env["jetson"] = jetson
            env["power_mode"] = jetson["power_mode"]
            env["warnings"].extend(jetson.pop("warnings"))
        elif self.settings.expected_power_mode is not None:
            env["warnings"].append(f"{self.system_root / 'etc/nv_tegra_release'} is missing: not a Jetson, so "
                                   f"power mode and clocks are not recorded")
        return env
