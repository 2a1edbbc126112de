"""Loading one sample for the device: read, decode, preprocess, hash; errors as data when skipping.

Runs in the prefetch workers. Each file is read once; its bytes feed the tensor cache key and
the decoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.preprocess import Recipe, Recipes, check_mask_size, preprocess_image, tensor_sha256
from bench.data.samples import Sample
from bench.data.tensor_cache import TensorCache
from bench.errors import BadInput


@dataclass(frozen=True)
class Loaded:
    tensor: np.ndarray | None
    sha256: str | None
    error: str | None = None


class InputLoader:
    """``loader(sample) -> Loaded``; strict loaders raise, ``skip_bad`` ones return the error."""

    def __init__(self, recipe: Recipe | Recipes, skip_bad: bool = False, cache: TensorCache | None = None) -> None:
        self.recipe = recipe  # a card's Recipes pick the category's own recipe
        self.skip_bad = skip_bad
        self.cache = cache

    def __call__(self, sample: Sample) -> Loaded:
        try:
            tensor = self._tensor(sample)
        except BadInput as exc:
            if not self.skip_bad:
                raise
            return Loaded(None, None, str(exc))
        return Loaded(tensor, tensor_sha256(tensor))

    def _tensor(self, sample: Sample) -> np.ndarray:
        if sample.problem:
            raise BadInput(sample.problem)
        try:
            data = sample.path.read_bytes()
        except FileNotFoundError as exc:
            raise BadInput(f"{sample.path}: image not found") from exc
        if sample.mask_path is not None:
            check_mask_size(sample.mask_path, sample.path)
        recipe = self.recipe.for_category(sample.category)
        cache = self.cache.for_recipe(recipe) if self.cache else None
        tensor = cache.get(data) if cache else None
        if tensor is None:
            tensor = preprocess_image(sample.path, recipe, data=data)
            if cache:
                cache.put(data, tensor)
        return tensor
