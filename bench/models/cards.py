"""Model cards: one YAML per model in ``models/``; the card defines inputs, outputs, checkpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.data.preprocess import Recipe
from bench.errors import BadInput, one_of
from bench.paths import models_dir

REQUIRED = ("name", "family", "input", "checkpoints", "export")


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    data: dict[str, Any]
    source: Path

    @property
    def recipe(self) -> Recipe:
        return Recipe.from_card(self.data["input"])

    @property
    def per_category(self) -> bool:
        return bool(self.data["checkpoints"].get("per_category", True))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()


def card_names(folder: Path | None = None) -> list[str]:
    folder = folder or models_dir()
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def load_card(name: str, folder: Path | None = None) -> ModelCard:
    folder = folder or models_dir()
    path = folder / f"{name}.yaml"
    if not path.is_file():
        raise one_of("model", name, card_names(folder))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: invalid YAML ({exc})") from exc
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise BadInput(f"{path}: missing field '{missing[0]}'")
    return ModelCard(data["name"], data["family"], data, path)
