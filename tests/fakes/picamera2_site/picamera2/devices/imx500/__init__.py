"""FAKE ``picamera2.devices.imx500`` (follows picamera2 0.3.38, picamera2/devices/imx500/imx500.py); see
tests/fakes/README.md.

``IMX500`` keeps the real class's constructor, public methods and the private methods picamera2's
injection example calls (``_IMX500__set_input_tensor``, ``_IMX500__get_output_tensor_info``), with the
real checks, return conventions and error texts: the camera search (RuntimeError when no imx500 sensor
node, StopIteration when libcamera lists no matching imx500), ``prepare_tensor_for_injection``'s checks
and layout (FLOAT R/G/B channels in [0, 1], quantized unsigned or signed, width padded to 32, height
to 2, planar RGB or BGR), ``get_injection_cmp_frm`` returning 0 when its ioctl fails, the output tensor
info parsed from libcamera's packed bytes (a wrong length raises) and ``get_outputs``' Fortran-order
reshape. The board and the sensor are simulated in ``picamera2._sim`` (its docstring lists the faults).
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from picamera2 import Picamera2, _sim


def _ioctl_error(what: str, code: int) -> RuntimeError:
    """A failed driver ioctl as the real code re-raises it: RuntimeError(f'IMX500: {what}: {err}') from the OSError."""
    err = OSError(code, os.strerror(code))
    error = RuntimeError(f"IMX500: {what}: {err}")
    error.__cause__ = err
    return error


class IMX500:
    # picamera2 0.3.38 imx500.py IMX500.__init__: the first imx500 sensor node (matching camera_id) is opened and
    # its camera number taken with next() over Picamera2.global_camera_info(), which raises StopIteration when
    # libcamera lists no imx500 with that id; then injection is enabled and the network firmware set and read
    def __init__(self, network_file: str, camera_id: str = "", tensor_injection: bool = False) -> None:
        self.device_fd = None
        self.__cfg: dict[str, Any] = {"network_file": network_file, "input_tensor": {}}
        if _sim.imx500_node_bound() and (camera_id == "" or camera_id in _sim.IMX500_OF_NODE):
            self.device_fd = "/dev/v4l-subdev2"
            self.__camera_num = next(c["Num"] for c in Picamera2.global_camera_info()
                                     if c["Model"] == "imx500" and c["Id"] in _sim.IMX500_OF_NODE)
        if self.device_fd is None:
            raise RuntimeError("IMX500: Requested camera dev-node not found")
        self.__sensor = _sim.sensor()
        self.__injection = False
        if network_file != "":
            if tensor_injection:
                self.__injection = True
            self.__set_network_firmware(os.path.abspath(network_file))
        self.__cfg["input_tensor"].update({"norm_val": [-2048, -2048, -2048], "norm_shift": [4, 4, 4],
                                           "div_val": [1024, 1024, 1024], "div_shift": 6})

    # picamera2 0.3.38 imx500.py IMX500.__set_network_firmware and __ni_from_network: the file must exist; the
    # input tensor's size, format and (for RGB/BGR only) dtype come from the network's network_info
    def __set_network_firmware(self, network_filename: str) -> None:
        if not os.path.isfile(network_filename):
            raise RuntimeError(f"Firmware file {network_filename} does not exist.")
        self.__sensor.load(Path(network_filename).resolve().parent.parent / "model_mctq.onnx")
        h, w = self.__sensor.shape
        fmt, dtype = _sim.input_format()
        self.__cfg["input_tensor"].update({"width": w, "height": h, "input_format": fmt})
        if dtype is not None:
            self.__cfg["input_tensor"]["dtype"] = dtype
        self.__cfg["input_tensor_size"] = (w, h)

    @property
    def camera_num(self) -> int:
        return self.__camera_num

    @property
    def config(self) -> dict:
        return self.__cfg

    # picamera2 0.3.38 imx500.py IMX500.get_input_size
    def get_input_size(self) -> tuple:
        return self.config["input_tensor_size"]

    # picamera2 0.3.38 imx500.py IMX500.show_network_fw_progress_bar: returns at once without a progress source
    def show_network_fw_progress_bar(self) -> None:
        return None

    # picamera2 0.3.38 imx500.py IMX500.prepare_tensor_for_injection
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
        channels = header["channels"]
        for name in "RGB":
            if name not in channels:
                raise ValueError(f"EXR input missing required channel '{name}'")
            if channels[name] != Imath.Channel(float_type):
                raise ValueError(f"Channel '{name}' is not of type FLOAT (found: {channels[name]})")
        planes = {name: np.frombuffer(exr_input.channel(name, float_type), dtype=np.float32).reshape(size[::-1])
                  for name in "RGB"}
        for name, plane in planes.items():
            if plane.min() < 0.0 or plane.max() > 1.0:
                raise ValueError(f"Channel '{name}' values not normalised to 0-1 range (min: {plane.min():.3f}, "
                                 f"max: {plane.max():.3f})")
        tensor = self.config["input_tensor"]
        dtype = tensor["dtype"]  # KeyError, as in the real code, for a network whose format is neither RGB nor BGR
        padded_shape = ((tensor["height"] + 1) // 2 * 2, (tensor["width"] + 31) // 32 * 32)
        quantized = {}
        if dtype not in ("signed", "unsigned"):  # the real convert_channel_quantized never binds ``quantized``
            raise UnboundLocalError("cannot access local variable 'quantized' where it is not associated with a value")
        for name, plane in planes.items():
            levels = np.clip(np.round(plane * 255.0), 0, 255)
            values = (levels - 128).astype(np.int8) if dtype == "signed" else levels.astype(np.uint8)
            padded = np.zeros(padded_shape, values.dtype)
            padded[: size[1], : size[0]] = values
            quantized[name] = padded.flatten()
        order = tensor["input_format"]
        if order not in ("RGB", "BGR"):  # the real code binds ``planar_data`` only for these two
            raise UnboundLocalError("cannot access local variable 'planar_data' where it is not associated with a "
                                    "value")
        return np.concatenate([quantized[name] for name in order]).tobytes()

    # picamera2 0.3.38 imx500.py IMX500.__set_input_tensor: an ioctl with the fd; OSError -> RuntimeError. What the
    # driver does with the buffer is simulated: it reads the planes in the network's format back for the network.
    def _IMX500__set_input_tensor(self, input_tensor_fd: int) -> None:
        fail_after = os.environ.get("FAKE_IMX500_FAIL_AFTER")
        if not self.__injection:
            raise _ioctl_error("Unable to set input tensor fd", errno.EINVAL)
        if fail_after is not None and self.__sensor.injections >= int(fail_after):
            raise _ioctl_error("Unable to set input tensor fd", errno.ENODEV)
        tensor = self.config["input_tensor"]
        w, h = tensor["width"], tensor["height"]
        pw, ph = (w + 31) // 32 * 32, (h + 1) // 2 * 2
        data = os.pread(input_tensor_fd, 3 * pw * ph, 0)
        if len(data) != 3 * pw * ph:
            raise _ioctl_error("Unable to set input tensor fd", errno.EINVAL)
        raw = np.frombuffer(data, np.int8 if tensor.get("dtype") == "signed" else np.uint8)
        levels = raw.astype(np.float32) + (128.0 if tensor.get("dtype") == "signed" else 0.0)
        planes = levels.reshape(3, ph, pw)[:, :h, :w] / 255.0
        self.__sensor.inject(planes[::-1].copy() if tensor["input_format"] == "BGR" else planes)

    # picamera2 0.3.38 imx500.py IMX500.get_injection_cmp_frm: the control's value, or 0 (after printing) when
    # the ioctl fails
    def get_injection_cmp_frm(self) -> int:
        self.__sensor.cmp_reads += 1
        if _sim.cmp_frame_read_fails(self.__sensor.cmp_reads):
            err = OSError(errno.EIO, os.strerror(errno.EIO))
            print(f"IMX500: Unable to get injection comparison frame from device driver: {err}")
            return 0
        return self.__sensor.cmp_frame

    # picamera2 0.3.38 imx500.py IMX500.__get_output_tensor_info: bytes(...) of anything else, a length other than
    # ctypes.sizeof(CnnOutputTensorInfoExported) raises ValueError, then the struct's fields
    def _IMX500__get_output_tensor_info(self, tensor_info: Any) -> dict:
        if type(tensor_info) not in [bytes, bytearray]:
            tensor_info = bytes(tensor_info)
        if len(tensor_info) != _sim.TENSOR_INFO_SIZE:
            raise ValueError(f"tensor info length {len(tensor_info)} does not match expected size "
                             f"{_sim.TENSOR_INFO_SIZE}")
        fields = struct.unpack(_sim.TENSOR_INFO_FORMAT, tensor_info)
        name, num_tensors, frame_count = fields[0], fields[1], fields[-1]
        info = []
        for i in range(num_tensors):
            entry = fields[2 + 18 * i: 2 + 18 * (i + 1)]
            info.append({"tensor_data_num": entry[0], "num_dimensions": entry[1], "size": list(entry[2:2 + entry[1]])})
        return {"network_name": name.decode("utf-8").strip("\x00"), "num_tensors": num_tensors,
                "frameCount": frame_count, "info": info}

    # picamera2 0.3.38 imx500.py IMX500.get_output_shapes
    def get_output_shapes(self, metadata: dict) -> list:
        tensor_info = metadata.get("CnnOutputTensorInfo")
        if not tensor_info:
            return []
        return [o["size"] for o in self._IMX500__get_output_tensor_info(tensor_info)["info"]]

    # picamera2 0.3.38 imx500.py IMX500.get_outputs: the flat tensor split by the shapes, reshaped in Fortran order
    def get_outputs(self, metadata: dict, add_batch: bool = False) -> list[np.ndarray] | None:
        output_tensor = metadata.get("CnnOutputTensor")
        if not output_tensor:
            return None
        flat = np.fromiter(output_tensor, dtype=np.float32)
        outputs, offset = [], 0
        for shape in self.get_output_shapes(metadata):
            size = np.prod(shape)
            tensor = flat[offset: offset + size].reshape(shape, order="F")
            outputs.append(np.expand_dims(tensor, 0) if add_batch else tensor)
            offset += size
        return outputs

    # picamera2 0.3.38 imx500.py IMX500.get_kpi_info: (DNN, DSP) runtime in milliseconds from microseconds
    @staticmethod
    def get_kpi_info(metadata: dict) -> tuple[float, float] | None:
        kpi = metadata.get("CnnKpiInfo")
        if kpi is None:
            return None
        return kpi[0] / 1000, kpi[1] / 1000
