"""Adapter registry: profile ``kind`` -> adapter class, imported only when used.

Lazy imports keep a lean install working: a Jetson's TensorRT is never imported on the
host, and vice versa.
"""

from __future__ import annotations

import importlib

from bench.devices.base import Device, DeviceProfile
from bench.errors import BadInput

ADAPTERS: dict[str, str] = {
    "host": "bench.devices.host:HostDevice",
    "imx500": "bench.devices.imx500:IMX500Device",
    "jetson": "bench.devices.tensorrt:TensorRTDevice",
    "rb5": "bench.devices.rb5:RB5Device",
    "tensorrt": "bench.devices.tensorrt:TensorRTDevice",
}


def adapter_class(kind: str) -> type[Device]:
    if kind not in ADAPTERS:
        raise BadInput(f"adapter kind '{kind}' is not built in this version (built: {', '.join(sorted(ADAPTERS))})")
    module_name, _, attr = ADAPTERS[kind].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BadInput(f"adapter '{kind}' cannot load here: {exc}") from exc
    return getattr(module, attr)


def create_device(profile: DeviceProfile, emulate: bool = False) -> Device:
    """The profile's adapter, or with ``emulate`` its numerics on the host (no device needed)."""
    if emulate:
        if not profile.emulation:
            raise BadInput(f"{profile.source}: device '{profile.name}' has no emulation section; --emulate "
                           f"needs one (numerics: fp16 or int8_mct)")
        from bench.devices.emulated import EmulatedDevice

        return EmulatedDevice(profile)
    return adapter_class(profile.kind)(profile)
