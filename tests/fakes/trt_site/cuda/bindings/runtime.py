"""FAKE ``cuda.bindings.runtime``, following cuda-bindings 13.5.0 (cuda-python 13.x), for tests without a GPU.

Checked against the real wheel (cuda_bindings-13.5.0-cp311 manylinux, imported on a machine with no
driver) and its docstrings: every call returns a tuple ``(cudaError_t, *outputs)``; handles are
objects whose ``int()`` is the raw pointer; ``cudaDeviceProp.name`` is bytes; ``cudaGetErrorString``
returns ``(cudaSuccess, bytes)``; ``cudaRuntimeGetVersion`` returns 13050; with no driver
``cudaDriverGetVersion`` returns ``(cudaSuccess, 0)`` and every device call
``cudaErrorInsufficientDriver`` (35), not ``cudaErrorNoDevice``.

Streams are in order and asynchronous: memcpy, event records and kernels (``submit``, what the fake
TensorRT's ``execute_async_v3`` calls) are queued on the stream and run only when the stream is
synchronised, an event recorded after them is synchronised, or a later ``cudaMemcpyAsync`` reads them
back -- never at once. A copy between device and pageable host memory "might be synchronous" (CUDA
Runtime API, API synchronization behavior), so a caller cannot rely on it; the fake reads the host
source and writes the host destination when the stream reaches the copy, not at the call. A capturing
stream records every operation into the graph instead of queueing it; ``cudaGraphLaunch`` queues the
graph's operations. Synchronising a capturing stream (or an event recorded into a capture) returns
``cudaErrorStreamCaptureUnsupported`` and invalidates the capture, so ``cudaStreamEndCapture`` then
returns ``cudaErrorStreamCaptureInvalidated`` and no graph (CUDA Programming Guide, stream capture,
"Prohibited and Unhandled Operations" and "Invalidation"). "Device" memory is host memory (ctypes
buffers) so the fake TensorRT engine can read its inputs from it.

Environment knobs (fault injection): ``FAKE_CUDA_DRIVER`` (the driver's CUDA version as
``cudaDriverGetVersion`` reports it, default 13050; 0 = no driver; below 13000 the CUDA 13 runtime
refuses it with cudaErrorInsufficientDriver), ``FAKE_CUDA_DEVICES`` (default 1; 0 with a driver gives
cudaErrorNoDevice), ``FAKE_CUDA_GPU`` (device name, default "Orin"), ``FAKE_CUDA_CC`` (compute
capability, default 8.7), ``FAKE_CUDA_FAIL_AFTER_COPIES`` (copies that succeed before every later one
returns cudaErrorLaunchFailure, as when a device drops mid-run), ``FAKE_CUDA_FAIL_SYNC`` (set: every
cudaStreamSynchronize returns cudaErrorLaunchFailure, the sticky error of a kernel that faulted).
"""

from __future__ import annotations

import ctypes
import enum
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CUDA_RUNTIME_VERSION = 13050  # cuda-bindings 13.5.0: cudaRuntimeGetVersion() -> (cudaSuccess, 13050)
_MIN_DRIVER = 13000  # a CUDA 13.x runtime needs a CUDA 13 (580-class) driver


class cudaError_t(enum.IntEnum):  # values as in cuda-bindings 13.5.0 runtime.cudaError_t
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidResourceHandle = 400
    cudaErrorNotReady = 600
    cudaErrorLaunchFailure = 719
    cudaErrorStreamCaptureUnsupported = 900
    cudaErrorStreamCaptureInvalidated = 901


