"""The sample library: what every dataset reader yields, whatever its layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One image; ``image_id`` is its dataset-relative path, stable across machines and runs."""

    image_id: str
    path: Path
    category: str
    split: str
    defect_type: str
    label: int
    mask_path: Path | None
