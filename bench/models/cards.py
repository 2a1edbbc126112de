"""Model cards: one YAML per model in ``models/``; the card defines inputs, outputs, checkpoints.

``--model`` also takes a card file anywhere, or an exported model (an ONNX file, or a folder of them, one
per category): :func:`load_model` resolves all of these to a card. Exported models are family ``onnx``
(``bench.models.exported``): their card states only what the harness needs to feed and read the graph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.data.preprocess import Recipe, Recipes
from bench.errors import BadInput
from bench.paths import cache_dir, models_dir
from bench.yamlfiles import load_named, names_in

REQUIRED = ("name", "family", "input", "checkpoints", "export")
EXPORTED_FAMILY = "onnx"  # an exported graph the user brings: no PyTorch, no export step
REQUIRED_EXPORTED = ("name", "family", "input", "outputs")
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

    @property
    def exported(self) -> bool:
        """An exported graph the user brought (family ``onnx``), rather than a network this harness defines."""
        return self.family == EXPORTED_FAMILY

    @property
    def postprocess(self) -> dict[str, Any]:
        """What turns the graph's outputs into a score and a map: the card's ``postprocess``, plus for exported
        models the output names (``score_output``, ``map_output``) from its ``outputs`` mapping."""
        post = dict(self.data.get("postprocess") or {})
        if self.exported:
            outputs = self.data["outputs"]
            post.update(score_output=outputs.get("score"), map_output=outputs.get("map"))
        return post

    def default_checkpoint(self) -> Path:
        """Where the checkpoint is when ``--checkpoint`` is not given: an exported card's ``model`` path
        (relative to the card), else the folder ``bench fit`` writes to."""
        if self.exported:
            if not self.data.get("model"):
                raise BadInput(f"{self.source}: an exported-model card needs 'model' (the ONNX file or folder), "
                               "or pass --checkpoint")
            path = Path(str(self.data["model"])).expanduser()
            return path if path.is_absolute() else self.source.parent / path
        return cache_dir() / "checkpoints" / self.name

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.data, sort_keys=True).encode()).hexdigest()


def card_names(folder: Path | None = None) -> list[str]:
    return names_in(folder or models_dir())


def load_card(name: str, folder: Path | None = None) -> ModelCard:
    data, path = load_named(folder or models_dir(), "model", name, REQUIRED)
    return ModelCard(data["name"], data["family"], data, path)


def card_from_file(path: Path) -> ModelCard:
    """A card file anywhere (``--model my.yaml``), checked for the fields its family needs."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"{path}: cannot read the model card ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: a model card is a YAML mapping")
    required = REQUIRED_EXPORTED if data.get("family") == EXPORTED_FAMILY else REQUIRED
    missing = [key for key in required if key not in data]
    if missing:
        raise BadInput(f"{path}: missing field '{missing[0]}'")
    if data["family"] == EXPORTED_FAMILY:
        from bench.models.exported import check_card

        check_card(data, path)
    return ModelCard(str(data["name"]), str(data["family"]), data, path.resolve())


def is_model_path(spec: str) -> bool:
    """Whether ``--model`` names a file or folder rather than a card in ``models/``."""
    return Path(spec).expanduser().exists() or spec.endswith((".yaml", ".yml", ".onnx")) or "/" in spec


def load_model(spec: str) -> ModelCard:
    """``--model``: a card name (``bench list models``), a card file, or an exported ONNX file or folder."""
    if not is_model_path(spec):
        return load_card(spec)
    path = Path(spec).expanduser()
    if not path.exists():
        raise BadInput(f"--model {spec}: no such file or folder")
    if path.suffix in (".yaml", ".yml"):
        return card_from_file(path)
    from bench.models.exported import card_for_export

    return card_for_export(path)


def card_of_run(model: dict[str, Any]) -> ModelCard:
    """The card a run record's ``model`` section was made with: its card file when that was one, else the card
    of that name in ``models/``. An exported model given without a card has no card to return (BadInput)."""
    source = Path(str(model.get("card", "")))
    if model.get("family") == EXPORTED_FAMILY or (source.suffix in (".yaml", ".yml") and source.parent != models_dir()):
        if source.suffix in (".yaml", ".yml") and source.is_file():
            return card_from_file(source)
        raise BadInput(f"model {model.get('name')}: no card file ({source})")
    return load_card(str(model["name"]))
