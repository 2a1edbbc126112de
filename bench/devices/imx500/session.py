"""Dataset images through the IMX500 by input-tensor injection (picamera2), matched by frame counter.

The sensor runs its network on frames, not on files. picamera2 (>= 0.3.32, with the matching
libcamera and imx500 driver) can replace a frame's input tensor: the image, RGB in [0, 1], goes
through an OpenEXR file into ``IMX500.prepare_tensor_for_injection`` (the sensor's quantized,
padded, planar layout), the bytes are handed to the driver through a memfd, and the driver
reports the frame counter its output will carry. Frames are read until one carries that
counter (output belongs to the injected image); a frame past it means the injection was
missed, and the image is injected again (at most ``max_reinjections`` times). The driver's
answer 0 is no frame number: picamera2's ``get_injection_cmp_frm`` returns 0 when its ioctl
fails, so after a 0 one frame is let pass and the image injected again (the same budget). This
follows picamera2's own injection example, including its use of the private ``__set_input_tensor``.

``device_ms`` is the sensor's KPI: DNN runtime plus DSP runtime of that frame. The host-clock
latency includes waiting for the frame, so it is bounded below by the frame period.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import InferenceResult, Session
from bench.devices.imx500 import IMX500Settings
from bench.devices.imx500.quant import Normalization, to_pixels
from bench.errors import BadInput, DeviceFailure

FRAME_MODULO = 256  # the driver's frame counter is 8 bits
BUFFER_COUNT = 12  # camera buffers while injecting


class InjectionFailed(DeviceFailure):
    """The camera did not return the injected image's output (dropped, disconnected, timed out)."""


def frame_offset(frame_count: int, target: int) -> int:
    """Signed distance of a frame from the injected one, modulo the 8-bit counter (picamera2's rule)."""
    diff = (frame_count - target) & (FRAME_MODULO - 1)
    return diff - FRAME_MODULO if diff > (FRAME_MODULO - 1) // 2 else diff


