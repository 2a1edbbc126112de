"""The TinyGLASS M&Ms dataset: subsets mms_rpi (IMX500 camera) and mms_stretch (microscope camera).

MVTec-like folders with the defect types crack_hole, scratch and half. Masks may be absent;
a category whose defective images lack masks gets no pixel metrics, never metrics on empty masks.
"""

from __future__ import annotations

from bench.data.layout import TreeDataset

SUBSETS = ("mms_rpi", "mms_stretch")


class MMSDataset(TreeDataset):
    name = "mms"
    suffixes = frozenset({".png", ".jpg", ".jpeg"})
    mask_names = ("{stem}_mask.png", "{stem}.png")
    masks_required = False
