"""Dataset registry: ``--dataset NAME --data-root PATH`` picks a reader."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bench.data.layout import TreeDataset
from bench.data.manifest import ManifestDataset
from bench.data.mms import MMSDataset
from bench.data.mvtec import MVTecDataset
from bench.data.samples import Sample
from bench.data.visa import VisaDataset
from bench.errors import BadInput, one_of


class Dataset(Protocol):
    name: str
    root: Path

    def categories(self) -> list[str]: ...

    def select(self, wanted: list[str] | None) -> list[str]: ...

    def samples(self, category: str, split: str) -> list[Sample]: ...


DATASETS: dict[str, tuple[type, str]] = {
    "mvtec": (MVTecDataset, "MVTec AD layout: <category>/{train,test}/<type>, ground_truth/<type>/<stem>_mask.png"),
    "visa": (VisaDataset, "VisA, raw (split_csv/1cls.csv) or converted MVTec-style (test/bad, ground_truth/bad)"),
    "mms": (MMSDataset, "TinyGLASS M&Ms: mms_rpi and mms_stretch, MVTec-like, masks optional"),
    "folder": (TreeDataset, "any MVTec-like tree with any category names, masks optional"),
    "manifest": (ManifestDataset, "a CSV or Parquet file: image, category, label [, mask, split, defect_type]"),
}


def open_dataset(name: str, root: Path) -> Dataset:
    if name not in DATASETS:
        raise one_of("dataset", name, list(DATASETS))
    if not root.exists():
        raise BadInput(f"--data-root {root}: no such file or folder")
    return DATASETS[name][0](root)


def checked(samples: list[Sample], skip_bad: bool) -> list[Sample]:
    """Strict by default: the first known problem stops the run; ``--skip-bad`` keeps them as errors."""
    if not skip_bad:
        for sample in samples:
            if sample.problem:
                raise BadInput(f"{sample.problem} (use --skip-bad to record it and go on)")
    return samples
