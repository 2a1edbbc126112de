"""Optional on-disk cache of preprocessed tensors, keyed by the recipe and the source file's bytes.

Keyed by content (sha256 of the file), not by path or mtime, so a re-copied dataset still hits
and an edited image never does. A cached tensor of the wrong shape or dtype is recomputed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from bench.data.preprocess import Recipe
from bench.records.atomic import replace_atomically


class TensorCache:
    def __init__(self, root: Path, recipe: Recipe) -> None:
        self.root, self.recipe = root, recipe
        self.folder = root / recipe.fingerprint()[:16]
        self.shape = recipe.input_shape
        self.dtype = np.dtype(recipe.dtype)

    def for_recipe(self, recipe: Recipe) -> TensorCache:
        """The same cache root for another recipe (a category with its own preprocessing)."""
        return self if recipe == self.recipe else TensorCache(self.root, recipe)

    def _path(self, data: bytes) -> Path:
        digest = hashlib.sha256(data).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def get(self, data: bytes) -> np.ndarray | None:
        path = self._path(data)
        try:
            tensor = np.load(path)
        except (OSError, ValueError):
            return None
        return tensor if tensor.shape == self.shape and tensor.dtype == self.dtype else None

    def put(self, data: bytes, tensor: np.ndarray) -> None:
        path = self._path(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda tmp: _save(tmp, tensor))


def _save(path: Path, tensor: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, tensor)
