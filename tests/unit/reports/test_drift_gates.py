"""Drift gates per model x device: the card's ``drift_gate`` by profile, then kind, then default, else 0.2;
``--max-drift`` overrides; an unknown card falls back to 0.2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import paths

from bench.comparison import card_gate, quantization_info, resolve_gate
from bench.models.cards import ModelCard

REPO = paths.REPO


def card(gates: dict | None) -> ModelCard:
    data = {"name": "m", "family": "f"} | ({"drift_gate": gates} if gates is not None else {})
    return ModelCard("m", "f", data, Path("models/m.yaml"))


def test_profile_name_wins_over_kind_and_default() -> None:
    gates = card({"default": 0.3, "imx500": 0.5, "imx500-lab2": 0.7})
    assert gates.drift_gate("imx500-lab2", "imx500") == (0.7, "card m, imx500-lab2")
    assert gates.drift_gate("imx500-lab1", "imx500") == (0.5, "card m, imx500")
    assert gates.drift_gate("jetson", "jetson") == (0.3, "card m, default")


def test_a_card_without_gates_gets_the_fallback() -> None:
    points, source = card(None).drift_gate("imx500", "imx500")
    assert points == 0.2 and source.startswith("default") and "card m" in source
    points, source = card({"imx500": 0.5}).drift_gate("jetson", "jetson")
    assert points == 0.2 and source.startswith("default")


def test_the_shipped_cards() -> None:
    tinyglass = yaml.safe_load((REPO / "models" / "tinyglass.yaml").read_text())["drift_gate"]
    imx500 = card_gate({"model": {"name": "tinyglass"}, "device": {"profile": "imx500", "kind": "imx500"}})
    assert (imx500.points, imx500.source) == (tinyglass["imx500"], "card tinyglass, imx500")
    jetson = card_gate({"model": {"name": "tinyglass"}, "device": {"profile": "jetson", "kind": "jetson"}})
    assert (jetson.points, jetson.source) == (tinyglass["default"], "card tinyglass, default")
    assert "drift_gate" not in yaml.safe_load((REPO / "models" / "edgezsad.yaml").read_text())
    assert card_gate({"model": {"name": "edgezsad"}, "device": {"profile": "rb5", "kind": "rb5"}}).points == 0.2


def test_unknown_card_and_override() -> None:
    unknown = {"model": {"name": "some-export"}, "device": {"profile": "imx500", "kind": "imx500"}}
    assert (card_gate(unknown).points, card_gate(unknown).source) == (0.2, "default")
    known = {"model": {"name": "tinyglass"}, "device": {"profile": "imx500", "kind": "imx500"}}
    override = resolve_gate(known, 0.05)
    assert (override.points, override.source) == (0.05, "--max-drift")
    assert override.describe() == "0.05-point gate (--max-drift)"


@pytest.mark.parametrize("nested", [True, False])
def test_quantization_info_of_device_and_emulated_artifacts(nested: bool) -> None:
    report = {"quantizer_nodes": {"ActivationPOTQuantizer": 9}, "calibration": {"mode": "train-normal"},
              "output_rails": {"patch_scores": 0.996, "score": 0.498046875}}
    details = {"quantization": report, "conversion": {}} if nested else report  # device vs --emulate layout
    manifest = {"model": {"categories": {"wood": {"artifact_details": details}, "tile": {"artifact_details": {}}}}}
    assert quantization_info(manifest, "wood") == {"calibration": "train-normal", "output": "score",
                                                   "output_rail": 0.498046875}
    assert quantization_info(manifest, "tile") == {}
