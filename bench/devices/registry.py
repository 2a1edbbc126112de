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


def create_device(profile: DeviceProfile) -> Device:
    return adapter_class(profile.kind)(profile)
