"""FAKE picamera2 (0.3.38 API subset used by the IMX500 adapter); see tests/fakes/README.md.

``Picamera2`` produces frames on demand: each ``capture_metadata()`` is the next frame, carrying
the IMX500's output for whatever input tensor is live on that frame (see devices/imx500).
"""

from __future__ import annotations

from typing import Any

from picamera2.devices.imx500 import _camera


class Picamera2:
    def __init__(self, camera_num: int = 0) -> None:
        if camera_num != 0:
            raise IndexError("list index out of range")  # what picamera2 raises for a missing camera number
        self.camera_num = camera_num
        self.started = False
        self.pre_callback = None

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return [{"Model": "imx500", "Location": 2, "Rotation": 0, "Id": "/base/axi/pcie@120000/rp1/i2c@88000/imx500@1a",
                 "Num": 0}]

    def create_preview_configuration(self, main: dict | None = None, lores: dict | None = None,
                                     raw: dict | None = None, transform: Any = None, colour_space: Any = None,
                                     buffer_count: int = 4, controls: dict | None = None, display: str = "main",
                                     encode: str = "main", **kwargs: Any) -> dict[str, Any]:
        return {"use_case": "preview", "buffer_count": buffer_count, "controls": dict(controls or {}),
                "main": main or {"format": "XBGR8888", "size": (640, 480)}}

    def start(self, config: dict | None = None, show_preview: bool | None = False) -> None:
        _camera().start(config or {})
        self.started = True

    def capture_metadata(self, wait: Any = None) -> dict[str, Any]:
        if not self.started:
            raise RuntimeError("Camera is not running")
        return _camera().next_frame()

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False
