"""The Device interface (DESIGN.md): compile -> Artifact, open -> Session, infer, close.

The runner sees only these names. An adapter owns its toolchain, its runtime and whatever
timing the device reports itself; everything else (inputs, timing windows, records) is the
runner's.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from bench.devices.settings import from_section
from bench.errors import BadInput


@dataclass(frozen=True)
class ExportedModel:
    """What compile() starts from: the exported ONNX graph and its checksum.

    ``module`` and ``representative`` are set on the host only, for toolchains that start from
    the PyTorch module (MCT quantization for the IMX500): the module, and a callable giving the
    representative input tensors (normal training images). The device side never needs them.
    ``module_revision`` is the source revision of the module's model code, so an edit to it
    rebuilds what such toolchains compiled.
    """

    onnx_path: Path
    sha256: str
    input_name: str
    input_shape: tuple[int, ...]
    output_names: tuple[str, ...]
    module: Any = field(default=None, compare=False, repr=False)
    representative: Callable[[int], list[np.ndarray]] | None = field(default=None, compare=False, repr=False)
    representative_key: str = ""  # identifies the representative images, so the artifact cache keys on them
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # preprocessing (mean, std)
    calibration: dict[str, Any] | None = field(default=None, compare=False)  # which representative set, recorded
    tpc_version: str | None = None  # INT8 target platform capabilities the calibration asks for (None: default)
    module_revision: str = ""


@dataclass(frozen=True)
class Artifact:
    """What a device runs, with the checksum and toolchain that produced it (for provenance)."""

    path: Path
    sha256: str
    precision: str
    toolchain: dict[str, str]
    source_sha256: str
    details: dict[str, Any] = field(default_factory=dict)  # what the toolchain reported (FP16 policy, INT8 PTQ)


@dataclass
class InferenceResult:
    outputs: dict[str, np.ndarray]
    device_ms: float | None = None


ROLES = ("reference", "device")


@dataclass(frozen=True)
class DeviceProfile:
    """One lab device, from ``devices/<name>.yaml``. ``kind`` names its family; ``role`` says whether its
    runs are the reference that device runs are paired with."""

    name: str
    kind: str
    precision: str
    description: str = ""
    role: str = "device"
    runtime: dict[str, Any] = field(default_factory=dict)
    power: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] = field(default_factory=dict)
    emulation: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None


@dataclass(frozen=True)
class DeviceTiming:
    """Per-inference latencies measured by the device's own profiler, for sessions the host cannot time
    (a cloud device: the host would time the network round trip, not the inference)."""

    latencies_ms: list[float]
    source: str  # what measured them, e.g. "AI Hub profile job j1234 (all_inference_times)"
    details: dict[str, Any] = field(default_factory=dict)


TIMING_SOURCES: dict[str, str] = {
    "host_clock": "the host's monotonic clock around each call",
    "device_clock": "the device's own clock, per call (device_ms)",
    "device_profiler": "the device's profiler (no per-call timestamps)",
}


class Session(ABC):
    """An opened artifact, ready for single-stream inference.

    ``chunk`` > 1 says the session prefers inputs in groups (``infer_many``), e.g. one cloud job or
    one adb round trip per group. ``timing_source`` (a key of TIMING_SOURCES) says which clock is
    authoritative for its latency: the host's around each call; the device's own per call, where the
    host clock would include a link's round trips or frame pacing; or the device's profiler
    (``device_timing``), where the host cannot time single inferences at all.
    """

    chunk: int = 1
    timing_source: str = "host_clock"
    _closed: bool = False

    @abstractmethod
    def infer(self, batch: np.ndarray) -> InferenceResult:
        """Run one batch; ``device_ms`` is the device's own timing where it has one."""

    def infer_many(self, batches: list[np.ndarray]) -> list[InferenceResult]:
        """Run several inputs, one result each, in order; sessions with ``chunk`` > 1 do it in one go."""
        return [self.infer(batch) for batch in batches]

    def audit(self) -> dict[str, Any]:
        """What the session did that an audit needs (cloud job ids, device names); recorded per category."""
        return {}

    def device_timing(self, pool: list[np.ndarray], count: int) -> DeviceTiming:
        """At least ``count`` inferences on ``pool`` timed by the device's profiler (``device_profiler`` sessions)."""
        raise NotImplementedError(f"{type(self).__name__} is timed on the host")

    @abstractmethod
    def _close(self) -> None:
        """Release the runtime; called once, by close()."""

    def close(self) -> None:
        """Release the runtime; the session is unusable afterwards. A second close does nothing."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Close; when the body failed, a failing close is reported on stderr so it cannot mask that failure."""
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as error:
            print(f"warning: closing the {type(self).__name__} failed after an earlier error: {error}",
                  file=sys.stderr)


