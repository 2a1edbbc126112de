"""Running a serialized TensorRT engine: device buffers, one stream, CUDA-event timing.

Each inference copies the input to the device, records a CUDA event, enqueues the engine with
``execute_async_v3`` (or replays it as a captured CUDA graph), records a second event, copies
the outputs back and synchronises the stream before the outputs are read: every step is
asynchronous, so the host buffers hold the results only after that synchronisation. ``device_ms``
is the time between the two events: the GPU's compute time for the engine alone, as trtexec's
"GPU Compute Time". The runner's host-clock ``latency_ms`` spans the whole call, copies and synchronisation included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.devices.base import InferenceResult, Session
from bench.devices.tensorrt.cuda_runtime import Cuda
from bench.errors import BadInput, DeviceFailure, cleanup


class EngineLoadFailed(DeviceFailure):
    """The engine file cannot be deserialized here (corrupt, or built by another TensorRT or GPU)."""


@dataclass
class Binding:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    host: np.ndarray
    device: int


class TensorRTSession(Session):
    def __init__(self, trt: Any, cuda: Cuda, engine_bytes: bytes, source: str, cuda_graph: bool = False) -> None:
        self.trt = trt
        self.cuda = cuda
        self._logger = trt.Logger(trt.Logger.WARNING)
        try:
            self._runtime = trt.Runtime(self._logger)
        except TypeError as exc:  # pybind's "factory function returned nullptr"
            raise EngineLoadFailed(f"{source}: TensorRT {trt.__version__} could not create a runtime "
                                   f"(no usable CUDA device?): {exc}") from exc
        self._engine = self._runtime.deserialize_cuda_engine(engine_bytes)
        if self._engine is None:
            raise EngineLoadFailed(f"{source}: TensorRT {trt.__version__} cannot deserialize this engine "
                                   f"(built by another TensorRT version or GPU, or the file is damaged)")
        self._context = self._engine.create_execution_context()
        self.inputs: list[Binding] = []
        self.outputs: list[Binding] = []
        self._stream = self._start = self._end = self._graph = self._graph_exec = None
        try:
            self._allocate()
            self._stream = cuda.stream()
            self._start, self._end = cuda.event(), cuda.event()
            if cuda_graph:
                self._capture()
        except BaseException:
            with cleanup("closing the TensorRT session"):
                self.close()
            raise

    def _allocate(self) -> None:
        engine = self._engine
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            shape = tuple(int(d) for d in engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise BadInput(f"engine tensor '{name}' has a dynamic shape {shape}; export the model at a fixed "
                               f"batch size")
            dtype = np.dtype(self.trt.nptype(engine.get_tensor_dtype(name)))
            host = np.zeros(shape, dtype=dtype)
            binding = Binding(name, shape, dtype, host, self.cuda.malloc(max(host.nbytes, 1)))
            self._context.set_tensor_address(name, binding.device)
            is_input = engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(binding)
        if len(self.inputs) != 1:
            raise BadInput(f"the engine has {len(self.inputs)} inputs; the harness feeds exactly one image tensor")

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream_handle()):
            raise DeviceFailure(f"TensorRT {self.trt.__version__} execute_async_v3 returned False (see the "
                                f"TensorRT log)")

    def _stream_handle(self) -> int:
        return int(self._stream)

    def _capture(self) -> None:
        """Enqueue once (TensorRT allocates lazily on the first run), then capture an enqueue as a graph.

        Nothing inside the capture may synchronise (CUDA refuses and invalidates the capture); when the
        captured enqueue fails, ending the capture fails too, and the enqueue's error is the one raised.
        """
        self._enqueue()
        self.cuda.synchronize(self._stream)
        self.cuda.begin_capture(self._stream)
        try:
            self._enqueue()
        finally:
            with cleanup("ending the CUDA graph capture"):
                self._graph, self._graph_exec = self.cuda.end_capture(self._stream)

    def infer(self, batch: np.ndarray) -> InferenceResult:
        binding = self.inputs[0]
        if tuple(batch.shape) != binding.shape:
            raise BadInput(f"input shape {tuple(batch.shape)} does not match the engine's {binding.shape}")
        np.copyto(binding.host, batch, casting="same_kind")
        self.cuda.to_device(binding.device, binding.host, self._stream)
        self.cuda.record(self._start, self._stream)
        if self._graph_exec is not None:
            self.cuda.launch(self._graph_exec, self._stream)
        else:
            self._enqueue()
        self.cuda.record(self._end, self._stream)
        for out in self.outputs:
            self.cuda.to_host(out.host, out.device, self._stream)
        self.cuda.synchronize(self._stream)
        outputs = {out.name: out.host.astype(np.float32, copy=True) for out in self.outputs}
        return InferenceResult(outputs, self.cuda.elapsed_ms(self._start, self._end))

    def _close(self) -> None:
        """Synchronise, then release every handle even when a step fails (a lost device fails them all);
        the first failure is raised once everything has been attempted."""
        stream = self._stream
        releases = [("cudaGraphExecDestroy", self._graph_exec), ("cudaGraphDestroy", self._graph),
                    ("cudaEventDestroy", self._start), ("cudaEventDestroy", self._end),
                    ("cudaStreamDestroy", stream)]
        releases += [("cudaFree", binding.device) for binding in self.inputs + self.outputs]
        self.inputs, self.outputs = [], []
        self._stream = self._start = self._end = self._graph = self._graph_exec = None
        first: BaseException | None = None
        if stream is not None:
            try:
                self.cuda.synchronize(stream)
            except BaseException as error:
                first = error
        for call, handle in releases:
            try:
                self.cuda.release(call, handle)
            except BaseException as error:
                first = first or error
        self._context = self._engine = None
        if first is not None:
            raise first
