"""The TinyGLASS M&Ms dataset (MMS): subsets mms_rpi (IMX500 camera) and mms_stretch (microscope camera).

Read as the official code reads it (ETH-PBL/TinyGLASS ``datasets/mvtec.py``, which main.py uses for
``mms``): ``<subset>/train/good``, ``<subset>/test/<type>`` with the types crack_hole, scratch, half and
good, and masks in ``<subset>/ground_truth/<type>/`` paired with the test images by sorted position, not
by name. A type without a ground-truth folder (or with an empty one) has no masks, so its subset gets no
pixel metrics rather than metrics on empty masks; a folder whose mask count differs from its image count
cannot be paired and each of its images says so.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench.data.layout import TreeDataset, image_files
from bench.data.samples import Sample


class MMSDataset(TreeDataset):
    name = "mms"
    suffixes = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
    masks_required = False

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._pairs: dict[tuple[str, str], dict[str, Path] | str] = {}

    def _pairing(self, category: str, defect: str) -> dict[str, Path] | str:
        """Image file name -> mask by sorted position, or the reason they cannot be paired."""
        key = (category, defect)
        if key not in self._pairs:
            images = image_files(self.root / category / "test" / defect, self.suffixes)
            folder = self.root / category / "ground_truth" / defect
            masks = image_files(folder, self.suffixes) if folder.is_dir() else []
            if masks and len(masks) != len(images):
                self._pairs[key] = (f"{folder}: {len(masks)} masks for {len(images)} images in test/{defect}; "
                                    f"the official reader pairs them by sorted position")
            else:
                self._pairs[key] = dict(zip((p.name for p in images), masks, strict=False))
        return self._pairs[key]

    def find_mask(self, category: str, defect: str, image: Path) -> Path | None:
        pairing = self._pairing(category, defect)
        return pairing.get(image.name) if isinstance(pairing, dict) else None

    def samples(self, category: str, split: str) -> list[Sample]:
        out = super().samples(category, split)
        if split != "test":
            return out
        for i, sample in enumerate(out):
            pairing = self._pairing(category, sample.defect_type) if sample.label else {}
            if isinstance(pairing, str):
                out[i] = replace(sample, problem=f"{sample.path}: {pairing}")
        return out
