"""FAKE ``tensorrt`` Python API, for tests on machines without a GPU (see tests/fakes/README.md).

Follows TensorRT 10.3.0 (JetPack 6), 10.16 and 11.1 as published in github.com/NVIDIA/TensorRT
(tags v10.3.0, v10.16, v11.1: include/NvInfer.h and python/src/infer/pyCore.cpp, pyGraph.cpp);
``FAKE_TRT_VERSION`` (default 10.3.0) picks the generation. 11.x has no ``BuilderFlag.FP16`` (no weak
typing: every network is strongly typed) and no ``EXPLICIT_BATCH``; ``STRONGLY_TYPED`` moved from 1 to
0. A new ``IBuilderConfig`` has ``BuilderFlag.TF32`` set, as the real default ("Enabled by default").
Failure modes follow the real ones: a custom logger that skips ``ILogger.__init__`` is refused,
``Builder``/``Runtime`` raise pybind's ``TypeError: pybind11::init(): factory function returned
nullptr`` when CUDA cannot be initialised, the parser reports per-node ``ParserError`` objects,
``build_serialized_network`` and ``deserialize_cuda_engine`` return None on failure,
``set_timing_cache`` returns False for a cache from another device or TensorRT version unless
``ignore_mismatch``, and wrong argument types raise pybind's TypeError.

A "serialized engine" is a JSON header (TensorRT version, GPU, build flags) plus the ONNX bytes; a
serialized timing cache is a JSON header (TensorRT version, GPU, compute capability) plus an entry
count. ``execute_async_v3`` queues the run on the fake CUDA stream (``cuda.bindings.runtime``): the
outputs are written when the stream reaches it (a synchronisation), never at the call. The run is
that ONNX in ONNX Runtime on the CPU, on the fake CUDA memory. Nodes outside the default ONNX domain
(custom ops without a plugin) are "unsupported", like a real parser without the plugin library.
"""

from __future__ import annotations

import ctypes
import enum
import json
import os

import numpy as np

__version__ = os.environ.get("FAKE_TRT_VERSION", "10.3.0")
_MAJOR = int(__version__.split(".")[0])
_MAGIC = b"FAKETRT\n"
_CACHE_MAGIC = b"FAKETC\n"


class _Severity(enum.IntEnum):
    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class ILogger:
    Severity = _Severity
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = (_Severity.INTERNAL_ERROR, _Severity.ERROR, _Severity.WARNING,
                                                     _Severity.INFO, _Severity.VERBOSE)

    def __init__(self) -> None:
        self._initialised = True

    def log(self, severity: _Severity, msg: str) -> None:
        raise NotImplementedError('Tried to call pure virtual function "ILogger::log"')


class Logger(ILogger):
    def __init__(self, min_severity: _Severity = _Severity.WARNING) -> None:
        super().__init__()
        self.min_severity = min_severity

    def log(self, severity: _Severity, msg: str) -> None:
        if severity <= self.min_severity:
            print(f"[TRT] [{severity.name[0]}] {msg}")


def _check_logger(logger: ILogger) -> None:
    if not getattr(logger, "_initialised", False):
        raise TypeError("tensorrt_bindings.tensorrt.ILogger.__init__() must be called when overriding __init__")


