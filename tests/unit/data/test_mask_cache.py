"""The mask cache gives exactly what decoding the mask gives, and never serves a changed mask."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.mask_cache import MaskCache
from bench.data.preprocess import Recipe, preprocess_mask
from bench.errors import BadInput

RECIPES = [Recipe(resize=(32, 32), crop=(24, 24)), Recipe(resize=(32, 32), crop=(24, 24), mask="bilinear_cast")]


def _pair(tmp_path: Path, seed: int = 0, size: int = 61) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    image, mask = tmp_path / f"img{seed}.png", tmp_path / f"mask{seed}.png"
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(image)
    blob = np.zeros((size, size), dtype=np.uint8)
    blob[rng.integers(0, size // 2):, rng.integers(0, size // 2):size - 3] = 255
    Image.fromarray(blob).save(mask)
    return image, mask


@pytest.mark.parametrize("recipe", RECIPES, ids=["nearest_nonzero", "bilinear_cast"])
def test_a_hit_is_what_decoding_gives(tmp_path: Path, recipe: Recipe) -> None:
    cache = MaskCache(tmp_path / "cache")
    for seed in range(3):
        image, mask = _pair(tmp_path, seed)
        expected = preprocess_mask(mask, recipe, image)
        first = cache.mask(mask, recipe, image)
        assert len(list((tmp_path / "cache").rglob("*.npy"))) == seed + 1  # stored on the miss
        second = cache.mask(mask, recipe, image)
        for got in (first, second):
            assert got.dtype == bool and got.shape == recipe.crop and np.array_equal(got, expected)
    assert not cache.mask(None, recipe, image).any()


def test_an_edited_mask_or_another_convention_misses(tmp_path: Path) -> None:
    cache = MaskCache(tmp_path / "cache")
    image, mask = _pair(tmp_path)
    before = cache.mask(mask, RECIPES[0], image)
    Image.fromarray(np.full((61, 61), 255, dtype=np.uint8)).save(mask)
    assert cache.mask(mask, RECIPES[0], image).all() and not before.all()
    assert np.array_equal(cache.mask(mask, RECIPES[1], image), preprocess_mask(mask, RECIPES[1], image))


def test_bad_masks_fail_as_without_the_cache(tmp_path: Path) -> None:
    cache = MaskCache(tmp_path / "cache")
    image, mask = _pair(tmp_path)
    cache.mask(mask, RECIPES[0], image)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((60, 61), dtype=np.uint8)).save(small)
    with pytest.raises(BadInput, match=r"small\.png: mask is 61x60, its image is 61x61"):
        cache.mask(small, RECIPES[0], image)
    mask.write_bytes(mask.read_bytes()[:40])  # truncated
    with pytest.raises(BadInput, match=r"mask0\.png"):
        cache.mask(mask, RECIPES[0], image)


def test_a_damaged_entry_is_recomputed_and_an_unwritable_cache_is_skipped(tmp_path: Path) -> None:
    image, mask = _pair(tmp_path)
    expected = preprocess_mask(mask, RECIPES[0], image)
    cache = MaskCache(tmp_path / "cache")
    cache.mask(mask, RECIPES[0], image)
    entry = next((tmp_path / "cache").rglob("*.npy"))
    entry.write_bytes(b"not numpy")
    assert np.array_equal(cache.mask(mask, RECIPES[0], image), expected)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would be")
    assert np.array_equal(MaskCache(blocked).mask(mask, RECIPES[0], image), expected)
    if os.geteuid() != 0:  # root writes anywhere; the file above blocks it as well
        readonly = tmp_path / "readonly"
        readonly.mkdir(mode=0o500)
        assert np.array_equal(MaskCache(readonly).mask(mask, RECIPES[0], image), expected)
