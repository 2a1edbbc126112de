"""The few CUDA runtime calls a TensorRT session needs, through NVIDIA's cuda-python bindings.

cuda-python (not pycuda, not torch) keeps the device side free of a second framework. Every
binding returns ``(cudaError_t, *values)`` (checked against cuda-bindings 13.5.0); :func:`check`
turns a failure into one exception that names the call and CUDA's own error string. A missing or
too old driver is cudaErrorInsufficientDriver (not cudaErrorNoDevice); the message then adds the
driver's and the runtime's CUDA versions.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from bench.errors import DeviceFailure


class CudaError(DeviceFailure):
    """A CUDA runtime call failed (no device, out of memory, a device lost mid-run)."""


def load_cudart() -> Any:
    """``cuda.bindings.runtime`` (cuda-python 12.6+), or the older ``cuda.cudart`` layout."""
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("cuda-python is not installed (pip install -e '.[jetson]' on a Jetson, "
                      "'.[tensorrt-cu12]' on a desktop GPU)")


class Cuda:
    """Checked wrappers over a cudart module (the real one, or a test's fake with the same API)."""

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def check(self, result: Any, call: str) -> Any:
        """The values after the status of ``result``; raises CudaError when the status is not success."""
        values = result if isinstance(result, tuple) else (result,)
        status, rest = values[0], values[1:]
        if status != self.rt.cudaError_t.cudaSuccess:
            text = self.rt.cudaGetErrorString(status)
            message = text[1] if isinstance(text, tuple) else text
            if isinstance(message, bytes):
                message = message.decode(errors="replace")
            hint = self._driver_hint(status)
            raise CudaError(f"CUDA {call} failed: {getattr(status, 'name', status)} ({message}){hint}")
        if not rest:
            return None
        return rest[0] if len(rest) == 1 else rest

    def _driver_hint(self, status: Any) -> str:
        """For cudaErrorInsufficientDriver (also what no driver at all gives): the two versions that disagree.
        Read without ``check``, so a failing version query cannot recurse."""
        if status != getattr(self.rt.cudaError_t, "cudaErrorInsufficientDriver", None):
            return ""
        (runtime_status, runtime), (driver_status, driver) = (self.rt.cudaRuntimeGetVersion(),
                                                              self.rt.cudaDriverGetVersion())
        success = self.rt.cudaError_t.cudaSuccess
        if runtime_status != success or driver_status != success:
            return ""
        said = "no NVIDIA driver" if int(driver) == 0 else f"the driver supports CUDA {_dotted(int(driver))}"
        return f"; {said}, this cuda-python is built for CUDA {_dotted(int(runtime))}"

    def malloc(self, nbytes: int) -> int:
        return int(self.check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def stream(self) -> Any:
        return self.check(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def event(self) -> Any:
        return self.check(self.rt.cudaEventCreate(), "cudaEventCreate")

    def to_device(self, pointer: int, host: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self.check(self.rt.cudaMemcpyAsync(pointer, host.ctypes.data, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def to_host(self, host: np.ndarray, pointer: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self.check(self.rt.cudaMemcpyAsync(host.ctypes.data, pointer, host.nbytes, kind, stream), "cudaMemcpyAsync")

    def record(self, event: Any, stream: Any) -> None:
        self.check(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def synchronize(self, stream: Any) -> None:
        self.check(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self.check(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def begin_capture(self, stream: Any) -> None:
        mode = self.rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        self.check(self.rt.cudaStreamBeginCapture(stream, mode), "cudaStreamBeginCapture")

    def end_capture(self, stream: Any) -> Any:
        """The captured graph, instantiated: (graph, executable graph)."""
        graph = self.check(self.rt.cudaStreamEndCapture(stream), "cudaStreamEndCapture")
        executable = self.check(self.rt.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        return graph, executable

    def launch(self, executable: Any, stream: Any) -> None:
        self.check(self.rt.cudaGraphLaunch(executable, stream), "cudaGraphLaunch")

    def release(self, call: str, handle: Any) -> None:
        """Destroy a handle on close; failures there are ignored (the context may already be gone)."""
        if handle is not None:
            getattr(self.rt, call)(handle)

    def device_properties(self, index: int = 0) -> dict[str, Any]:
        props = self.check(self.rt.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
        name = props.name
        if isinstance(name, bytes):
            name = name.split(b"\x00")[0].decode(errors="replace")
        return {"name": str(name), "compute_capability": f"{props.major}.{props.minor}",
                "total_memory_mib": int(props.totalGlobalMem) >> 20}

    def versions(self) -> dict[str, str]:
        runtime = self.check(self.rt.cudaRuntimeGetVersion(), "cudaRuntimeGetVersion")
        driver = self.check(self.rt.cudaDriverGetVersion(), "cudaDriverGetVersion")
        return {"cuda_runtime": _dotted(int(runtime)), "cuda_driver": _dotted(int(driver))}


def _dotted(value: int) -> str:
    """CUDA's version integer (1000 * major + 10 * minor) as "major.minor": 13050 -> "13.5"."""
    return f"{value // 1000}.{(value % 1000) // 10}"