def fit_output(value: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    """A device output in the exported model's shape: as given, with the batch added, or with its axes reversed
    (picamera2 reshapes outputs in Fortran order)."""
    array = np.asarray(value, dtype=np.float32)
    squeezed = array.reshape([d for d in array.shape if d != 1]) if array.size == int(np.prod(shape)) else array
    core = tuple(d for d in shape if d != 1)
    if squeezed.shape == core:
        return squeezed.reshape(shape)
    if squeezed.shape[::-1] == core:
        return np.ascontiguousarray(squeezed.transpose()).reshape(shape)
    raise InjectionFailed(f"output '{name}' has shape {array.shape}; the model's is {shape}")


def open_camera(rpk: Path, camera_id: str, tensor_injection: bool = False) -> tuple[Any, Any]:
    """picamera2's ``IMX500`` with the network loaded and the ``Picamera2`` of its camera, failures as one line.

    A missing camera or a driver error is the device's failure; a network file it cannot read is the user's.
    In picamera2 0.3.38 ``IMX500()`` raises StopIteration when libcamera lists no imx500 matching the sensor
    node it found, RuntimeError texts beginning "IMX500:" for the sensor node and driver (ioctl) errors and
    other RuntimeErrors for the network file; ``Picamera2()`` raises RuntimeError for a missing or busy camera.
    """
    from picamera2 import Picamera2
    from picamera2.devices import IMX500

    which = f"IMX500 camera '{camera_id}'" if camera_id else "IMX500 camera"
    try:
        imx500 = IMX500(str(rpk), camera_id=camera_id, tensor_injection=tensor_injection)
    except StopIteration:
        raise DeviceFailure(f"no {which} among the cameras libcamera lists (rpicam-hello --list-cameras), though "
                            f"its sensor node exists") from None
    except OSError as exc:
        raise DeviceFailure(f"cannot open the {which}: {exc}") from exc
    except RuntimeError as exc:
        if "dev-node not found" in str(exc):
            raise DeviceFailure(f"no {which} on this device (picamera2: {exc})") from exc
        if str(exc).startswith("IMX500:"):
            raise DeviceFailure(f"the {which}'s driver failed: {exc}") from exc
        raise BadInput(f"{rpk}: the IMX500 cannot load it: {exc}") from exc
    try:
        picam2 = Picamera2(imx500.camera_num)
    except RuntimeError as exc:
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise DeviceFailure(f"picamera2 cannot open the {which} (camera {imx500.camera_num}): {exc}{cause}") from exc
    return imx500, picam2


class InjectionSession(Session):
    # the sensor's KPI (DNN + DSP runtime); the host clock adds frame pacing and injection
    timing_source = "device_clock"

    def __init__(self, rpk: Path, normalization: Normalization, output_names: list[str], settings: IMX500Settings,
                 output_shapes: dict[str, tuple[int, ...]] | None = None) -> None:
        import OpenEXR
        from picamera2.devices import IMX500

        self._exr = OpenEXR
        self.normalization = normalization
        self.output_names = output_names
        self.output_shapes = output_shapes or {}
        self.settings = settings
        self._tmp = tempfile.TemporaryDirectory(prefix="imx500-inject-", dir="/dev/shm" if Path("/dev/shm").is_dir()
                                                else None)
        try:
            self.imx500, self.picam2 = open_camera(rpk, settings.camera_id, tensor_injection=True)
        except BaseException:
            self._tmp.cleanup()
            raise
        self.kpi = IMX500.get_kpi_info
        self.width, self.height = self.imx500.get_input_size()
        config = self.picam2.create_preview_configuration(
            controls={"FrameRate": float(settings.frame_rate), "CnnEnableInputTensor": True},
            buffer_count=BUFFER_COUNT)
        self.imx500.show_network_fw_progress_bar()
        self.picam2.start(config, show_preview=False)

    def _exr_path(self, pixels: np.ndarray) -> str:
        """The image as an OpenEXR file with float R, G, B channels (what prepare_tensor_for_injection reads)."""
        import Imath

        path = os.path.join(self._tmp.name, "input.exr")
        header = self._exr.Header(self.width, self.height)
        channel = Imath.Channel(Imath.PixelType(Imath.PixelType.FLOAT))
        header["channels"] = {"R": channel, "G": channel, "B": channel}
        out = self._exr.OutputFile(path, header)
        try:
            out.writePixels({c: np.ascontiguousarray(pixels[i], dtype=np.float32).tobytes()
                             for i, c in enumerate("RGB")})
        finally:
            out.close()
        return path

    def _inject(self, tensor: bytes) -> int | None:
        """Hand the tensor to the driver; the frame counter its output will carry, None where the driver answered 0
        (picamera2's get_injection_cmp_frm returns 0 when its ioctl fails, so a 0 names no frame)."""
        fd = os.memfd_create("imx500-tensor", os.MFD_CLOEXEC)
        try:
            os.write(fd, tensor)
            try:
                self.imx500._IMX500__set_input_tensor(fd)
            except RuntimeError as exc:
                raise InjectionFailed(str(exc)) from exc
            return int(self.imx500.get_injection_cmp_frm()) or None
        finally:
            os.close(fd)

    def infer(self, batch: np.ndarray) -> InferenceResult:
        pixels = to_pixels(batch, self.normalization)[0]
        if pixels.shape[1:] != (self.height, self.width):
            raise BadInput(f"input {pixels.shape[2]}x{pixels.shape[1]} does not match the IMX500 network's "
                           f"{self.width}x{self.height}")
        with closing(self._exr.InputFile(self._exr_path(pixels))) as exr:
            tensor = self.imx500.prepare_tensor_for_injection(exr)
        target = self._inject(tensor)
        injections = 1
        deadline = time.monotonic() + self.settings.timeout_s
        while True:
            if time.monotonic() > deadline:
                raise InjectionFailed(f"no frame with the injected image's output within {self.settings.timeout_s} s")
            metadata = self.picam2.capture_metadata()
            if target is None:  # no frame number: a frame has passed, so a new injection gets another one
                if injections > self.settings.max_reinjections:
                    raise InjectionFailed(f"the IMX500 driver did not say which frame carries the injected image's "
                                          f"output ({injections} injections; get_injection_cmp_frm returned 0, its "
                                          f"value on an ioctl error)")
                target = self._inject(tensor)
                injections += 1
                continue
            info = metadata.get("CnnOutputTensorInfo")
            if not info or not metadata.get("CnnOutputTensor"):
                continue
            offset = frame_offset(int(self.imx500._IMX500__get_output_tensor_info(info)["frameCount"]), target)
            if offset < 0:
                continue
            if offset > 0:
                if injections > self.settings.max_reinjections:
                    raise InjectionFailed(f"the injected image's frame was missed {injections} times")
                target = self._inject(tensor)
                injections += 1
                continue
            return self._result(metadata)

    def _result(self, metadata: dict[str, Any]) -> InferenceResult:
        outputs = self.imx500.get_outputs(metadata, add_batch=True) or []
        if len(outputs) != len(self.output_names):
            raise InjectionFailed(f"the IMX500 returned {len(outputs)} outputs, the model has "
                                  f"{len(self.output_names)} ({', '.join(self.output_names)})")
        named = {}
        for name, value in zip(self.output_names, outputs, strict=True):
            shape = self.output_shapes.get(name)
            named[name] = fit_output(value, shape, name) if shape is not None else np.asarray(value, np.float32)
        kpi = self.kpi(metadata)
        return InferenceResult(named, None if kpi is None else float(kpi[0] + kpi[1]))

    def _close(self) -> None:
        try:
            self.picam2.stop()
            self.picam2.close()
        finally:
            self._tmp.cleanup()
