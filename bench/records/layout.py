"""Where things live in a run folder, for the writer and the reader alike."""

from __future__ import annotations

import hashlib
from pathlib import Path

MANIFEST = "manifest.json"


def map_file(run_dir: Path, category: str, image_id: str) -> Path:
    """Where an image's anomaly map waits until the run is finished."""
    digest = hashlib.sha1(image_id.encode("utf-8")).hexdigest()
    return run_dir / "maps" / ".partial" / category / f"{digest}.npy"
