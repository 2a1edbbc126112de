"""On-disk cache of masks on the model's input grid, keyed by the mask file's bytes and the recipe.

Pixel metrics need every defective image's mask decoded at full size (up to 1024 px) and resized, about
6 ms a mask, paid again by every run's finalize, every ``compare`` and every pair in a report. On the
grid a mask is small (packed bits: 8 KB at 256 px), so this cache is always on. Keyed by content like
the tensor cache: a re-copied dataset still hits, an edited mask never does. A cache that cannot be
written is skipped, never an error: it only saves time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.data.preprocess import Recipe, check_mask_size, mask_from_bytes
from bench.records.atomic import replace_atomically


class MaskCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, data: bytes, recipe: Recipe) -> Path:
        digest = hashlib.sha256(data).hexdigest()
        return self.root / recipe.fingerprint()[:16] / digest[:2] / f"{digest}.npy"

    def mask(self, path: Path | None, recipe: Recipe, image_path: Path) -> np.ndarray:
        """What ``preprocess_mask`` gives, from the cache when this mask was seen under this recipe."""
        if path is None:
            return np.zeros(recipe.crop, dtype=bool)
        check_mask_size(path, image_path)
        try:
            data = path.read_bytes()
        except OSError:
            data = b""  # mask_from_bytes names the file and the cause
        cached = self._path(data, recipe)
        size = recipe.crop[0] * recipe.crop[1]
        try:
            bits = np.load(cached)
            if bits.dtype == np.uint8 and bits.shape == ((size + 7) // 8,):
                return np.unpackbits(bits, count=size).reshape(recipe.crop).astype(bool)
        except (OSError, ValueError):
            pass
        mask = mask_from_bytes(path, data, recipe)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            replace_atomically(cached, lambda tmp: _save(tmp, np.packbits(mask.ravel())))
        except OSError:
            pass
        return mask


def _save(path: Path, bits: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, bits)
