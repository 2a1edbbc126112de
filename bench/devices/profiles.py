"""Device profiles: one YAML file per lab device in ``devices/``."""

from __future__ import annotations

from pathlib import Path

import yaml

from bench.devices.base import DeviceProfile
from bench.errors import BadInput, one_of
from bench.paths import devices_dir

REQUIRED = ("name", "kind", "precision")


def profile_names(folder: Path | None = None) -> list[str]:
    folder = folder or devices_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_profile(name: str, folder: Path | None = None) -> DeviceProfile:
    folder = folder or devices_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise one_of("device", name, profile_names(folder))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: invalid YAML ({exc})") from exc
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise BadInput(f"{path}: missing field '{missing[0]}'")
    if data["name"] != name:
        raise BadInput(f"{path}: name '{data['name']}' does not match the file name")
    return DeviceProfile(
        name=data["name"],
        kind=data["kind"],
        precision=data["precision"],
        description=data.get("description", ""),
        runtime=data.get("runtime") or {},
        power=data.get("power") or {},
        location=data.get("location") or {},
        source=path,
    )