if _MAJOR >= 11:
    BuilderFlag = enum.IntEnum("BuilderFlag", {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "DISABLE_TIMING_CACHE": 5,
                                               "TF32": 6, "SPARSE_WEIGHTS": 7, "DIRECT_IO": 11})
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag", {"STRONGLY_TYPED": 0})
else:
    BuilderFlag = enum.IntEnum("BuilderFlag", {"FP16": 0, "INT8": 1, "DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4,
                                               "DISABLE_TIMING_CACHE": 5, "TF32": 6, "SPARSE_WEIGHTS": 7,
                                               "DIRECT_IO": 11, "BF16": 17})
    NetworkDefinitionCreationFlag = enum.IntEnum("NetworkDefinitionCreationFlag",
                                                 {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
MemoryPoolType = enum.IntEnum("MemoryPoolType", {"WORKSPACE": 0, "DLA_MANAGED_SRAM": 1, "TACTIC_DRAM": 4})
TensorIOMode = enum.IntEnum("TensorIOMode", {"NONE": 0, "INPUT": 1, "OUTPUT": 2})
DataType = enum.IntEnum("DataType", {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "INT64": 8})
ErrorCode = enum.IntEnum("ErrorCode", {"SUCCESS": 0, "INTERNAL_ERROR": 1, "INVALID_GRAPH": 5,
                                       "UNSUPPORTED_NODE": 8, "MODEL_DESERIALIZE_FAILED": 3})
float32, float16 = DataType.FLOAT, DataType.HALF
_NUMPY = {DataType.FLOAT: np.float32, DataType.HALF: np.float16, DataType.INT8: np.int8, DataType.INT32: np.int32,
          DataType.INT64: np.int64, DataType.BOOL: np.bool_, DataType.UINT8: np.uint8}
_ONNX_TO_TRT = {1: DataType.FLOAT, 10: DataType.HALF, 6: DataType.INT32, 7: DataType.INT64}


def nptype(trt_type: DataType) -> type:
    if trt_type not in _NUMPY:
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
    return _NUMPY[trt_type]


def _cudart():
    from cuda.bindings import runtime

    return runtime


def _cuda_ok() -> bool:
    return _cudart().init_error() is None


def _no_cuda(logger: ILogger) -> None:
    code = int(_cudart().init_error())  # 35 without a (recent enough) driver, 100 with a driver and no GPU
    logger.log(_Severity.WARNING, f"CUDA initialization failure with error: {code}. Please check your CUDA "
                                  f"installation:  http://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html")
    raise TypeError("pybind11::init(): factory function returned nullptr")


def _device_identity() -> dict:
    gpu = _cudart().cudaGetDeviceProperties(0)[1]
    return {"tensorrt": __version__, "gpu": gpu.name.decode(), "cc": f"{gpu.major}.{gpu.minor}"}


class ParserError:
    def __init__(self, code: ErrorCode, desc: str, node: int = -1, node_name: str = "", node_operator: str = ""):
        self._code, self._desc, self._node, self._name, self._op = code, desc, node, node_name, node_operator

    def code(self) -> ErrorCode:
        return self._code

    def desc(self) -> str:
        return self._desc

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def file(self) -> str:
        return "ModelImporter.cpp"

    def func(self) -> str:
        return "parseGraph"

    def line(self) -> int:
        return 0


class INetworkDefinition:
    def __init__(self, flags: int) -> None:
        self.flags = flags
        self.onnx: bytes | None = None


class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None:
        _check_logger(logger)
        self.network = network
        self._errors: list[ParserError] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors = []

    def parse_from_file(self, model: str) -> bool:
        import onnx

        try:
            proto = onnx.load(model)
        except Exception as exc:  # onnx raises DecodeError / OSError
            self._errors.append(ParserError(ErrorCode.MODEL_DESERIALIZE_FAILED, f"Failed to parse ONNX model: {exc}"))
            return False
        for index, node in enumerate(proto.graph.node):
            if node.domain not in ("", "ai.onnx"):
                self._errors.append(ParserError(
                    ErrorCode.UNSUPPORTED_NODE, f"No importer registered for op: {node.op_type}. Attempting to import "
                    f"as plugin. Plugin creator not found.", index, node.name, node.op_type))
        if self._errors:
            return False
        self.network.onnx = proto.SerializeToString()
        return True


class ITimingCache:
    def __init__(self, identity: dict, entries: int) -> None:
        self.identity = identity
        self.entries = entries

    def serialize(self) -> bytes:
        # ITimingCache.serialize: the cache with its verification header (TensorRT version, device properties)
        return _CACHE_MAGIC + json.dumps(self.identity).encode() + b"\n" + str(self.entries).encode()


class IBuilderConfig:
    def __init__(self, logger: ILogger) -> None:
        self._logger = logger
        self.flags = 1 << int(BuilderFlag.TF32)  # NvInfer.h BuilderFlag::kTF32: "Enabled by default"
        self.pools: dict[int, int] = {}
        self.builder_optimization_level = 3
        self._cache: ITimingCache | None = None

    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None:
        self.pools[int(_member(MemoryPoolType, pool))] = int(pool_size)

    def set_flag(self, flag: BuilderFlag) -> None:
        # pyCore.cpp IBuilderConfig.set_flag -> IBuilderConfig::setFlag
        self.flags |= 1 << int(_member(BuilderFlag, flag))

    def clear_flag(self, flag: BuilderFlag) -> None:
        # pyCore.cpp IBuilderConfig.clear_flag -> IBuilderConfig::clearFlag
        self.flags &= ~(1 << int(_member(BuilderFlag, flag)))

    def get_flag(self, flag: BuilderFlag) -> bool:
        # pyCore.cpp IBuilderConfig.get_flag -> IBuilderConfig::getFlag
        return bool(self.flags & (1 << int(_member(BuilderFlag, flag))))

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache | None:
        # pyCore.cpp netconfig_create_timing_cache: size 0 = a new cache; an unreadable blob gives nullptr (None)
        data = bytes(memoryview(serialized_timing_cache))
        if not data:
            return ITimingCache(_device_identity(), 0)
        header, _, entries = data[len(_CACHE_MAGIC):].partition(b"\n")
        try:
            if not data.startswith(_CACHE_MAGIC):
                raise ValueError("bad magic")
            return ITimingCache(json.loads(header), int(entries))
        except ValueError:
            self._logger.log(_Severity.ERROR, "Error Code 1: Serialization (Serialization assertion "
                                              "magicTag == kMAGIC_TAG failed.)")
            return None

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        # NvInfer.h IBuilderConfig::setTimingCache: "A failure will be reported if the CUDA device property in
        # the provided cache is different from current environment"; returns false then (pybind: bool)
        if not isinstance(cache, ITimingCache) or not isinstance(ignore_mismatch, bool):
            raise TypeError("set_timing_cache(): incompatible function arguments. The following argument types are "
                            "supported:\n    1. (self: tensorrt.IBuilderConfig, cache: tensorrt.ITimingCache, "
                            "ignore_mismatch: bool) -> bool")
        if cache.identity != _device_identity() and not ignore_mismatch:
            return False
        self._cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return self._cache


def _member(kind: type[enum.IntEnum], value: object) -> enum.IntEnum:
    """pybind11 enums accept only their own members: a plain int raises TypeError (incompatible arguments)."""
    if not isinstance(value, kind):
        raise TypeError(f"incompatible function arguments: expected tensorrt.{kind.__name__}, got {value!r}")
    return value


class Builder:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger)
        if not _cuda_ok():
            _no_cuda(logger)
        self.logger = logger

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(flags)

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig(self.logger)

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> bytes | None:
        if network.onnx is None:
            self.logger.log(_Severity.ERROR, "Network must have at least one output")
            return None
        if config.pools.get(int(MemoryPoolType.WORKSPACE), 1 << 40) < 1 << 20:
            self.logger.log(_Severity.ERROR, "Could not find any implementation for node, try increasing the "
                                             "workspace size with IBuilderConfig::setMemoryPoolLimit().")
            return None
        if config._cache is not None:
            config._cache.entries += 1
        header = {**_device_identity(), "network_flags": network.flags, "builder_flags": config.flags,
                  "workspace": config.pools.get(int(MemoryPoolType.WORKSPACE))}
        return _MAGIC + json.dumps(header).encode() + b"\n" + network.onnx


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.addresses: dict[str, int] = {}

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self.addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        # IExecutionContext::enqueueV3: asynchronous; the outputs are ready only once the stream has reached it
        if set(self.addresses) != set(self.engine._io):
            return False
        return _cudart().submit(stream_handle, self._run)

    def _run(self) -> None:
        feeds = {}
        for name, (mode, shape, dtype) in self.engine._io.items():
            if mode == TensorIOMode.INPUT:
                size = int(np.prod(shape)) * np.dtype(nptype(dtype)).itemsize
                raw = (ctypes.c_char * size).from_address(self.addresses[name])
                feeds[name] = np.frombuffer(raw, dtype=nptype(dtype)).reshape(shape).copy()
        outputs = self.engine._session.run(None, feeds)
        for (name, _), value in zip(self.engine._outputs, outputs, strict=True):
            data = np.ascontiguousarray(value.astype(nptype(self.engine._io[name][2])))
            ctypes.memmove(self.addresses[name], data.ctypes.data, data.nbytes)


class ICudaEngine:
    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self._session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
        self._io: dict[str, tuple[TensorIOMode, tuple[int, ...], DataType]] = {}
        self._outputs = []
        import onnx

        proto = onnx.load_from_string(onnx_bytes)
        for mode, values in ((TensorIOMode.INPUT, proto.graph.input), (TensorIOMode.OUTPUT, proto.graph.output)):
            for value in values:
                tensor = value.type.tensor_type
                shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
                self._io[value.name] = (mode, shape, _ONNX_TO_TRT[tensor.elem_type])
                if mode == TensorIOMode.OUTPUT:
                    self._outputs.append((value.name, shape))

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return list(self._io)[index]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return self._io[name][0]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return self._io[name][1]

    def get_tensor_dtype(self, name: str) -> DataType:
        return self._io[name][2]

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)


class Runtime:
    def __init__(self, logger: ILogger) -> None:
        _check_logger(logger)
        if not _cuda_ok():
            _no_cuda(logger)
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> ICudaEngine | None:
        data = bytes(serialized_engine)
        if not data.startswith(_MAGIC):
            self.logger.log(_Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 1: Serialization "
                                             "(Serialization assertion magicTagRead == kMAGIC_TAG failed.)")
            return None
        header_line, _, onnx_bytes = data[len(_MAGIC):].partition(b"\n")
        header = json.loads(header_line)
        gpu = _cudart().cudaGetDeviceProperties(0)[1]
        if header["tensorrt"] != __version__ or header["cc"] != f"{gpu.major}.{gpu.minor}":
            self.logger.log(_Severity.ERROR, "IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error "
                                             "(The engine plan file is not compatible with this version of TensorRT "
                                             "or this GPU)")
            return None
        return ICudaEngine(onnx_bytes)


def engine_header(path: str) -> dict:
    """Test helper (not TensorRT API): the build settings a fake engine file records."""
    with open(path, "rb") as handle:
        data = handle.read()
    return json.loads(data[len(_MAGIC):].partition(b"\n")[0])
