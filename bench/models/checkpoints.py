"""Finding a category's checkpoint under ``--checkpoint`` by the model card's patterns."""

from __future__ import annotations

import re
from pathlib import Path

from bench.errors import BadInput
from bench.models.cards import ModelCard

_EPOCH = re.compile(r"_(\d+)\.pth$")


def _epoch_order(path: Path) -> tuple[int, str]:
    """``ckpt_best_149.pth`` after ``ckpt_best_99.pth``: the official code names the best epoch."""
    found = _EPOCH.search(path.name)
    return (int(found.group(1)) if found else -1, path.name)


def resolve_checkpoint(card: ModelCard, given: Path, category: str) -> Path:
    """A file is used as is; in a folder the card's patterns are tried in order (zero-shot models have
    one checkpoint for every category, so their patterns do not name one). Within a pattern the highest
    epoch wins; matches in two different folders are ambiguous and refused."""
    if given.is_file():
        return given
    if not given.is_dir():
        raise BadInput(f"--checkpoint {given}: no such file or folder")
    patterns = card.data["checkpoints"].get("patterns", ["{category}.pth"] if card.per_category else ["*.pth"])
    for pattern in patterns:
        matches = [p for p in given.glob(pattern.format(category=category)) if p.is_file()]
        if not matches:
            continue
        folders = sorted({p.parent for p in matches})
        if len(folders) > 1:
            shown = ", ".join(str(f.relative_to(given)) for f in folders[:3])
            raise BadInput(f"--checkpoint {given}: checkpoints for '{category}' in {len(folders)} folders "
                           f"({shown}); point --checkpoint at one of them")
        return max(matches, key=_epoch_order)
    tried = ", ".join(p.format(category=category) for p in patterns)
    raise BadInput(f"--checkpoint {given}: no checkpoint for category '{category}' (tried {tried})")
