"""The Sony IMX500 (Raspberry Pi AI Camera): MCT INT8 and ``imxconv-pt`` on the host, picamera2 on the Pi.

Its parts: the adapter (``adapter``), MCT quantization (``quant``), Sony's converter in its own
tool environment (``converter``), input-tensor injection on the Pi (``session``), live-camera
figures (``live``), the INT8 numerics for ``--emulate`` (``emulation``) and the converter's
deployability rules (``deployability``). Nothing heavy is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.data.calibration import CALIBRATIONS, DEFAULT_CALIBRATION
from bench.devices.family import DeviceFamily


@dataclass(frozen=True)
class IMX500Settings:
    """The profile's ``runtime`` section.

    ``representative_images`` calibrate the INT8 model and ``calibration`` chooses them
    (``bench.data.calibration``); ``converter`` and ``packager`` point at ``imxconv-pt`` and
    ``imx500-package`` where they are not found by themselves; ``input_persistency`` keeps the input
    tensor readable on the sensor. Injection: ``frame_rate`` (frames per second), ``timeout_s`` per
    image, ``max_reinjections`` of a missed frame, ``camera_id`` (picamera2's; empty: the first IMX500).
    """

    representative_images: int = 32
    calibration: str = DEFAULT_CALIBRATION
    converter: str | None = None
    packager: str | None = None
    input_persistency: bool = True
    frame_rate: float = 10.0
    timeout_s: float = 5.0
    max_reinjections: int = 3
    camera_id: str = ""

    def __post_init__(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration: unknown '{self.calibration}' (one of {', '.join(CALIBRATIONS)})")


FAMILY = DeviceFamily(
    name="imx500",
    description="Sony IMX500 (Raspberry Pi AI Camera): MCT INT8, imxconv-pt, network.rpk through picamera2",
    adapter="bench.devices.imx500.adapter:IMX500Device",
    settings=IMX500Settings,
    emulation="bench.devices.imx500.emulation:MctInt8Numerics",
    lint="bench.devices.imx500.deployability:lint",
    lint_label="IMX500",
    # MCT quantizes on representative tensors these modules choose, synthesise and preprocess
    compiles_with=("bench.data.calibration", "bench.models.synthetic", "bench.data.preprocess", "bench.data.loader"),
)
