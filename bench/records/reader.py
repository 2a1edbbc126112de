"""The run-record reader: ``load_run`` for finished, failed and killed runs alike."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench.errors import BadInput
from bench.records.journal import read_journal, to_frame
from bench.records.layout import MANIFEST, map_file
from bench.records.schema import SCHEMA_VERSION, TABLES


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.exists():
        raise BadInput(f"{run_dir}: not a run record (no manifest.json)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: unreadable manifest ({exc.msg})") from exc
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadInput(f"{path}: schema_version {version} is not supported (expected {SCHEMA_VERSION})")
    return manifest


@dataclass
class RunRecord:
    """One run as the report and the comparators see it."""

    path: Path
    manifest: dict[str, Any]
    images: pd.DataFrame
    latency: pd.DataFrame
    power: pd.DataFrame
    metrics: dict[str, Any] | None
    _maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def status(self) -> str:
        return self.manifest["status"]

    def progress(self, category: str) -> dict[str, Any]:
        """What the record says is done for a category and how it was measured (empty when nothing is)."""
        return dict(self.manifest.get("progress", {}).get(category, {}))

    def maps(self, category: str) -> dict[str, np.ndarray]:
        """Anomaly maps of one category keyed by image_id (empty when the model has none)."""
        if category not in self._maps:
            self._maps[category] = _read_maps(self.path, category, self.images)
        return self._maps[category]

    def drop_maps(self) -> None:
        """Forget the maps read so far (a full MVTec AD run's are ~220 MB), as a report does after each pair."""
        self._maps.clear()


def load_run(path: str | Path) -> RunRecord:
    """Read a run folder; an unfinished run is read from its journals, so nothing recorded is lost."""
    run_dir = Path(path)
    manifest = read_manifest(run_dir)
    finished = manifest["status"] == "complete"
    tables = {name: _read_table(run_dir, name, finished) for name in TABLES}
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else None
    return RunRecord(run_dir, manifest, tables["images"], tables["latency"], tables["power"], metrics)


def _read_table(run_dir: Path, name: str, finished: bool) -> pd.DataFrame:
    schema = TABLES[name]
    journal = run_dir / f"{name}.jsonl"
    parquet = run_dir / f"{name}.parquet"
    if journal.exists() and not finished:
        return read_journal(journal, schema)
    if parquet.exists():
        return pq.read_table(parquet, schema=schema).to_pandas()
    return to_frame([], schema)


def _read_maps(run_dir: Path, category: str, images: pd.DataFrame) -> dict[str, np.ndarray]:
    packed = run_dir / "maps" / f"{category}.npz"
    maps: dict[str, np.ndarray] = {}
    if packed.exists():
        with np.load(packed) as npz:
            maps.update({key: npz[key] for key in npz.files})
    for image_id in images.loc[images["category"] == category, "image_id"]:
        partial = map_file(run_dir, category, image_id)
        if image_id not in maps and partial.exists():
            maps[image_id] = np.load(partial)
    return maps
