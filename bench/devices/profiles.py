"""Device profiles: one YAML file per lab device in ``devices/``."""

from __future__ import annotations

from pathlib import Path

from bench.devices.base import DeviceProfile
from bench.paths import devices_dir
from bench.yamlfiles import load_named, names_in

REQUIRED = ("name", "kind", "precision")


def profile_names(folder: Path | None = None) -> list[str]:
    return names_in(folder or devices_dir())


def load_profile(name: str, folder: Path | None = None) -> DeviceProfile:
    data, path = load_named(folder or devices_dir(), "device", name, REQUIRED)
    return DeviceProfile(
        name=data["name"],
        kind=data["kind"],
        precision=data["precision"],
        description=data.get("description", ""),
        runtime=data.get("runtime") or {},
        power=data.get("power") or {},
        location=data.get("location") or {},
        emulation=data.get("emulation") or {},
        source=path,
    )