_STRINGS = {  # cudaGetErrorString's texts in cuda-bindings 13.5.0
    cudaError_t.cudaSuccess: b"no error",
    cudaError_t.cudaErrorInvalidValue: b"invalid argument",
    cudaError_t.cudaErrorMemoryAllocation: b"out of memory",
    cudaError_t.cudaErrorInsufficientDriver: b"CUDA driver version is insufficient for CUDA runtime version",
    cudaError_t.cudaErrorNoDevice: b"no CUDA-capable device is detected",
    cudaError_t.cudaErrorInvalidResourceHandle: b"invalid resource handle",
    cudaError_t.cudaErrorNotReady: b"device not ready",
    cudaError_t.cudaErrorLaunchFailure: b"unspecified launch failure",
    cudaError_t.cudaErrorStreamCaptureUnsupported: b"operation not permitted when stream is capturing",
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


class cudaStreamCaptureStatus(enum.IntEnum):
    cudaStreamCaptureStatusNone = 0
    cudaStreamCaptureStatusActive = 1
    cudaStreamCaptureStatusInvalidated = 2


_ids = itertools.count(0x7F0000001000, 0x100)
_Op = Callable[[], None]


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
        self.pending: list[_Op] = []
        self.capture: list[_Op] | None = None
        self.capture_invalidated = False


class cudaEvent_t(_Handle):
    def __init__(self) -> None:
        super().__init__()
        self.recorded = False
        self.t_ns: int | None = None  # set when the stream reaches the record
        self.marker: _Op | None = None
        self.stream: cudaStream_t | None = None
        self.in_capture = False


@dataclass
class cudaGraph_t:
    ops: list[_Op] = field(default_factory=list)


@dataclass
class cudaGraphExec_t:
    ops: list[_Op] = field(default_factory=list)


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


def _driver() -> int:
    return int(os.environ.get("FAKE_CUDA_DRIVER", str(CUDA_RUNTIME_VERSION)))


def _devices() -> int:
    return int(os.environ.get("FAKE_CUDA_DEVICES", "1"))


def _init_error() -> cudaError_t | None:
    """What the first device call fails with: no or an old driver, then no GPU (the real runtime's order)."""
    if _driver() < _MIN_DRIVER:
        return cudaError_t.cudaErrorInsufficientDriver
    return cudaError_t.cudaErrorNoDevice if _devices() == 0 else None


def init_error() -> cudaError_t | None:
    """Test helper (not a CUDA call): the error the fake TensorRT's CUDA initialisation reports."""
    return _init_error()


def cudaGetErrorString(error: cudaError_t) -> tuple[cudaError_t, bytes]:
    return _ok, _STRINGS.get(error, b"unknown error")


def cudaRuntimeGetVersion() -> tuple[cudaError_t, int]:
    # cuda-bindings 13.5.0 runtime.cudaRuntimeGetVersion: (cudaSuccess, 13050), with or without a driver
    return _ok, CUDA_RUNTIME_VERSION


def cudaDriverGetVersion() -> tuple[cudaError_t, int]:
    # runtime.cudaDriverGetVersion: (cudaSuccess, 0) when no driver is installed
    return _ok, max(_driver(), 0)


def cudaGetDeviceCount() -> tuple[cudaError_t, int | None]:
    # runtime.cudaGetDeviceCount: (cudaErrorInsufficientDriver, None) with no driver
    error = _init_error()
    return (error, None) if error is not None else (_ok, _devices())


def cudaSetDevice(device: int) -> tuple[cudaError_t]:
    if (error := _init_error()) is not None:
        return (error,)
    return (cudaError_t.cudaErrorInvalidValue,) if device >= _devices() else (_ok,)


def cudaGetDeviceProperties(device: int) -> tuple[cudaError_t, cudaDeviceProp | None]:
    # runtime.cudaGetDeviceProperties(int device) -> (err, cudaDeviceProp); name is bytes
    if (error := _init_error()) is not None:
        return error, None
    if device >= _devices():
        return cudaError_t.cudaErrorInvalidValue, None
    major, minor = os.environ.get("FAKE_CUDA_CC", "8.7").split(".")
    return _ok, cudaDeviceProp(os.environ.get("FAKE_CUDA_GPU", "Orin").encode(), int(major), int(minor), 8 << 30)


def cudaMalloc(size: int) -> tuple[cudaError_t, int | None]:
    if (error := _init_error()) is not None:
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
    if (error := _init_error()) is not None:
        return error, None
    stream = cudaStream_t()
    _streams[int(stream)] = stream
    return _ok, stream


def cudaStreamDestroy(stream: cudaStream_t) -> tuple[cudaError_t]:
    # cudaStreamDestroy: work still queued completes before the stream's resources are released
    _run(stream)
    _streams.pop(int(stream), None)
    return (_ok,)


def _stream(handle: object) -> cudaStream_t | None:
    return _streams.get(int(handle))  # type: ignore[call-overload]


def _run(stream: cudaStream_t, upto: _Op | None = None) -> None:
    """Run the stream's queued work in order, all of it or through ``upto``."""
    while stream.pending:
        op = stream.pending.pop(0)
        op()
        if op is upto:
            return


def _enqueue(stream: cudaStream_t, op: _Op) -> None:
    (stream.capture if stream.capture is not None else stream.pending).append(op)


def _invalidate(stream: cudaStream_t) -> cudaError_t:
    stream.capture_invalidated = True
    return cudaError_t.cudaErrorStreamCaptureUnsupported


def cudaStreamSynchronize(stream: cudaStream_t) -> tuple[cudaError_t]:
    # runtime.cudaStreamSynchronize; on a capturing stream the call is prohibited and invalidates the capture
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    if target.capture is not None:
        return (_invalidate(target),)
    _run(target)
    if os.environ.get("FAKE_CUDA_FAIL_SYNC"):
        return (cudaError_t.cudaErrorLaunchFailure,)
    return (_ok,)


def cudaStreamIsCapturing(stream: cudaStream_t) -> tuple[cudaError_t, cudaStreamCaptureStatus | None]:
    target = _stream(stream)
    if target is None:
        return cudaError_t.cudaErrorInvalidResourceHandle, None
    if target.capture is None:
        return _ok, cudaStreamCaptureStatus.cudaStreamCaptureStatusNone
    if target.capture_invalidated:
        return _ok, cudaStreamCaptureStatus.cudaStreamCaptureStatusInvalidated
    return _ok, cudaStreamCaptureStatus.cudaStreamCaptureStatusActive


def submit(stream_handle: int, op: _Op) -> bool:
    """Fake-internal (the fake TensorRT's kernel launch): queue ``op`` on the stream, or record it into the
    stream's capture. False for an unknown stream handle."""
    stream = _stream(stream_handle)
    if stream is None:
        return False
    _enqueue(stream, op)
    return True


def cudaMemcpyAsync(dst: int, src: int, count: int, kind: cudaMemcpyKind,
                    stream: cudaStream_t) -> tuple[cudaError_t]:
    # runtime.cudaMemcpyAsync(dst, src, size_t count, kind, stream): queued in stream order
    global _copies
    limit = os.environ.get("FAKE_CUDA_FAIL_AFTER_COPIES")
    if limit is not None and _copies >= int(limit):
        return (cudaError_t.cudaErrorLaunchFailure,)
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)
    _copies += 1
    device_side = dst if kind == cudaMemcpyKind.cudaMemcpyHostToDevice else src
    if int(device_side) not in _memory:
        return (cudaError_t.cudaErrorInvalidValue,)
    destination, source, size = int(dst), int(src), int(count)
    _enqueue(target, lambda: ctypes.memmove(destination, source, size))
    return (_ok,)


