"""The sample library: what every dataset reader yields, whatever its layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
