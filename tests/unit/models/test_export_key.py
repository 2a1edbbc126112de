"""The ONNX export cache keys on the model code: an edited network or exporter never reuses an old graph
(whose sha256 every device artifact is then keyed on)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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


@requires("export", "torch")
def test_a_checked_export_is_found_again_without_torch(small_demo: dict) -> None:
    """A device that runs the ONNX gets the export an earlier run checked without importing torch (seconds of
    a warm run), and exactly what the full path gives."""
    card = load_card("tinyglass")
    exports = small_demo["cache"] / "exports"
    args = (small_demo["checkpoint"], "washer", small_demo["backbone"])
    full = preparing.prepare(card, *args, lambda: [np.zeros(card.recipe.input_shape, np.float32)], exports)
    code = ("import json, sys; from pathlib import Path; from bench.models.prepare import prepare; "
            "from bench.models.cards import load_card; "
            f"p = prepare(load_card('tinyglass'), Path({str(args[0])!r}), 'washer', Path({str(args[2])!r}), "
            f"lambda: 1 / 0, Path({str(exports)!r}), need_module=False); "
            "assert 'torch' not in sys.modules, 'torch was imported'; "
            "print(json.dumps([p.export.exported.sha256, p.export.cached, p.export.parity, p.params, p.macs, "
            "p.backbone_sha256, p.checkpoint_sha256, p.module is None]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == [full.export.exported.sha256, True, full.export.parity, full.params, full.macs,
                                       full.backbone_sha256, full.checkpoint_sha256, True]


@requires("export", "torch")
def test_a_changed_input_or_a_quantizing_device_takes_the_full_path(small_demo: dict, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    card = load_card("tinyglass")
    exports = tmp_path / "exports"
    shutil.copytree(small_demo["cache"] / "exports", exports, ignore=shutil.ignore_patterns("prepared"))
    backbone = tmp_path / "backbone.pth"
    shutil.copy(small_demo["backbone"], backbone)
    args = (small_demo["checkpoint"], "washer", backbone)
    preparing.prepare(card, *args, [np.zeros(card.recipe.input_shape, np.float32)], exports)  # writes the entry

    def full_path() -> None:
        raise Stop

    monkeypatch.setattr(preparing, "require_torch", full_path)
    found = preparing.prepare(card, *args, lambda: 1 / 0, exports, need_module=False)
    assert found.export.cached and found.module is None
    with pytest.raises(Stop):  # MCT quantizes the module itself
        preparing.prepare(card, *args, lambda: [], exports, need_module=True)
    with open(backbone, "ab") as fh:  # other bytes under the same path
        fh.write(b"\0")
    with pytest.raises(Stop):
        preparing.prepare(card, *args, lambda: [], exports, need_module=False)
    backbone.write_bytes(Path(small_demo["backbone"]).read_bytes())
    entry = next((exports / "prepared").glob("*.json"))
    entry.write_text("{not json")
    with pytest.raises(Stop):  # a damaged entry is a miss
        preparing.prepare(card, *args, lambda: [], exports, need_module=False)
