"""FAKE picamera2 (follows picamera2 0.3.38: the API subset the IMX500 adapter uses); see tests/fakes/README.md.

``Picamera2`` opens the cameras the simulated board lists (``picamera2._sim``) and produces frames on
demand: each ``capture_metadata()`` is the next frame, carrying the IMX500's output for whatever input
tensor is live on that frame (see ``picamera2.devices.imx500``).
"""

from __future__ import annotations

import os
from typing import Any

from picamera2 import _sim


class Picamera2:
    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.__init__: an index past global_camera_info() raises
    # RuntimeError; any failure while opening the camera is re-raised as "Camera __init__ sequence did not complete."
    def __init__(self, camera_num: int = 0, verbose_console: Any = None, tuning: Any = None,
                 allocator: Any = None) -> None:
        self.is_open = False
        self.started = False
        if camera_num >= len(self.global_camera_info()):
            raise RuntimeError(
                f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to check connected cameras')
        self.camera_idx = self.global_camera_info()[camera_num]["Num"]
        if os.environ.get("FAKE_PICAMERA2_BUSY"):
            raise RuntimeError("Camera __init__ sequence did not complete.")
        self.camera: dict[str, Any] | None = _sim.listed_cameras()[self.camera_idx]
        self.camera_config: dict[str, Any] | None = None
        self.is_open = True

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.global_camera_info: Model/Location/Rotation, Id and Num
    # (libcamera's index), sorted by Id in reverse with USB cameras last
    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return sorted(_sim.listed_cameras(), key=lambda cam: ("/usb" not in cam["Id"], cam["Id"]), reverse=True)

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.create_preview_configuration ("Camera not opened" when closed)
    def create_preview_configuration(self, main: dict | None = None, lores: dict | None = None,
                                     raw: dict | None = None, transform: Any = None, colour_space: Any = None,
                                     buffer_count: int = 4, controls: dict | None = None, display: str = "main",
                                     encode: str = "main", queue: bool = True, sensor: dict | None = None,
                                     use_case: str = "preview") -> dict[str, Any]:
        if self.camera is None:
            raise RuntimeError("Camera not opened")
        return {"use_case": use_case, "buffer_count": buffer_count, "controls": dict(controls or {}),
                "main": {"format": "XBGR8888", "size": (640, 480), **(main or {})}}

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.start: configures ("preview" when none given), then starts
    def start(self, config: dict | str | None = None, show_preview: bool | None = False) -> None:
        if not self.camera_config and config is None:
            config = "preview"
        if config is not None:
            if self.camera is None:
                raise RuntimeError("Camera not opened")
            self.camera_config = self.create_preview_configuration() if config == "preview" else dict(config)
        _sim.sensor().start(self.camera_config or {})
        self.started = True

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.capture_metadata: the next completed frame's metadata.
    # The real call waits for a frame that never comes when the camera is not running; the fake says so instead.
    def capture_metadata(self, wait: Any = None, signal_function: Any = None) -> dict[str, Any]:
        if not self.started:
            raise RuntimeError("FAKE picamera2: capture_metadata on a camera that is not running would wait forever")
        return _sim.sensor().next_frame()

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.stop: a no-op when not started
    def stop(self) -> None:
        self.started = False

    # picamera2 0.3.38 picamera2/picamera2.py Picamera2.close: stops, releases; a no-op when not open
    def close(self) -> None:
        if not self.is_open:
            return
        self.stop()
        self.is_open = False
        self.camera = None
        self.camera_config = None
