"""A resumed run's rows must come from the same model, data and device as the rows before them.

``--resume`` plans the run again from its recorded request, so a checkpoint refitted, a card edited,
a dataset changed or a profile switched to another precision since the first attempt would give rows
of two setups under a manifest that names one. The record's identity is compared before the run is
reopened; a difference is refused, naming what changed.
"""

from __future__ import annotations

import json
from typing import Any

from bench.errors import BadInput

IDENTITY: dict[str, tuple[str, ...]] = {
    "device": ("profile", "kind", "precision", "emulated"),
    "model": ("name", "card_sha256", "backbone_sha256", "input_shape", "preprocessing", "postprocess"),
    "dataset": ("name", "index_sha256"),
}
CATEGORY_IDENTITY = ("checkpoint_sha256", "onnx_sha256")
_MISSING = object()


def _shown(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its head is enough to tell two apart
        return value[:12]
    return "none" if value is _MISSING else repr(value)


def identity_changes(recorded: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    """Each identity field that differs between the recorded manifest and the one planned now, as
    ``'field (recorded X, now Y)'``; categories are compared for those planned now."""
    planned = json.loads(json.dumps(planned, default=str))  # as the record stores it: tuples become lists
    pairs = [(f"{section}.{key}", recorded.get(section, {}).get(key, _MISSING),
              planned.get(section, {}).get(key, _MISSING))
             for section, keys in IDENTITY.items() for key in keys]
    was = recorded.get("model", {}).get("categories", {})
    for category, now in planned.get("model", {}).get("categories", {}).items():
        pairs += [(f"model.categories.{category}.{key}", was.get(category, {}).get(key, _MISSING),
                   now.get(key, _MISSING)) for key in CATEGORY_IDENTITY]
    return [f"{name} (recorded {_shown(a)}, now {_shown(b)})" for name, a, b in pairs if a != b]


def refuse_changed(run_id: str, recorded: dict[str, Any], planned: dict[str, Any]) -> None:
    """Raise ``BadInput`` naming the first identity field that changed since the run started."""
    changes = identity_changes(recorded, planned)
    if changes:
        more = f", and {len(changes) - 1} more" if len(changes) > 1 else ""
        raise BadInput(f"--resume {run_id}: {changes[0]}{more} changed since the run started; its rows would "
                       "mix two setups under one manifest (start a new run)")
