"""The device families, one line per package: profile ``kind`` -> the package exporting ``FAMILY``.

A family's package imports nothing heavy, so listing and doctoring profiles works on a lean
install; its adapter and runtime are imported only when a device of the family is created.
"""

from __future__ import annotations

import importlib

from bench.devices.base import Device, DeviceProfile
from bench.devices.family import DeviceFamily
from bench.errors import BadInput

FAMILIES: dict[str, str] = {
    "host": "bench.devices.host",
    "tensorrt": "bench.devices.tensorrt",
    "imx500": "bench.devices.imx500",
    "rb5": "bench.devices.rb5",
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


def family(name: str) -> DeviceFamily:
    """The family a profile's ``kind`` names."""
    if name not in FAMILIES:
        raise BadInput(f"device kind '{name}' is not built in this version (built: {', '.join(family_names())})")
    return importlib.import_module(FAMILIES[name]).FAMILY


def create_device(profile: DeviceProfile, emulate: bool = False) -> Device:
    """The profile's adapter, or with ``emulate`` its numerics on the host (no device needed)."""
    if emulate:
        from bench.devices.emulation.device import EmulatedDevice

        return EmulatedDevice(profile)
    return family(profile.kind).adapter_class()(profile)
