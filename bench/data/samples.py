"""The sample library: what every dataset reader yields, whatever its layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.errors import BadInput


@dataclass(frozen=True)
class Sample:
    """One image; ``image_id`` is its dataset-relative path, stable across machines and runs.

    ``problem`` is set when the reader already knows the image cannot be evaluated (a defective
    image without its mask, say): strict runs stop on it, ``--skip-bad`` records it as an error.
    """

    image_id: str
    path: Path
    category: str
    split: str
    defect_type: str
    label: int
    mask_path: Path | None
    problem: str | None = None


def spread(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The first ``limit`` images of a label-balanced interleaving, in their own order, so a small limit still
    has both classes (``run --limit``, a zero-shot fit's ``--max-train``)."""
    if limit is None or limit >= len(samples):
        return samples
    good = [s for s in samples if s.label == 0]
    bad = [s for s in samples if s.label == 1]
    mixed = [s for pair in zip(good, bad, strict=False) for s in pair] + good[len(bad):] + bad[len(good):]
    chosen = {s.image_id for s in mixed[:limit]}
    return [s for s in samples if s.image_id in chosen]


def select_categories(available: list[str], wanted: list[str] | None, where: Path) -> list[str]:
    """``--categories`` checked against what the dataset has; all of them when none are named."""
    for name in wanted or []:
        if name not in available:
            raise BadInput(f"--categories: '{name}' not in {where} (found: {', '.join(available)})")
    return list(wanted) if wanted else available
