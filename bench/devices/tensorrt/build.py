"""Building a TensorRT engine from the exported ONNX, through TensorRT's Python API.

The build mode is decided once (``build_mode``) and drives both the build and its label:

* ``fp32``: no precision flag, and ``BuilderFlag.TF32`` cleared -- it is on by default (NvInfer.h), so
  an "fp32" engine would otherwise round matrix-multiply inputs to TF32 on Ampere-or-newer GPUs and Orin.
* ``builder_flag`` (TensorRT 10.x; JetPack 6 ships 10.3): a weakly typed network with
  ``BuilderFlag.FP16``, so the builder may pick FP16 kernels per layer.
* ``strongly_typed`` (TensorRT 11 and later): precision flags and weak typing are gone, so the ONNX
  is converted to FP16 first (``bench.devices.emulation.fp16`` with the TensorRT policy, IO kept FP32)
  and built as a strongly typed network. The ONNX handed over must really hold FLOAT16 tensors
  (checked here): otherwise the engine would be FP32 under an fp16 label.

The builder flags actually set are read back and recorded. The timing cache is loaded before and
written back after every build, so rebuilding on the same GPU and TensorRT version skips kernel
auto-tuning; a cache TensorRT rejects (another device or version) is recorded and replaced by a
fresh one. Parser and builder failures carry TensorRT's own messages.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BadInput, DeviceFailure
from bench.records.atomic import replace_atomically

MIN_MAJOR = 10


class EngineBuildFailed(DeviceFailure):
    """TensorRT could not parse the ONNX or build an engine; the message carries TensorRT's reasons."""


def parse_version(version: str) -> tuple[int, int, int]:
    """``10.3.0.30`` -> (10, 3, 0); anything unparsable is a clear error, not a guess."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(version))
    if match is None:
        raise BadInput(f"cannot read the TensorRT version '{version}'")
    return int(match[1]), int(match[2]), int(match[3] or 0)


BUILD_MODES = ("fp32", "builder_flag", "strongly_typed")


def build_mode(version: str, precision: str, jetson: bool = False) -> str:
    """The one place the build mode is chosen: ``fp32``, ``builder_flag`` (FP16 on 10.x, weak typing) or
    ``strongly_typed`` (FP16 on 11+, from an FP16 ONNX).

    TensorRT 11 does not support JetPack: Jetson boards run JetPack 6, whose TensorRT is 10.3, so a
    Jetson profile (``jetson``) that finds TensorRT 11 or newer is refused rather than built.
    """
    major = parse_version(version)[0]
    if major < MIN_MAJOR:
        raise BadInput(f"TensorRT {version} is too old: the adapter needs TensorRT {MIN_MAJOR} or newer "
                       f"(JetPack 6 or later)")
    if jetson and major > MIN_MAJOR:
        raise BadInput(f"TensorRT {version} on a Jetson: TensorRT 11 does not support JetPack; Jetson boards run "
                       f"JetPack 6 with TensorRT 10.3 (install JetPack's python3-libnvinfer, not the pip wheel)")
    if precision == "fp32":
        return "fp32"
    return "builder_flag" if major == MIN_MAJOR else "strongly_typed"


def fp16_tensors(onnx_path: Path) -> int:
    """How many FLOAT16 tensors the graph declares: initializers, typed values, Casts and Constants to FP16."""
    import onnx
    from onnx import TensorProto

    half = TensorProto.FLOAT16
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    values = [*graph.input, *graph.output, *graph.value_info]
    count = sum(init.data_type == half for init in graph.initializer)
    count += sum(value.type.tensor_type.elem_type == half for value in values)
    for node in graph.node:
        casts = node.op_type == "Cast" and any(a.name == "to" and a.i == half for a in node.attribute)
        constant = node.op_type == "Constant" and any(a.name == "value" and a.t.data_type == half
                                                      for a in node.attribute)
        count += casts or constant
    return count


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps warnings and errors, so a failed build can say why."""

    class CapturingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR, trt.ILogger.WARNING):
                self.messages.append((getattr(severity, "name", str(severity)), msg))

        def errors(self) -> list[str]:
            return [msg for level, msg in self.messages if level != "WARNING"]

        def warnings(self) -> list[str]:
            return [msg for level, msg in self.messages if level == "WARNING"]

    return CapturingLogger()


@dataclass(frozen=True)
class BuildSettings:
    """``mode`` is ``build_mode``'s answer; the build does not decide it again."""

    mode: str = "builder_flag"
    workspace_mib: int = 1024
    builder_optimization_level: int | None = None
    timing_cache: Path | None = None


