"""Model cards: one YAML per model in ``models/``; the card defines inputs, outputs, checkpoints."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.preprocess import Recipe, Recipes
from bench.paths import models_dir
from bench.yamlfiles import load_named, names_in

REQUIRED = ("name", "family", "input", "checkpoints", "export")
FALLBACK_GATE_POINTS = 0.2  # image-AUROC points: EdgeZSAD's published host-vs-device bound


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    data: dict[str, Any]
    source: Path

    @property
    def recipes(self) -> Recipes:
        """The card's preprocessing with its per-category overrides."""
        return Recipes.from_card(self.data["input"])

    @property
    def recipe(self) -> Recipe:
        """The default recipe (shapes are the same for every category)."""
        return self.recipes.default

    @property
    def per_category(self) -> bool:
        return bool(self.data["checkpoints"].get("per_category", True))

    def drift_gate(self, profile: str, kind: str) -> tuple[float, str]:
        """The image-AUROC drift gate (points) for a device and where it came from: ``drift_gate`` keyed by
        the profile name, then the device kind, then ``default``; 0.2 (EdgeZSAD's published bound) when the
        card sets none, since INT8 devices drift more than FP16 ones and a card knows its own tolerance."""
        gates = self.data.get("drift_gate") or {}
        for key in (profile, kind, "default"):
            if key in gates:
                return float(gates[key]), f"card {self.name}, {key}"
        return FALLBACK_GATE_POINTS, f"default (card {self.name} sets no drift_gate)"

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()


def card_names(folder: Path | None = None) -> list[str]:
    return names_in(folder or models_dir())


def load_card(name: str, folder: Path | None = None) -> ModelCard:
    data, path = load_named(folder or models_dir(), "model", name, REQUIRED)
    return ModelCard(data["name"], data["family"], data, path)
