"""What a family implements for ``--emulate``: its numerics, as an ONNX graph ONNX Runtime runs on the host.

``FAMILY.emulation`` names a ``Numerics`` subclass; ``EmulatedDevice`` creates it with the profile,
compiles through it and opens the result on the host's ONNX Runtime, so the engine never branches
on a family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.devices.base import Artifact, DeviceProfile, ExportedModel, Session


class Numerics(ABC):
    """One family's numerics on the host, configured by the profile's ``emulation`` section.

    ``name`` is the section's ``numerics`` value that selects it; ``extra`` the pip extra that installs
    its toolchain (named when a tool is missing).
    """

    name: str = ""
    extra: str = "emulate"

    def __init__(self, profile: DeviceProfile) -> None:
        self.profile = profile

    @abstractmethod
    def toolchain(self) -> dict[str, str]:
        """Versions of the tools the conversion uses; ``"not installed"`` for a missing one."""

    @abstractmethod
    def compile(self, exported: ExportedModel, workdir: Path) -> tuple[Path, dict[str, Any]]:
        """The graph written under ``workdir`` that runs as the device computes, and what the conversion reported."""

    @abstractmethod
    def resolved(self) -> dict[str, Any]:
        """The emulation settings in effect, defaults filled in: recorded in the manifest's environment."""

    def artifact_key(self) -> dict[str, Any]:
        """What the compiled graph depends on besides the model and toolchain (the artifact cache keys on it)."""
        return self.resolved()

    def quantization_images(self) -> int:
        """How many representative images compile() needs (0: none, nor the PyTorch module)."""
        return 0

    def session_options(self) -> ort.SessionOptions:
        """ONNX Runtime options the graph needs (custom op libraries)."""
        return ort.SessionOptions()

    def runnable(self, artifact: Artifact, workdir: Path) -> Artifact:
        """The artifact ONNX Runtime opens: the compiled one, or a conversion of it written under ``workdir``
        (removed once the session has loaded it)."""
        return artifact

    def session(self, inner: Session, artifact: Artifact) -> Session:
        """The session the runner uses, around the host's session of the artifact (e.g. mapping its inputs)."""
        return inner
