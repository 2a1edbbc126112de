"""FAKE ``picamera2.devices.imx500`` (picamera2 0.3.38, read from raspberrypi/picamera2), see tests/fakes/README.md.

``IMX500`` keeps the real class's constructor, public methods and the private methods picamera2's
injection example calls (``_IMX500__set_input_tensor``, ``_IMX500__get_output_tensor_info``), its
RuntimeError texts, the injection tensor layout of ``prepare_tensor_for_injection`` (quantized
[0, 1] RGB, width padded to 32, height to 2, planar) and ``get_outputs``' Fortran-order reshape.

The simulated sensor: the tensor handed over with ``__set_input_tensor`` becomes live two frames
later (the frame ``get_injection_cmp_frm`` reports); every frame carries the network's output on
the live tensor (mid-grey before any injection), an 8-bit frame counter and a KPI of DNN and DSP
microseconds. The network is the MCT-quantized ONNX the adapter compiled, found beside the
artifact (``<artifact>/model_mctq.onnx`` for ``<artifact>/rpk/network.rpk``) and run in ONNX Runtime.

Fault injection by environment: ``FAKE_IMX500_ABSENT`` (no camera), ``FAKE_IMX500_DROP_EVERY=N``
(every Nth injection's frame is skipped, so the counter jumps past it), ``FAKE_IMX500_FAIL_AFTER=N``
(the camera disappears after N injections).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

LATENCY_FRAMES = 2


class _Camera:
    """The simulated sensor and its network; one per process, like the one camera on the board."""

    def __init__(self) -> None:
        self.frame = 0
        self.session: Any = None
        self.input_name = ""
        self.shape = (0, 0)
        self.live = None
        self.pending: tuple[int, np.ndarray] | None = None
        self.injections = 0
        self.controls: dict[str, Any] = {}

    def load(self, model: Path) -> None:
        import mct_quantizers
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(model), mct_quantizers.get_ort_session_options(),
                                            providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.shape = (int(inp.shape[2]), int(inp.shape[3]))

    def start(self, config: dict[str, Any]) -> None:
        self.controls = dict(config.get("controls", {}))

    def inject(self, pixels: np.ndarray) -> int:
        self.injections += 1
        self.pending = (self.frame + LATENCY_FRAMES, pixels)
        return (self.frame + LATENCY_FRAMES) & 0xFF

    def next_frame(self) -> dict[str, Any]:
        self.frame += 1
        drop_every = int(os.environ.get("FAKE_IMX500_DROP_EVERY", "0"))
        if self.pending is not None and self.frame >= self.pending[0]:
            if drop_every and self.injections % drop_every == 0 and self.frame == self.pending[0]:
                self.frame += 1  # the injected frame is lost; the next frame carries the old input
                self.pending = None
            else:
                self.live = self.pending[1]
                self.pending = None
        h, w = self.shape
        pixels = self.live if self.live is not None else np.full((3, h, w), 0.5, np.float32)
        outputs = self.session.run(None, {self.input_name: pixels[None]})
        shapes = [tuple(d for d in np.asarray(o).shape[1:]) or (1,) for o in outputs]
        flat = np.concatenate([np.asarray(o, np.float32).reshape(s).flatten(order="F") for o, s in
                               zip(outputs, shapes, strict=True)])
        info = {"frameCount": self.frame & 0xFF, "num_tensors": len(shapes),
                "info": [{"tensor_data_num": int(np.prod(s)), "num_dimensions": len(s), "size": s} for s in shapes]}
        return {"CnnOutputTensor": flat.tolist(), "CnnOutputTensorInfo": info, "CnnKpiInfo": [4200, 850],
                "SensorTimestamp": self.frame * 100_000_000}


_CAMERA: _Camera | None = None


def _camera() -> _Camera:
    global _CAMERA
    if _CAMERA is None:
        _CAMERA = _Camera()
    return _CAMERA


class IMX500:
    def __init__(self, network_file: str, camera_id: str = "", tensor_injection: bool = False) -> None:
        if os.environ.get("FAKE_IMX500_ABSENT"):
            raise RuntimeError("IMX500: Requested camera dev-node not found")
        if not os.path.isfile(network_file):
            raise RuntimeError(f"Firmware file {network_file} does not exist.")
        self.__camera = _camera()
        self.__camera.load(Path(network_file).resolve().parent.parent / "model_mctq.onnx")
        self.__injection = tensor_injection
        h, w = self.__camera.shape
        self.__cfg = {"network_file": network_file, "input_tensor_size": (w, h),
                      "input_tensor": {"width": w, "height": h, "input_format": "RGB", "dtype": "unsigned",
                                       "norm_val": [-2048, -2048, -2048], "norm_shift": [4, 4, 4],
                                       "div_val": [1024, 1024, 1024], "div_shift": 6}}

    @property
    def camera_num(self) -> int:
        return 0

    @property
    def config(self) -> dict:
        return self.__cfg

    def get_input_size(self) -> tuple:
        return self.config["input_tensor_size"]

    def show_network_fw_progress_bar(self) -> None:
        return None

    def prepare_tensor_for_injection(self, exr_input: Any) -> bytes:
        import Imath
        import OpenEXR

        if not isinstance(exr_input, OpenEXR.InputFile):
            raise ValueError("exr_input must be an OpenEXR.InputFile")
        header = exr_input.header()
        dw = header["dataWindow"]
        size = (dw.max.x - dw.min.x + 1, dw.max.y - dw.min.y + 1)
        if size != self.config["input_tensor_size"]:
            raise ValueError(f"Tensor size {size} does not match expected size {self.config['input_tensor_size']}")
        float_type = Imath.PixelType(Imath.PixelType.FLOAT)
        planes = []
        for name in "RGB":
            plane = np.frombuffer(exr_input.channel(name, float_type), dtype=np.float32).reshape(size[::-1])
            if plane.min() < 0.0 or plane.max() > 1.0:
                raise ValueError(f"Channel '{name}' values not normalised to 0-1 range (min: {plane.min():.3f}, "
                                 f"max: {plane.max():.3f})")
            padded = np.zeros(((size[1] + 1) // 2 * 2, (size[0] + 31) // 32 * 32), np.uint8)
            padded[: size[1], : size[0]] = np.clip(np.round(plane * 255.0), 0, 255).astype(np.uint8)
            planes.append(padded.flatten())
        return np.concatenate(planes).tobytes()

    def _IMX500__set_input_tensor(self, input_tensor_fd: int) -> None:
        fail_after = os.environ.get("FAKE_IMX500_FAIL_AFTER")
        if not self.__injection:
            raise RuntimeError("IMX500: Unable to set input tensor fd: [Errno 22] Invalid argument")
        if fail_after is not None and self.__camera.injections >= int(fail_after):
            raise RuntimeError("IMX500: Unable to set input tensor fd: [Errno 19] No such device")
        w, h = self.config["input_tensor_size"]
        pw, ph = (w + 31) // 32 * 32, (h + 1) // 2 * 2
        data = os.pread(input_tensor_fd, 3 * pw * ph, 0)
        planes = np.frombuffer(data, np.uint8).reshape(3, ph, pw)[:, :h, :w]
        self.__camera.inject(planes.astype(np.float32) / 255.0)

    def get_injection_cmp_frm(self) -> int:
        pending = self.__camera.pending
        return 0 if pending is None else pending[0] & 0xFF

    def _IMX500__get_output_tensor_info(self, tensor_info: dict) -> dict:
        return dict(tensor_info)

    def get_output_shapes(self, metadata: dict) -> list[tuple[int]]:
        info = metadata.get("CnnOutputTensorInfo")
        return [o["size"] for o in info["info"]] if info else []

    def get_outputs(self, metadata: dict, add_batch: bool = False) -> list[np.ndarray] | None:
        output_tensor = metadata.get("CnnOutputTensor")
        if not output_tensor:
            return None
        flat = np.fromiter(output_tensor, dtype=np.float32)
        outputs, offset = [], 0
        for shape in self.get_output_shapes(metadata):
            size = int(np.prod(shape))
            tensor = flat[offset: offset + size].reshape(shape, order="F")
            outputs.append(np.expand_dims(tensor, 0) if add_batch else tensor)
            offset += size
        return outputs

    @staticmethod
    def get_kpi_info(metadata: dict) -> tuple[float, float] | None:
        kpi = metadata.get("CnnKpiInfo")
        if kpi is None:
            return None
        return kpi[0] / 1000, kpi[1] / 1000
