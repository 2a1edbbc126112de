"""Preprocessing, defined by the model card and done once on the host.

Every device is fed the very bytes produced here; ``tensor_sha256`` of them goes into the
record, which is what lets drift be computed image by image across devices.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.errors import BadInput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Recipe:
    """Resize (shorter side or exact size), centre crop, scale to [0,1], normalise, NCHW float32."""

    resize: tuple[int, int]
    crop: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"

    @classmethod
    def from_card(cls, spec: dict[str, Any]) -> Recipe:
        resize = _pair(spec["resize"])
        crop = _pair(spec.get("crop", resize))
        mean = tuple(spec.get("mean", IMAGENET_MEAN))
        std = tuple(spec.get("std", IMAGENET_STD))
        recipe = cls(resize, crop, mean, std, spec.get("layout", "NCHW"), spec.get("dtype", "float32"))
        if recipe.layout not in ("NCHW", "NHWC"):
            raise BadInput(f"model card: unsupported input layout {recipe.layout!r} (NCHW or NHWC)")
        return recipe

    @property
    def input_shape(self) -> tuple[int, ...]:
        h, w = self.crop
        return (1, 3, h, w) if self.layout == "NCHW" else (1, h, w, 3)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def _pair(value: int | list[int]) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def open_image(path: Path, mode: str = "RGB", decode: bool = True) -> Image.Image:
    """Decode fully now, so a truncated file fails here with its name, not later in a worker."""
    try:
        with Image.open(path) as img:
            if not decode:
                return img
            img.load()
            return img.convert(mode)
    except FileNotFoundError as exc:
        raise BadInput(f"{path}: image not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BadInput(f"{path}: unreadable image ({exc})") from exc


def _resize_crop(img: Image.Image, recipe: Recipe, resample: Image.Resampling) -> Image.Image:
    img = img.resize((recipe.resize[1], recipe.resize[0]), resample=resample)
    top = (recipe.resize[0] - recipe.crop[0]) // 2
    left = (recipe.resize[1] - recipe.crop[1]) // 2
    return img.crop((left, top, left + recipe.crop[1], top + recipe.crop[0]))


def preprocess_image(path: Path, recipe: Recipe) -> np.ndarray:
    """The exact input tensor, batch of one, C-contiguous."""
    img = _resize_crop(open_image(path), recipe, Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    arr = (arr - np.asarray(recipe.mean, np.float32)) / np.asarray(recipe.std, np.float32)
    if recipe.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr[None], dtype=np.dtype(recipe.dtype))


def preprocess_mask(path: Path | None, recipe: Recipe, image_path: Path) -> np.ndarray:
    """Boolean mask on the model's input grid; an absent mask of a good image is all False."""
    if path is None:
        return np.zeros(recipe.crop, dtype=bool)
    mask = open_image(path, mode="L")
    size = open_image(image_path, decode=False).size
    if mask.size != size:
        raise BadInput(f"{path}: mask is {mask.size[0]}x{mask.size[1]}, its image is {size[0]}x{size[1]}")
    return np.asarray(_resize_crop(mask, recipe, Image.Resampling.NEAREST)) > 0


def tensor_sha256(tensor: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest()