def cudaEventCreate() -> tuple[cudaError_t, cudaEvent_t | None]:
    if (error := _init_error()) is not None:
        return error, None
    return _ok, cudaEvent_t()


def cudaEventRecord(event: cudaEvent_t, stream: cudaStream_t) -> tuple[cudaError_t]:
    # runtime.cudaEventRecord: captures the stream's work so far; the timestamp is taken when it is reached
    target = _stream(stream)
    if target is None:
        return (cudaError_t.cudaErrorInvalidResourceHandle,)

    def reached() -> None:
        event.t_ns = time.perf_counter_ns()

    event.recorded, event.t_ns, event.marker, event.stream = True, None, reached, target
    event.in_capture = target.capture is not None
    _enqueue(target, reached)
    return (_ok,)


def cudaEventSynchronize(event: cudaEvent_t) -> tuple[cudaError_t]:
    # runtime.cudaEventSynchronize: waits for the work the event captured; prohibited on a captured event
    if event.in_capture and event.stream is not None and event.stream.capture is not None:
        return (_invalidate(event.stream),)
    if event.stream is not None and event.marker in event.stream.pending:
        _run(event.stream, upto=event.marker)
    return (_ok,)


def cudaEventElapsedTime(start: cudaEvent_t, end: cudaEvent_t) -> tuple[cudaError_t, float | None]:
    # runtime.cudaEventElapsedTime: never recorded -> InvalidResourceHandle; recorded, not reached -> NotReady
    if not (start.recorded and end.recorded):
        return cudaError_t.cudaErrorInvalidResourceHandle, None
    if start.t_ns is None or end.t_ns is None:
        return cudaError_t.cudaErrorNotReady, None
    return _ok, (end.t_ns - start.t_ns) / 1e6


def cudaEventDestroy(event: cudaEvent_t) -> tuple[cudaError_t]:
    return (_ok,)


def cudaStreamBeginCapture(stream: cudaStream_t, mode: cudaStreamCaptureMode) -> tuple[cudaError_t]:
    # runtime.cudaStreamBeginCapture: only on a stream that is not already capturing
    target = _stream(stream)
    if target is None or target.capture is not None:
        return (cudaError_t.cudaErrorInvalidValue,)
    target.capture, target.capture_invalidated = [], False
    return (_ok,)


def cudaStreamEndCapture(stream: cudaStream_t) -> tuple[cudaError_t, cudaGraph_t | None]:
    # runtime.cudaStreamEndCapture: an invalidated capture returns no graph (cudaErrorStreamCaptureInvalidated)
    target = _stream(stream)
    if target is None or target.capture is None:
        return cudaError_t.cudaErrorInvalidValue, None
    ops, invalidated = target.capture, target.capture_invalidated
    target.capture, target.capture_invalidated = None, False
    if invalidated:
        return cudaError_t.cudaErrorStreamCaptureInvalidated, None
    return _ok, cudaGraph_t(list(ops))


def cudaGraphInstantiate(graph: cudaGraph_t, flags: int) -> tuple[cudaError_t, cudaGraphExec_t | None]:
    # runtime.cudaGraphInstantiate(graph, unsigned long long flags) -> (err, pGraphExec)
    if not isinstance(graph, cudaGraph_t):
        return cudaError_t.cudaErrorInvalidValue, None
    return _ok, cudaGraphExec_t(list(graph.ops))


def cudaGraphLaunch(graph_exec: cudaGraphExec_t, stream: cudaStream_t) -> tuple[cudaError_t]:
    # runtime.cudaGraphLaunch: the graph's work is queued on the stream, like any other launch
    target = _stream(stream)
    if target is None or not isinstance(graph_exec, cudaGraphExec_t):
        return (cudaError_t.cudaErrorInvalidValue,)
    for op in graph_exec.ops:
        _enqueue(target, op)
    return (_ok,)


def cudaGraphExecDestroy(graph_exec: cudaGraphExec_t) -> tuple[cudaError_t]:
    return (_ok,)


def cudaGraphDestroy(graph: cudaGraph_t) -> tuple[cudaError_t]:
    return (_ok,)
