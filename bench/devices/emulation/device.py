"""``--emulate``: a device's numerics on the host, for predicted drift before touching hardware.

The profile's family names its ``Numerics`` (``FAMILY.emulation``): FP16 devices (TensorRT on Jetson,
QNN GPU on RB5) run the exported graph converted to FP16 under the family's policy; the IMX500 runs
the very MCT INT8 model its converter receives. Either runs on the host CPU's ONNX Runtime. Runs are
marked emulated in the record and never enter device latency or energy tables: the timing is the
host CPU's, not the device's.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.devices.base import Artifact, DeviceProfile, ExportedModel, Session
from bench.devices.emulation.numerics import Numerics
from bench.devices.family import load_attribute
from bench.devices.host import HostSettings
from bench.devices.host.adapter import HostDevice
from bench.devices.registry import family
from bench.devices.settings import from_section
from bench.errors import BadInput
from bench.util import file_sha256, source_revision


class EmulatedDevice(HostDevice):
    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        spec = family(profile.kind).emulation
        if not profile.emulation or spec is None:
            raise BadInput(f"{profile.source}: device '{profile.name}' has no emulation section; --emulate "
                           f"needs one (numerics: fp16 or int8_mct)")
        self.numerics: Numerics = load_attribute(spec, f"emulation of '{profile.kind}'")(profile)
        if profile.emulation.get("numerics") != self.numerics.name:
            raise BadInput(f"{profile.source}: emulation numerics must be {self.numerics.name} for a "
                           f"{profile.kind} device")

    @property
    def emulated(self) -> bool:
        return True

    def options(self) -> HostSettings:
        """The host CPU runs the emulation (threads from the profile's ``emulation.host``); basic graph
        optimisation only, so ONNX Runtime's fusions do not change the emulated device's rounding."""
        host = from_section(HostSettings, self.profile.emulation.get("host"), f"{self.profile.source}: emulation.host")
        return replace(host, providers=("CPUExecutionProvider",), graph_optimization_level="basic")

    def compiler_revision(self) -> str:
        """The family's compiler revision and the emulation engine's sources."""
        return f"{super().compiler_revision()}+{source_revision('bench.devices.emulation')}"

    def artifact_settings(self) -> dict[str, Any]:
        return {**super().artifact_settings(), "emulation": self.numerics.artifact_key()}

    def toolchain(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__, **self.numerics.toolchain()}

    def availability(self) -> tuple[bool, str]:
        missing = [name for name, version in self.toolchain().items() if version == "not installed"]
        if missing:
            return False, (f"emulating {self.profile.name} needs {', '.join(missing)}: "
                           f"pip install -e '.[{self.numerics.extra}]'")
        return True, f"{self.numerics.name} emulation on the host CPU with " + ", ".join(
            f"{k} {v}" for k, v in self.toolchain().items())

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        self.require_available()
        workdir.mkdir(parents=True, exist_ok=True)
        target, details = self.numerics.compile(exported, workdir)
        return Artifact(target, file_sha256(target), self.profile.precision, self.toolchain(), exported.sha256,
                        json.loads(json.dumps(details, default=str)))

    def quantization_images(self) -> int:
        return self.numerics.quantization_images()

    def session_options(self) -> ort.SessionOptions:
        return self.numerics.session_options()

    def _open(self, artifact: Artifact) -> Session:
        with tempfile.TemporaryDirectory(prefix="emulation-") as tmp:
            inner = super()._open(self.numerics.runnable(artifact, Path(tmp)))
        return self.numerics.session(inner, artifact)

    def environment(self) -> dict[str, Any]:
        env = super().environment()
        env["emulation"] = {**self.numerics.resolved(), "of_device": self.profile.kind,
                            "toolchain": self.toolchain()}
        return env
