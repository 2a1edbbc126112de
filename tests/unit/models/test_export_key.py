"""The ONNX export cache keys on the model code: an edited network or exporter never reuses an old graph
(whose sha256 every device artifact is then keyed on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.extras import requires

from bench.models import prepare as preparing
from bench.models.cards import load_card


class Stop(Exception):
    pass


@requires("export", "torch")
def test_the_export_key_holds_the_model_code_revision(small_demo: dict, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    seen = []

    def capture(module: object, key_parts: dict, *rest: object) -> None:
        seen.append(key_parts)
        raise Stop

    monkeypatch.setattr(preparing, "exported_model", capture)
    card = load_card("tinyglass")
    inputs = [np.zeros(card.recipe.input_shape, np.float32)]
    for revision in ("before-an-edit", "after-an-edit"):
        monkeypatch.setattr(preparing, "model_code_revision", lambda r=revision: r)
        with pytest.raises(Stop):
            preparing.prepare(card, small_demo["checkpoint"], "washer", small_demo["backbone"], inputs, tmp_path)
    assert [parts["code"] for parts in seen] == ["before-an-edit", "after-an-edit"]
    assert {k: v for k, v in seen[0].items() if k != "code"} == {k: v for k, v in seen[1].items() if k != "code"}


def test_the_model_code_revision_covers_every_model_module() -> None:
    """Networks, backbones, patches and the exporter all live in bench.models, which the revision hashes."""
    import bench.models

    modules = {p.stem for p in Path(bench.models.__file__).parent.glob("*.py")}
    assert {"tinyglass", "glass", "edgezsad", "backbones", "patches", "export"} <= modules
    assert len(preparing.model_code_revision()) == 16