@dataclass
class BuildReport:
    """What the build did, recorded in the artifact's details."""

    tensorrt: str
    mode: str
    workspace_mib: int
    build_s: float
    timing_cache: str | None
    timing_cache_loaded_bytes: int
    timing_cache_rejected: bool
    builder_flags: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"tensorrt": self.tensorrt, "build_mode": self.mode,
                "fp16_mode": None if self.mode == "fp32" else self.mode, "builder_flags": self.builder_flags,
                "tf32": "TF32" in self.builder_flags, "workspace_mib": self.workspace_mib,
                "build_s": round(self.build_s, 3), "timing_cache": self.timing_cache,
                "timing_cache_loaded_bytes": self.timing_cache_loaded_bytes,
                "timing_cache_rejected": self.timing_cache_rejected, "warnings": self.warnings[:20]}


def _parser_errors(parser: Any) -> list[str]:
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = f" at node {error.node_name()} ({error.node_operator()})" if error.node_name() else ""
        errors.append(f"{error.desc()}{where}")
    return errors


def _load_timing_cache(config: Any, path: Path | None) -> tuple[int, bool]:
    """Attach the cache at ``path`` (or a fresh one): (bytes loaded, whether TensorRT rejected the file).

    ``set_timing_cache`` returns False when the cache's device properties differ from this GPU's; the
    build then runs with a fresh cache, and the rejected bytes do not count as loaded.
    """
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data) if data else None
    if cache is not None and config.set_timing_cache(cache, False):
        return len(data), False
    if not config.set_timing_cache(config.create_timing_cache(b""), False):
        raise EngineBuildFailed("TensorRT refused a fresh timing cache (set_timing_cache returned False)")
    return 0, bool(data)


def _flags_set(trt: Any, config: Any) -> list[str]:
    """The names of the builder flags the config holds, read back over the members this TensorRT has."""
    return sorted(name for name, flag in trt.BuilderFlag.__members__.items() if config.get_flag(flag))


def _save_timing_cache(config: Any, path: Path | None) -> None:
    if path is None:
        return
    cache = config.get_timing_cache()
    if cache is None:
        return
    blob = bytes(cache.serialize())
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda tmp: tmp.write_bytes(blob))


def build_engine(trt: Any, onnx_path: Path, engine_path: Path, settings: BuildSettings) -> BuildReport:
    """Parse ``onnx_path`` and write a serialized engine to ``engine_path`` in ``settings.mode``.

    ``trt`` is the imported ``tensorrt`` module (passed in so the adapter decides where it comes
    from). For ``strongly_typed``, ``onnx_path`` must be the FP16-converted graph (checked).
    """
    version = str(trt.__version__)
    mode = settings.mode
    if mode not in BUILD_MODES:
        raise BadInput(f"unknown TensorRT build mode '{mode}' (one of {', '.join(BUILD_MODES)})")
    if mode == "builder_flag" and not hasattr(trt.BuilderFlag, "FP16"):
        raise BadInput(f"TensorRT {version} has no BuilderFlag.FP16 (no weak typing since TensorRT 11): "
                       f"FP16 needs the strongly typed build from an FP16 ONNX")
    if mode == "strongly_typed" and fp16_tensors(onnx_path) == 0:
        raise BadInput(f"{onnx_path}: holds no FLOAT16 tensor, so TensorRT {version}'s strongly typed build would "
                       f"make an FP32 engine labelled fp16 (the FP16 conversion converted nothing)")
    logger = make_logger(trt)
    started = time.perf_counter()
    try:
        builder = trt.Builder(logger)
    except TypeError as exc:  # pybind's "factory function returned nullptr": CUDA could not be initialised
        said = "; ".join(msg for _, msg in logger.messages) or str(exc)
        raise EngineBuildFailed(f"TensorRT {version} could not create a builder (no usable CUDA device?): "
                                f"{said}") from exc
    network_flags = 0
    if mode == "strongly_typed":
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        problems = _parser_errors(parser) or logger.errors() or ["no reason given"]
        raise EngineBuildFailed(f"{onnx_path}: TensorRT {version}'s ONNX parser failed: {'; '.join(problems)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_mib) << 20)
    if mode == "builder_flag":
        config.set_flag(trt.BuilderFlag.FP16)
    elif mode == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # set by default: an fp32 baseline must be IEEE FP32
    if settings.builder_optimization_level is not None:
        config.builder_optimization_level = int(settings.builder_optimization_level)
    flags = _flags_set(trt, config)
    loaded, rejected = _load_timing_cache(config, settings.timing_cache)
    warnings = [f"timing cache {settings.timing_cache} was rejected (damaged, or from another GPU or TensorRT "
                f"version): built with a fresh cache"] if rejected else []
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reasons = "; ".join(logger.errors()) or "no reason given"
        raise EngineBuildFailed(f"{onnx_path}: TensorRT {version} could not build an engine: {reasons}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    blob = bytes(serialized)
    replace_atomically(engine_path, lambda tmp: tmp.write_bytes(blob))
    _save_timing_cache(config, settings.timing_cache)
    return BuildReport(version, mode, int(settings.workspace_mib), time.perf_counter() - started,
                       str(settings.timing_cache) if settings.timing_cache else None, loaded, rejected, flags,
                       warnings + logger.warnings())
