"""``--resume`` refuses a run whose model, data or device changed since it started (bench.run.continuity)."""

from __future__ import annotations

import copy
import json

import pytest

from bench.errors import BadInput
from bench.run.continuity import identity_changes, refuse_changed

PLANNED = {
    "device": {"profile": "jetson", "kind": "jetson", "precision": "fp16", "emulated": False,
               "environment": {"runtime": {"tensorrt": "10.3"}}},
    "model": {"name": "tinyglass", "card_sha256": "c" * 64, "backbone_sha256": "b" * 64, "input_shape": [1, 3, 8, 8],
              "preprocessing": {"mean": (0.485, 0.456, 0.406), "size": (8, 8)}, "postprocess": {"blur": 4},
              "categories": {"bottle": {"checkpoint": "/ck/bottle.pth", "checkpoint_sha256": "1" * 64,
                                        "onnx_sha256": "2" * 64}}},
    "dataset": {"name": "mvtec", "root": "/data", "index_sha256": "i" * 64},
}


def recorded() -> dict:
    """The planned manifest as the run record stores it (JSON: tuples become lists), with what measuring adds."""
    stored = json.loads(json.dumps(PLANNED))
    stored["status"] = "interrupted"
    stored["model"]["categories"]["bottle"]["artifact_sha256"] = "a" * 64
    return stored


def test_an_unchanged_setup_resumes() -> None:
    assert identity_changes(recorded(), PLANNED) == []
    refuse_changed("r", recorded(), PLANNED)


def test_what_may_change_between_attempts_is_not_refused() -> None:
    """Moving the data folder or upgrading nothing that decides the figures keeps the run resumable."""
    planned = copy.deepcopy(PLANNED)
    planned["dataset"]["root"] = "/mnt/data"
    planned["model"]["categories"]["bottle"]["checkpoint"] = "/elsewhere/bottle.pth"
    planned["device"]["environment"] = {"runtime": {"tensorrt": "10.3"}, "warnings": ["hot"]}
    assert identity_changes(recorded(), planned) == []


@pytest.mark.parametrize("path, value, shown", [
    (("model", "categories", "bottle", "checkpoint_sha256"), "9" * 64, "recorded 111111111111, now 999999999999"),
    (("model", "categories", "bottle", "onnx_sha256"), "8" * 64, "recorded 222222222222, now 888888888888"),
    (("model", "card_sha256"), "7" * 64, "model.card_sha256"),
    (("model", "preprocessing", "size"), (16, 16), "model.preprocessing"),
    (("dataset", "index_sha256"), "j" * 64, "dataset.index_sha256"),
    (("device", "precision"), "int8", "recorded 'fp16', now 'int8'"),
    (("device", "emulated"), True, "device.emulated"),
])
def test_each_identity_field_is_compared(path: tuple[str, ...], value: object, shown: str) -> None:
    planned = copy.deepcopy(PLANNED)
    node = planned
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    changes = identity_changes(recorded(), planned)
    assert len(changes) == 1 and shown in changes[0] and changes[0].startswith(".".join(path[:2]))
    with pytest.raises(BadInput, match=r"^--resume r: .* changed since the run started; .*start a new run"):
        refuse_changed("r", recorded(), planned)


def test_a_category_the_record_never_planned_is_a_change() -> None:
    planned = copy.deepcopy(PLANNED)
    planned["model"]["categories"]["cable"] = {"checkpoint_sha256": "3" * 64, "onnx_sha256": "4" * 64}
    changes = identity_changes(recorded(), planned)
    assert changes == ["model.categories.cable.checkpoint_sha256 (recorded none, now 333333333333)",
                       "model.categories.cable.onnx_sha256 (recorded none, now 444444444444)"]
    with pytest.raises(BadInput, match=r"cable\.checkpoint_sha256 .*, and 1 more changed"):
        refuse_changed("r", recorded(), planned)
