"""FAKE ``cuda.bindings.runtime`` (cuda-python 13.x), for tests on machines without a GPU.

Follows the real module's conventions: every call returns a tuple ``(cudaError_t, *outputs)``,
handles are objects whose ``int()`` is the raw pointer, ``cudaDeviceProp.name`` is bytes,
``cudaGetErrorString`` returns ``(cudaSuccess, bytes)``. "Device" memory is host memory
(ctypes buffers), so copies are memmoves and the fake TensorRT engine reads inputs from it.
Work submitted to a stream runs at once unless the stream is capturing, in which case it is
recorded into a graph that ``cudaGraphLaunch`` replays.

Environment knobs (fault injection): ``FAKE_CUDA_DEVICES`` (default 1; 0 gives
cudaErrorNoDevice), ``FAKE_CUDA_GPU`` (device name, default "Orin"), ``FAKE_CUDA_CC`` (compute
capability, default 8.7), ``FAKE_CUDA_FAIL_AFTER_COPIES`` (copies that succeed before every
later one returns cudaErrorLaunchFailure, as when a device drops mid-run), ``FAKE_CUDA_FAIL_SYNC``
(set: every cudaStreamSynchronize returns cudaErrorLaunchFailure, as when a kernel faulted
asynchronously and the sticky error surfaces at the next synchronisation).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorLaunchFailure = 719
    cudaErrorStreamCaptureInvalidated = 901


_STRINGS = {
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInvalidValue: b"invalid argument",
    cudaError_t.cudaErrorMemoryAllocation: b"out of memory",
    cudaError_t.cudaErrorInsufficientDriver: b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorNoDevice: b"no CUDA-capable device is detected",
    cudaError_t.cudaErrorLaunchFailure: b"unspecified launch failure",
    cudaError_t.cudaErrorStreamCaptureInvalidated: b"operation failed due to a previous error during capture",
}


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3
    cudaMemcpyDefault = 4


class cudaStreamCaptureMode(enum.IntEnum):
    cudaStreamCaptureModeGlobal = 0
    cudaStreamCaptureModeThreadLocal = 1
    cudaStreamCaptureModeRelaxed = 2


_ids = itertools.count(0x7F0000001000, 0x100)


class _Handle:
    def __init__(self) -> None:
        self._ptr = next(_ids)

    def __int__(self) -> int:
        return self._ptr

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._ptr:#x}>"


class cudaStream_t(_Handle):
    def __init__(self) -> None:
        super().__init__()
        self.capture: list[Callable[[], None]] | None = None


class cudaEvent_t(_Handle):
    def __init__(self) -> None:
        super().__init__()
        self.t_ns: int | None = None


@dataclass
class cudaGraph_t:
    ops: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class cudaGraphExec_t:
    ops: list[Callable[[], None]] = field(default_factory=list)


@dataclass
class cudaDeviceProp:
    name: bytes
    major: int
    minor: int
    totalGlobalMem: int


_memory: dict[int, ctypes.Array] = {}
_streams: dict[int, cudaStream_t] = {}
_copies = 0
_ok = cudaError_t.cudaSuccess


def _devices() -> int:
    return int(os.environ.get("FAKE_CUDA_DEVICES", "1"))


def _no_device() -> cudaError_t | None:
    return cudaError_t.cudaErrorNoDevice if _devices() == 0 else None


def cudaGetErrorString(error: cudaError_t) -> tuple[cudaError_t, bytes]:
    return _ok, _STRINGS.get(error, b"unknown error")


def cudaGetDeviceCount() -> tuple[cudaError_t, int | None]:
    return (cudaError_t.cudaErrorNoDevice, None) if _devices() == 0 else (_ok, _devices())


def cudaSetDevice(device: int) -> tuple[cudaError_t]:
    return (cudaError_t.cudaErrorInvalidValue,) if device >= _devices() else (_ok,)


def cudaGetDeviceProperties(device: int) -> tuple[cudaError_t, cudaDeviceProp | None]:
    if device >= _devices():
        return cudaError_t.cudaErrorInvalidValue, None
    major, minor = os.environ.get("FAKE_CUDA_CC", "8.7").split(".")
    return _ok, cudaDeviceProp(os.environ.get("FAKE_CUDA_GPU", "Orin").encode(), int(major), int(minor), 8 << 30)


def cudaRuntimeGetVersion() -> tuple[cudaError_t, int]:
    return _ok, 12060


def cudaDriverGetVersion() -> tuple[cudaError_t, int]:
    return _ok, 0 if _devices() == 0 else 12060


def cudaMalloc(size: int) -> tuple[cudaError_t, int | None]:
    if (error := _no_device()) is not None:
        return error, None
    buffer = (ctypes.c_char * size)()
    pointer = ctypes.addressof(buffer)
    _memory[pointer] = buffer
    return _ok, pointer


def cudaFree(pointer: int) -> tuple[cudaError_t]:
    _memory.pop(int(pointer), None)
    return (_ok,)


def is_device_pointer(pointer: int) -> bool:
    """Test helper (not a CUDA call): whether ``pointer`` came from cudaMalloc and is still allocated."""
    return int(pointer) in _memory


def cudaStreamCreate() -> tuple[cudaError_t, cudaStream_t | None]:
    if (error := _no_device()) is not None:
        return error, None
    stream = cudaStream_t()
    _streams[int(stream)] = stream
    return _ok, stream


def cudaStreamDestroy(stream: cudaStream_t) -> tuple[cudaError_t]:
    _streams.pop(int(stream), None)
    return (_ok,)


def cudaStreamSynchronize(stream: cudaStream_t) -> tuple[cudaError_t]:
    return (cudaError_t.cudaErrorLaunchFailure,) if os.environ.get("FAKE_CUDA_FAIL_SYNC") else (_ok,)


def submit(stream_handle: int, op: Callable[[], None]) -> None:
    """Fake-internal: run ``op`` on the stream now, or record it when the stream is capturing."""
    stream = _streams[int(stream_handle)]
    if stream.capture is not None:
        stream.capture.append(op)
    else:
        op()


def cudaMemcpyAsync(dst: int, src: int, count: int, kind: cudaMemcpyKind,
                    stream: cudaStream_t) -> tuple[cudaError_t]:
    global _copies
    limit = os.environ.get("FAKE_CUDA_FAIL_AFTER_COPIES")
    if limit is not None and _copies >= int(limit):
        return (cudaError_t.cudaErrorLaunchFailure,)
    _copies += 1
    device_side = dst if kind == cudaMemcpyKind.cudaMemcpyHostToDevice else src
    if int(device_side) not in _memory:
        return (cudaError_t.cudaErrorInvalidValue,)
    ctypes.memmove(int(dst), int(src), int(count))
    return (_ok,)


def cudaEventCreate() -> tuple[cudaError_t, cudaEvent_t | None]:
    if (error := _no_device()) is not None:
        return error, None
    return _ok, cudaEvent_t()


def cudaEventRecord(event: cudaEvent_t, stream: cudaStream_t) -> tuple[cudaError_t]:
    event.t_ns = time.perf_counter_ns()
    return (_ok,)


def cudaEventSynchronize(event: cudaEvent_t) -> tuple[cudaError_t]:
    return (_ok,)


def cudaEventElapsedTime(start: cudaEvent_t, end: cudaEvent_t) -> tuple[cudaError_t, float | None]:
    if start.t_ns is None or end.t_ns is None:
        return cudaError_t.cudaErrorInvalidValue, None
    return _ok, (end.t_ns - start.t_ns) / 1e6


def cudaEventDestroy(event: cudaEvent_t) -> tuple[cudaError_t]:
    return (_ok,)


def cudaStreamBeginCapture(stream: cudaStream_t, mode: cudaStreamCaptureMode) -> tuple[cudaError_t]:
    stream.capture = []
    return (_ok,)


def cudaStreamEndCapture(stream: cudaStream_t) -> tuple[cudaError_t, cudaGraph_t | None]:
    ops, stream.capture = stream.capture, None
    return (_ok, cudaGraph_t(list(ops))) if ops is not None else (cudaError_t.cudaErrorInvalidValue, None)


def cudaGraphInstantiate(graph: cudaGraph_t, flags: int) -> tuple[cudaError_t, cudaGraphExec_t]:
    return _ok, cudaGraphExec_t(list(graph.ops))


def cudaGraphLaunch(graph_exec: cudaGraphExec_t, stream: cudaStream_t) -> tuple[cudaError_t]:
    for op in graph_exec.ops:
        op()
    return (_ok,)


def cudaGraphExecDestroy(graph_exec: cudaGraphExec_t) -> tuple[cudaError_t]:
    return (_ok,)


def cudaGraphDestroy(graph: cudaGraph_t) -> tuple[cudaError_t]:
    return (_ok,)
