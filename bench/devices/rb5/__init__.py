"""The Qualcomm RB5 Gen2: QNN GPU FP16, through Qualcomm AI Hub or a local board over adb.

Its parts: the adapter (``adapter``), AI Hub jobs (``aihub``) and its session (``aihub_session``),
a board over adb running qnn-net-run (``qnn_adb``), the FP16 policy ``--emulate`` converts with
(``fp16_policy``) and QNN GPU's deployability rules (``deployability``). Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.devices.family import DeviceFamily
from bench.devices.settings import from_section
from bench.errors import BadInput

TRANSPORTS = ("aihub", "adb")


@dataclass(frozen=True)
class HubSettings:
    """``runtime.aihub``: the AI Hub device (by name, or by ``device_attributes`` since AI Hub's list
    changes), job options, images per inference job, and how long and how often to wait and retry."""

    device: str = "QCS8550 (Proxy)"
    device_attributes: tuple[str, ...] = ()
    device_os: str = ""
    compile_options: str = "--target_runtime qnn_dlc"
    profile_options: str = "--compute_unit gpu --qnn_options default_graph_gpu_precision=FLOAT16"
    max_profiler_iterations: int = 100
    chunk_images: int = 64
    timeout_s: int = 3600
    retries: int = 4
    backoff_s: float = 5.0


@dataclass(frozen=True)
class BoardSettings:
    """``runtime.adb``: the board (adb serial), the host's QAIRT/QNN SDK and the board's target triple,
    where on the board to work, the GPU backend and the libraries pushed with it."""

    serial: str | None = None
    qnn_sdk: str = ""
    target: str = "aarch64-oe-linux-gcc11.2"
    host_target: str = "x86_64-linux-clang"
    remote_dir: str = "/data/local/tmp/edge-ad-bench"
    backend: str = "libQnnGpu.so"
    libraries: tuple[str, ...] = ("libQnnGpu.so", "libQnnSystem.so", "libQnnModelDlc.so")
    extra_args: str = ""
    chunk_images: int = 32
    timeout_s: int = 600

    def sdk_files(self) -> list[Path]:
        """qnn-net-run and the libraries, from the host's SDK, for the board's target."""
        if not self.qnn_sdk:
            raise BadInput("runtime.adb.qnn_sdk is not set: the host path of the QAIRT/QNN SDK")
        sdk = Path(self.qnn_sdk).expanduser()
        files = [sdk / "bin" / self.target / "qnn-net-run"]
        files += [sdk / "lib" / self.target / lib for lib in self.libraries]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise BadInput(f"QNN SDK files missing for target {self.target}: {', '.join(missing)}")
        return files

    def profile_viewer(self) -> Path | None:
        viewer = Path(self.qnn_sdk).expanduser() / "bin" / self.host_target / "qnn-profile-viewer"
        return viewer if viewer.is_file() else None


@dataclass(frozen=True)
class RB5Settings:
    """The profile's ``runtime`` section: the ``transport`` (aihub or adb), each transport's own section
    (read as a mapping, typed here, unknown keys refused), and ``dlc``, a DLC compiled elsewhere (a
    local QAIRT converter) that replaces AI Hub's compile job."""

    transport: str = "aihub"
    aihub: HubSettings = field(default_factory=HubSettings)
    adb: BoardSettings = field(default_factory=BoardSettings)
    dlc: str | None = None

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"transport: unknown '{self.transport}' (one of {', '.join(TRANSPORTS)})")
        for name, cls in (("aihub", HubSettings), ("adb", BoardSettings)):
            section = getattr(self, name)
            if not isinstance(section, cls):
                object.__setattr__(self, name, from_section(cls, section, name))


FAMILY = DeviceFamily(
    name="rb5",
    description="Qualcomm RB5 Gen2: QNN GPU FP16 through Qualcomm AI Hub or a local board over adb",
    adapter="bench.devices.rb5.adapter:RB5Device",
    settings=RB5Settings,
    emulation="bench.devices.emulation.fp16_numerics:Fp16Numerics",
    lint="bench.devices.rb5.deployability:lint",
    lint_label="RB5 (QNN GPU)",
)
