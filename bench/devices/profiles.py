"""Device profiles: one YAML file per lab device in ``devices/``."""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from bench.devices.base import ROLES, DeviceProfile
from bench.errors import BadInput
from bench.paths import devices_dir
from bench.yamlfiles import load_named, names_in

REQUIRED = ("name", "kind", "precision")


def profile_data(profile: DeviceProfile) -> dict[str, Any]:
    """The profile as plain data without its file path: what identifies it in cache keys and on the wire."""
    data = asdict(profile)
    data.pop("source", None)
    return data


def profile_from_data(data: dict[str, Any]) -> DeviceProfile:
    """A profile received as plain data (a remote worker's); its source is its name, for error messages."""
    return DeviceProfile(**{**data, "source": Path(data.get("name", "remote"))})


def profile_names(folder: Path | None = None) -> list[str]:
    return names_in(folder or devices_dir())


def load_profile(name: str, folder: Path | None = None) -> DeviceProfile:
    data, path = load_named(folder or devices_dir(), "device", name, REQUIRED)
    known = {f.name for f in fields(DeviceProfile)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:  # a typo (``rol: reference``) would otherwise silently fall back to a default
        raise BadInput(f"{path}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    role = data.get("role", "device")
    if role not in ROLES:
        raise BadInput(f"{path}: role '{role}' is not one of {', '.join(ROLES)}")
    return DeviceProfile(
        name=data["name"],
        kind=data["kind"],
        precision=data["precision"],
        description=data.get("description", ""),
        role=role,
        runtime=data.get("runtime") or {},
        power=data.get("power") or {},
        location=data.get("location") or {},
        emulation=data.get("emulation") or {},
        source=path,
    )
