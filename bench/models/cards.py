"""Model cards: one YAML per model in ``models/``; the card defines inputs, outputs, checkpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.preprocess import Recipe
from bench.paths import models_dir
from bench.yamlfiles import load_named, names_in

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
    return names_in(folder or models_dir())


def load_card(name: str, folder: Path | None = None) -> ModelCard:
    data, path = load_named(folder or models_dir(), "model", name, REQUIRED)
    return ModelCard(data["name"], data["family"], data, path)
