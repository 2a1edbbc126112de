"""The MVTec AD folder layout: <category>/{train,test}/<type>/*.png, ground_truth/<type>/<stem>_mask.png."""

from __future__ import annotations

from pathlib import Path

from bench.data.samples import Sample
from bench.errors import BadInput, one_of

IMAGE_SUFFIXES = {".png"}


class MVTecDataset:
    """Reader for the official layout; order is sorted by path, hence deterministic."""

    name = "mvtec"

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise BadInput(f"--data-root {root}: not a folder")
        self.root = root

    def categories(self) -> list[str]:
        found = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "test").is_dir()
        )
        if not found:
            raise BadInput(f"--data-root {self.root}: no MVTec-style category (<category>/test/) found")
        return found

    def select(self, wanted: list[str] | None) -> list[str]:
        available = self.categories()
        for name in wanted or []:
            if name not in available:
                raise one_of("category", name, available)
        return list(wanted) if wanted else available

    def samples(self, category: str, split: str) -> list[Sample]:
        split_dir = self.root / category / split
        if not split_dir.is_dir():
            raise BadInput(f"{split_dir}: missing split folder")
        out = []
        for type_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            defect = type_dir.name
            for image in _images(type_dir):
                label = 0 if defect == "good" else 1
                mask = None
                if label:
                    mask = self.root / category / "ground_truth" / defect / f"{image.stem}_mask.png"
                    if not mask.is_file():
                        raise BadInput(f"{image}: defective image without its mask {mask}")
                rel = image.relative_to(self.root).as_posix()
                out.append(Sample(rel, image, category, split, defect, label, mask))
        return out


def _images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
