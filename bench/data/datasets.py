"""Dataset registry: ``--dataset NAME --data-root PATH`` picks a reader."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bench.data.mvtec import MVTecDataset
from bench.data.samples import Sample
from bench.errors import one_of


class Dataset(Protocol):
    name: str
    root: Path

    def categories(self) -> list[str]: ...

    def select(self, wanted: list[str] | None) -> list[str]: ...

    def samples(self, category: str, split: str) -> list[Sample]: ...


DATASETS: dict[str, tuple[type, str]] = {
    "mvtec": (MVTecDataset, "MVTec AD layout: <category>/{train,test}/<type>, ground_truth/<type>/<stem>_mask.png"),
}


def open_dataset(name: str, root: Path) -> Dataset:
    if name not in DATASETS:
        raise one_of("dataset", name, list(DATASETS))
    return DATASETS[name][0](root)
