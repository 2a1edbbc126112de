"""Building a TensorRT engine from the exported ONNX, through TensorRT's Python API.

FP16 is asked for in the way each TensorRT generation supports it:

* TensorRT 10.x (JetPack 6 ships 10.3): a weakly typed network with ``BuilderFlag.FP16``, so
  the builder may pick FP16 kernels per layer (``builder_flag``).
* TensorRT 11 and later: precision flags and weak typing are gone, networks are strongly typed,
  so the ONNX is converted to FP16 first (``bench.devices.emulation.fp16`` with the TensorRT policy, IO kept
  FP32) and built with ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (``strongly_typed``).

The timing cache is loaded before and written back after every build, so rebuilding an engine
on the same GPU and TensorRT version skips kernel auto-tuning. Parser and builder failures are
raised with TensorRT's own messages (the parser's per-node errors, the logger's errors).
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


def fp16_mode(version: str) -> str:
    """How this TensorRT builds FP16: ``builder_flag`` (10.x) or ``strongly_typed`` (11+)."""
    major = parse_version(version)[0]
    if major < MIN_MAJOR:
        raise BadInput(f"TensorRT {version} is too old: the adapter needs TensorRT {MIN_MAJOR} or newer "
                       f"(JetPack 6 or later)")
    return "builder_flag" if major == MIN_MAJOR else "strongly_typed"


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
    precision: str = "fp16"
    workspace_mib: int = 1024
    builder_optimization_level: int | None = None
    timing_cache: Path | None = None


@dataclass
class BuildReport:
    """What the build did, recorded in the artifact's details."""

    tensorrt: str
    fp16_mode: str | None
    workspace_mib: int
    build_s: float
    timing_cache: str | None
    timing_cache_loaded_bytes: int
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"tensorrt": self.tensorrt, "fp16_mode": self.fp16_mode, "workspace_mib": self.workspace_mib,
                "build_s": round(self.build_s, 3), "timing_cache": self.timing_cache,
                "timing_cache_loaded_bytes": self.timing_cache_loaded_bytes, "warnings": self.warnings[:20]}


def _parser_errors(parser: Any) -> list[str]:
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        where = f" at node {error.node_name()} ({error.node_operator()})" if error.node_name() else ""
        errors.append(f"{error.desc()}{where}")
    return errors


def _load_timing_cache(config: Any, path: Path | None) -> tuple[Any, int]:
    data = path.read_bytes() if path is not None and path.is_file() else b""
    cache = config.create_timing_cache(data)
    if cache is None and data:  # a corrupt or foreign cache: start a fresh one rather than fail the build
        data = b""
        cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, False)
    return cache, len(data)


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
    """Parse ``onnx_path`` and write a serialized engine to ``engine_path``.

    ``trt`` is the imported ``tensorrt`` module (passed in so the adapter decides where it comes
    from). For FP16 on TensorRT 11+, ``onnx_path`` must already be the FP16-converted graph.
    """
    version = str(trt.__version__)
    mode = fp16_mode(version) if settings.precision == "fp16" else None
    logger = make_logger(trt)
    started = time.perf_counter()
    try:
        builder = trt.Builder(logger)
    except TypeError as exc:  # pybind's "factory function returned nullptr": CUDA could not be initialised
        said = "; ".join(msg for _, msg in logger.messages) or str(exc)
        raise EngineBuildFailed(f"TensorRT {version} could not create a builder (no usable CUDA device?): "
                                f"{said}") from exc
    flags = 0
    if mode == "strongly_typed":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        problems = _parser_errors(parser) or logger.errors() or ["no reason given"]
        raise EngineBuildFailed(f"{onnx_path}: TensorRT {version}'s ONNX parser failed: {'; '.join(problems)}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(settings.workspace_mib) << 20)
    if mode == "builder_flag":
        config.set_flag(trt.BuilderFlag.FP16)
    if settings.builder_optimization_level is not None:
        config.builder_optimization_level = int(settings.builder_optimization_level)
    _, loaded = _load_timing_cache(config, settings.timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        reasons = "; ".join(logger.errors()) or "no reason given"
        raise EngineBuildFailed(f"{onnx_path}: TensorRT {version} could not build an engine: {reasons}")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    blob = bytes(serialized)
    replace_atomically(engine_path, lambda tmp: tmp.write_bytes(blob))
    _save_timing_cache(config, settings.timing_cache)
    return BuildReport(version, mode, int(settings.workspace_mib), time.perf_counter() - started,
                       str(settings.timing_cache) if settings.timing_cache else None, loaded,
                       logger.warnings())
