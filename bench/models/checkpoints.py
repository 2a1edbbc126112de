"""Finding a category's checkpoint under ``--checkpoint`` by the model card's patterns."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BadInput
from bench.models.cards import ModelCard


def resolve_checkpoint(card: ModelCard, given: Path, category: str) -> Path:
    """A file is used as is; in a folder the card's patterns are tried in order (zero-shot models have
    one checkpoint for every category, so their patterns do not name one)."""
    if given.is_file():
        return given
    if not given.is_dir():
        raise BadInput(f"--checkpoint {given}: no such file or folder")
    patterns = card.data["checkpoints"].get("patterns", ["{category}.pth"] if card.per_category else ["*.pth"])
    for pattern in patterns:
        matches = sorted(given.glob(pattern.format(category=category)))
        if matches:
            return matches[-1]
    tried = ", ".join(p.format(category=category) for p in patterns)
    raise BadInput(f"--checkpoint {given}: no checkpoint for category '{category}' (tried {tried})")