class Device(ABC):
    """An adapter for one device family, configured by a profile.

    ``settings`` is the profile's ``runtime`` section read into the family's typed settings (unknown
    keys refused, defaults filled in); the artifact cache keys on its resolved value.
    """

    def __init__(self, profile: DeviceProfile) -> None:
        from bench.devices.registry import family  # the registry imports this module

        self.profile = profile
        self.settings: Any = from_section(family(profile.kind).settings, profile.runtime,
                                          f"{profile.source}: runtime")
        self._availability: tuple[bool, str] | None = None

    @abstractmethod
    def toolchain(self) -> dict[str, str]:
        """Versions that determine the artifact; part of the artifact cache key."""

    @abstractmethod
    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        """Turn the exported model into what the device runs, written under ``workdir``."""

    def open(self, artifact: Artifact) -> Session:
        """Load an artifact for inference, once ``availability()`` says this machine can (checked once)."""
        self.require_available()
        return self._open(artifact)

    @abstractmethod
    def _open(self, artifact: Artifact) -> Session:
        """Load an artifact for inference; the device is known to be available."""

    def require_available(self) -> None:
        """Raise one line naming the profile and what is missing unless ``availability()`` says ok; it is
        asked once per device object."""
        if self._availability is None:
            self._availability = self.availability()
        ok, reason = self._availability
        if not ok:
            raise BadInput(f"{self.profile.source}: device '{self.profile.name}' cannot run here: {reason}")

    @abstractmethod
    def environment(self) -> dict[str, Any]:
        """OS, runtime versions, power mode and settings: everything that can change a figure."""

    def state(self) -> dict[str, Any]:
        """Clocks and temperatures of a device apart from the machine running the timed pass (a board behind a
        link), read before and after each timed window; {} where there is none or nothing is readable. The
        measuring machine's own state is read by ``bench.host_state``."""
        return {}

    def availability(self) -> tuple[bool, str]:
        """Whether this profile can run on this machine and, if not, exactly what is missing."""
        return True, "ok"

    def compile_status(self) -> tuple[bool, str]:
        """Whether compile() can run here; adapters whose toolchain lives apart from the device override it."""
        return self.availability()

    def compiles_apart(self) -> bool:
        """True when compiling needs another machine than running (the adapter overrides compile_status)."""
        return type(self).compile_status is not Device.compile_status

    def quantization_images(self) -> int:
        """How many representative images compile() needs (0: it needs neither them nor the module)."""
        return 0

    @property
    def emulated(self) -> bool:
        """True when the device's numerics run on the host: accuracy and drift only, no device timing."""
        return False

    @property
    def role(self) -> str:
        """The profile's role; an emulated device is never the reference."""
        return "device" if self.emulated else self.profile.role

    def compiler_revision(self) -> str:
        """Source revision of the harness code that compiles this device's artifacts."""
        from bench.devices.registry import family

        return family(self.profile.kind).compiler_revision()

    def artifact_settings(self) -> dict[str, Any]:
        """Everything from the profile that shapes the artifact, defaults resolved: part of its cache key."""
        return {"precision": self.profile.precision, "runtime": asdict(self.settings)}

    def describe(self) -> dict[str, Any]:
        """The manifest's device section."""
        return {"profile": self.profile.name, "kind": self.profile.kind, "role": self.role,
                "emulated": self.emulated, "precision": self.profile.precision, "environment": self.environment()}
