"""A lab's own data without code: a CSV or Parquet manifest of images, categories and labels.

Required columns: ``image``, ``category``, ``label`` (0/1, or good/normal vs anomaly/bad/defect).
Optional: ``mask``, ``split`` (default ``test``), ``defect_type`` (default good/anomaly).
Relative paths are resolved against the manifest's folder; ``image`` as written is the image_id.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.samples import Sample, select_categories
from bench.errors import BadInput

REQUIRED = ("image", "category", "label")
LABELS = {"0": 0, "1": 1, "good": 0, "normal": 0, "ok": 0, "anomaly": 1, "anomalous": 1, "bad": 1, "defect": 1,
          "defective": 1, "ng": 1}


class ManifestDataset:
    name = "manifest"

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise BadInput(f"--data-root {path}: the manifest dataset needs a .csv or .parquet file")
        self.path = path
        self.root = path.parent
        self.frame = _read(path)

    def categories(self) -> list[str]:
        return sorted(self.frame["category"].unique())

    def select(self, wanted: list[str] | None) -> list[str]:
        return select_categories(self.categories(), wanted, self.path)

    def samples(self, category: str, split: str) -> list[Sample]:
        rows = self.frame[(self.frame["category"] == category) & (self.frame["split"] == split)]
        out = []
        for row in rows.sort_values("image").itertuples(index=False):
            image = self.root / row.image
            mask = self.root / row.mask if row.mask else None
            problem = None
            if not image.is_file():
                problem = f"{image}: image not found (listed in {self.path.name})"
            elif mask is not None and not mask.is_file():
                problem = f"{mask}: mask not found (listed in {self.path.name})"
            out.append(Sample(Path(row.image).as_posix(), image, category, split, row.defect_type, row.label, mask,
                              problem))
        return out


def _read(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".parquet":
            frame = pd.read_parquet(path).astype(str)
        elif path.suffix.lower() == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            raise BadInput(f"{path}: a manifest must be .csv or .parquet")
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadInput(f"{path}: unreadable manifest ({exc})") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise BadInput(f"{path}: missing column '{missing[0]}' (required: {', '.join(REQUIRED)})")
    frame = frame.replace({"None": "", "nan": ""})
    labels = frame["label"].str.strip().str.lower()
    unknown = labels[~labels.isin(LABELS)]
    if not unknown.empty:
        raise BadInput(f"{path}: label '{unknown.iloc[0]}' not understood (use 0/1 or good/anomaly)")
    frame["label"] = labels.map(LABELS).astype(int)
    if "split" not in frame.columns:
        frame["split"] = "test"
    if "mask" not in frame.columns:
        frame["mask"] = ""
    if "defect_type" not in frame.columns:
        frame["defect_type"] = frame["label"].map({0: "good", 1: "anomaly"})
    if frame["image"].eq("").any():
        raise BadInput(f"{path}: row {int(frame['image'].eq('').idxmax()) + 2} has an empty image path")
    return frame
