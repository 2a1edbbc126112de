"""MVTec-like folder trees, shared by the mvtec, visa (converted), mms and folder readers.

<category>/train/good/*, <category>/test/<good|defect type>/*, and masks in
<category>/ground_truth/<defect type>/ under a reader-specific name. Hidden files, stray files
(licence, readme) and non-image files are ignored; order is sorted by path.
"""

from __future__ import annotations

from pathlib import Path

from bench.data.samples import Sample, select_categories
from bench.errors import BadInput

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def image_files(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


class TreeDataset:
    """A reader for one MVTec-like layout; subclasses set the name, suffixes and mask naming."""

    name = "folder"
    suffixes: frozenset[str] = IMAGE_SUFFIXES
    mask_names: tuple[str, ...] = ("{stem}_mask.png", "{stem}.png")
    masks_required = False

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise BadInput(f"--data-root {root}: not a folder")
        self.root = root

    def categories(self) -> list[str]:
        found = [p.name for p in visible_dirs(self.root) if (p / "test").is_dir() or (p / "train").is_dir()]
        if not found:
            raise BadInput(f"--data-root {self.root}: no {self.name} category (<category>/test/) found")
        return found

    def select(self, wanted: list[str] | None) -> list[str]:
        return select_categories(self.categories(), wanted, self.root)

    def find_mask(self, category: str, defect: str, image: Path) -> Path | None:
        folder = self.root / category / "ground_truth" / defect
        for pattern in self.mask_names:
            name = pattern.format(stem=image.stem)
            for candidate in (folder / name, folder / (Path(name).stem + Path(name).suffix.upper())):
                if candidate.is_file():
                    return candidate
        return None

    def samples(self, category: str, split: str) -> list[Sample]:
        split_dir = self.root / category / split
        if not split_dir.is_dir():
            raise BadInput(f"{split_dir}: missing split folder")
        out = []
        for type_dir in visible_dirs(split_dir):
            defect = type_dir.name
            label = 0 if defect == "good" else 1
            for image in image_files(type_dir, self.suffixes):
                mask, problem = None, None
                if label:
                    mask = self.find_mask(category, defect, image)
                    if mask is None and self.masks_required:
                        expected = self.root / category / "ground_truth" / defect / self.mask_names[0].format(
                            stem=image.stem)
                        problem = f"{image}: defective image without its mask {expected}"
                rel = image.relative_to(self.root).as_posix()
                out.append(Sample(rel, image, category, split, defect, label, mask, problem))
        return out
