"""FAKE picamera2.devices (see tests/fakes/README.md)."""

from picamera2.devices.imx500 import IMX500

__all__ = ["IMX500"]
