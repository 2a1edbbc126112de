"""MVTec AD: the official layout, masks required as ground_truth/<defect>/<stem>_mask.png."""

from __future__ import annotations

from bench.data.layout import TreeDataset


class MVTecDataset(TreeDataset):
    name = "mvtec"
    suffixes = frozenset({".png"})
    mask_names = ("{stem}_mask.png",)
    masks_required = True
