"""VisA, in the raw release layout or the widely used converted MVTec-style layout.

Raw: <category>/Data/Images/{Normal,Anomaly}/*.JPG and <category>/Data/Masks/Anomaly/*.png,
with the split in split_csv/1cls.csv (columns object,split,label,image,mask; paths relative to
the root). Converted (spot-diff's prepare_data.py): <category>/{train,test}/{good,bad}/*.JPG with
masks in ground_truth/bad/<stem>.png. Masks are binarised downstream: non-zero is anomalous.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.data.layout import TreeDataset
from bench.data.samples import Sample
from bench.errors import BadInput

SPLIT_CSV = Path("split_csv") / "1cls.csv"
SPLIT_COLUMNS = ("object", "split", "label", "image", "mask")


class VisaDataset(TreeDataset):
    name = "visa"
    suffixes = frozenset({".jpg", ".jpeg", ".png"})
    mask_names = ("{stem}.png", "{stem}_mask.png")
    masks_required = True

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._split: pd.DataFrame | None = None
        if (root / SPLIT_CSV).is_file():
            self._split = _read_split(root / SPLIT_CSV)

    @property
    def layout(self) -> str:
        return "raw" if self._split is not None else "converted"

    def categories(self) -> list[str]:
        if self._split is None:
            return super().categories()
        return sorted(self._split["object"].unique())

    def samples(self, category: str, split: str) -> list[Sample]:
        if self._split is None:
            return super().samples(category, split)
        rows = self._split[(self._split["object"] == category) & (self._split["split"] == split)]
        out = []
        for row in rows.sort_values("image").itertuples(index=False):
            image = self.root / row.image
            label = 0 if row.label == "normal" else 1
            mask, problem = None, None
            if label:
                mask = self.root / row.mask if row.mask else None
                if mask is None or not mask.is_file():
                    problem = f"{image}: defective image without its mask {mask or '(no mask column value)'}"
            out.append(Sample(row.image, image, category, split, "good" if label == 0 else "bad", label, mask,
                              problem))
        return out


def _read_split(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: unreadable split file ({exc})") from exc
    missing = [c for c in SPLIT_COLUMNS if c not in frame.columns]
    if missing:
        raise BadInput(f"{path}: missing column '{missing[0]}' (expected {', '.join(SPLIT_COLUMNS)})")
    bad = frame[~frame["label"].isin(["normal", "anomaly"])]
    if not bad.empty:
        raise BadInput(f"{path}: label '{bad['label'].iloc[0]}' is neither 'normal' nor 'anomaly'")
    return frame
