"""Named YAML files in a folder (device profiles, model cards): listing and validated loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.errors import BadInput, one_of


def names_in(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_named(folder: Path, kind: str, name: str, required: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
    """``folder/<name>.yaml`` as a dict with its required fields; an unknown name lists the valid ones."""
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise one_of(kind, name, names_in(folder))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: invalid YAML ({exc})") from exc
    missing = [key for key in required if key not in data]
    if missing:
        raise BadInput(f"{path}: missing field '{missing[0]}'")
    if data.get("name") != name:
        raise BadInput(f"{path}: name '{data.get('name')}' does not match the file name")
    return data, path
