"""FAKE-only: the simulated Raspberry Pi board behind the picamera2 fake (not a picamera2 module).

It holds what the real library reads from the system: the cameras libcamera lists, whether the imx500
sensor node (``/sys/class/video4linux/v4l-subdev*``) is bound, and the one IMX500 sensor with its network.
The sensor is event-driven: a frame passes on each ``capture_metadata()``, never on the wall clock, so
tests do not depend on the machine's speed.

Environment (read at each call): ``FAKE_PICAMERA2_CAMERAS`` (models libcamera lists, comma-separated;
default ``imx500``, empty: none), ``FAKE_PICAMERA2_BUSY`` (another process holds the camera),
``FAKE_IMX500_ABSENT`` (no imx500 sensor node), ``FAKE_IMX500_FIRST_FRAME`` (the frame counter when the
fake starts), ``FAKE_IMX500_INPUT_FORMAT`` / ``FAKE_IMX500_INPUT_DTYPE`` (the network's input tensor, from
its network_info: ``RGB``/``BGR``, ``unsigned``/``signed``), ``FAKE_IMX500_CMP_FRM_ERRORS`` (``*`` or
1-based numbers of the ``get_injection_cmp_frm`` calls whose ioctl fails), ``FAKE_IMX500_DROP_EVERY=N``
(every Nth injection's frame is lost), ``FAKE_IMX500_FAIL_AFTER=N`` (the camera disappears after N
injections).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

LATENCY_FRAMES = 2
IMX500_NODE_ID = "/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a"
# the devicetree link behind /sys/class/video4linux/v4l-subdevN/device/of_node, which IMX500() matches
IMX500_OF_NODE = "../../../../../firmware/devicetree" + IMX500_NODE_ID
CAMERA_IDS = {"imx500": IMX500_NODE_ID, "imx708": "/base/axi/pcie@120000/rp1/i2c@80000/imx708@1a",
              "uvc": "/base/axi/pcie@120000/rp1/usb@200000-1:1.0-046d:0825"}
# libcamera's struct CnnOutputTensorInfoExported, little-endian with C alignment: network_name[64],
# num_tensors, 16 x {tensor_data_num, num_dimensions, uint16 size[16]}, uint8 frameCount, padding to 4
TENSOR_INFO_FORMAT = "<64sI" + "II16H" * 16 + "B3x"
TENSOR_INFO_SIZE = struct.calcsize(TENSOR_INFO_FORMAT)  # 712, ctypes.sizeof of the real structure


def listed_cameras() -> list[dict[str, Any]]:
    """What libcamera's camera manager enumerates, in its order (``Num`` is the position)."""
    models = [m.strip() for m in os.environ.get("FAKE_PICAMERA2_CAMERAS", "imx500").split(",") if m.strip()]
    return [{"Model": model, "Location": 2, "Rotation": 0, "Id": CAMERA_IDS.get(model, f"/base/{model}@1a"),
             "Num": num} for num, model in enumerate(models)]


def imx500_node_bound() -> bool:
    return not os.environ.get("FAKE_IMX500_ABSENT")


def input_format() -> tuple[str, str | None]:
    """The network's input tensor format and dtype; the dtype exists only for RGB and BGR (as network_info gives)."""
    fmt = os.environ.get("FAKE_IMX500_INPUT_FORMAT", "RGB")
    return fmt, (os.environ.get("FAKE_IMX500_INPUT_DTYPE", "unsigned") if fmt in ("RGB", "BGR") else None)


def cmp_frame_read_fails(call: int) -> bool:
    errors = os.environ.get("FAKE_IMX500_CMP_FRM_ERRORS", "")
    return errors.strip() == "*" or str(call) in [e.strip() for e in errors.split(",")]


class Sensor:
    """The IMX500 and its network; one per process, like the one camera on the board."""

    def __init__(self) -> None:
        self.frame = int(os.environ.get("FAKE_IMX500_FIRST_FRAME", "0"))
        self.session: Any = None
        self.input_name = ""
        self.shape = (0, 0)
        self.live: np.ndarray | None = None
        self.pending: tuple[int, np.ndarray] | None = None
        self.cmp_frame = 0
        self.injections = 0
        self.cmp_reads = 0
        self.controls: dict[str, Any] = {}

    def load(self, model: Path) -> None:
        """The network: the MCT-quantized ONNX the adapter compiled, beside the artifact, in ONNX Runtime."""
        import mct_quantizers
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model), mct_quantizers.get_ort_session_options(),
                                            providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.shape = (int(inp.shape[2]), int(inp.shape[3]))

    def start(self, config: dict[str, Any]) -> None:
        self.controls = dict(config.get("controls", {}))

    def inject(self, pixels: np.ndarray) -> None:
        """The tensor becomes live ``LATENCY_FRAMES`` after the current frame (the driver's comparison frame)."""
        self.injections += 1
        self.cmp_frame = (self.frame + LATENCY_FRAMES) & 0xFF
        self.pending = (self.frame + LATENCY_FRAMES, pixels)

    def next_frame(self) -> dict[str, Any]:
        self.frame += 1
        drop_every = int(os.environ.get("FAKE_IMX500_DROP_EVERY", "0"))
        if self.pending is not None and self.frame >= self.pending[0]:
            if drop_every and self.injections % drop_every == 0 and self.frame == self.pending[0]:
                self.frame += 1  # the injected frame is lost; the next frame carries the old input
            else:
                self.live = self.pending[1]
            self.pending = None
        h, w = self.shape
        pixels = self.live if self.live is not None else np.full((3, h, w), 0.5, np.float32)
        outputs = self.session.run(None, {self.input_name: pixels[None]})
        shapes = [tuple(np.asarray(o).shape[1:]) or (1,) for o in outputs]
        flat = np.concatenate([np.asarray(o, np.float32).reshape(s).flatten(order="F") for o, s in
                               zip(outputs, shapes, strict=True)])
        return {"CnnOutputTensor": flat.tolist(), "CnnOutputTensorInfo": tensor_info(shapes, self.frame),
                "CnnKpiInfo": [4200, 850], "SensorTimestamp": self.frame * 100_000_000}


def tensor_info(shapes: list[tuple[int, ...]], frame: int) -> bytes:
    """The output tensor info as libcamera hands it over: the packed CnnOutputTensorInfoExported bytes."""
    entries: list[int] = []
    for shape in shapes + [()] * (16 - len(shapes)):
        entries += [int(np.prod(shape)) if shape else 0, len(shape), *shape, *[0] * (16 - len(shape))]
    return struct.pack(TENSOR_INFO_FORMAT, b"network", len(shapes), *entries, frame & 0xFF)


_SENSOR: Sensor | None = None


def sensor() -> Sensor:
    global _SENSOR
    if _SENSOR is None:
        _SENSOR = Sensor()
    return _SENSOR
