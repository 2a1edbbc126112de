"""Preprocessing, defined by the model card and done once on the host.

Every device is fed the very bytes produced here; ``tensor_sha256`` of them goes into the
record, which is what lets drift be computed image by image across devices.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

try:
    import cv2

    cv2.setNumThreads(1)  # the prefetch workers are the parallelism; no nested thread pools
except ImportError:
    cv2 = None

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


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _decode_png_fast(data: bytes, mode: str) -> Image.Image | None:
    """8-bit PNGs through OpenCV's libpng, about a quarter faster than PIL's decoder and bit-identical
    (PNG is lossless); anything else (16-bit, palette, alpha) returns None and goes through PIL."""
    if cv2 is None or not data.startswith(PNG_MAGIC):
        return None
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint8:
        return None
    if pixels.ndim == 2:
        gray = Image.fromarray(pixels, "L")
        return gray if mode == "L" else gray.convert(mode)
    if pixels.ndim == 3 and pixels.shape[2] == 3 and mode == "RGB":
        return Image.fromarray(cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB), "RGB")
    return None


def open_image(path: Path, mode: str = "RGB", data: bytes | None = None) -> Image.Image:
    """Decode fully now, so a truncated file fails here with its name, not later in a worker."""
    if data is not None:
        fast = _decode_png_fast(data, mode)
        if fast is not None:
            return fast
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            img.load()
            return img.convert(mode)
    except FileNotFoundError as exc:
        raise BadInput(f"{path}: image not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable image ({exc})") from exc


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError as exc:
        raise BadInput(f"{path}: image not found") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable image ({exc})") from exc


def _resize_crop(img: Image.Image, recipe: Recipe, resample: Image.Resampling) -> Image.Image:
    img = img.resize((recipe.resize[1], recipe.resize[0]), resample=resample)
    top = (recipe.resize[0] - recipe.crop[0]) // 2
    left = (recipe.resize[1] - recipe.crop[1]) // 2
    return img.crop((left, top, left + recipe.crop[1], top + recipe.crop[0]))


@lru_cache(maxsize=16)
def _lut(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """Per-channel uint8 -> normalised float32 table: the same float32 operations, done 256 times."""
    values = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
    return (values - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]


def to_tensor(img: Image.Image, recipe: Recipe) -> np.ndarray:
    """The exact input tensor of a decoded RGB image, batch of one, C-contiguous."""
    pixels = np.asarray(_resize_crop(img, recipe, Image.Resampling.BILINEAR))
    lut = _lut(recipe.mean, recipe.std)
    chw = np.stack([lut[c][pixels[..., c]] for c in range(3)])
    arr = chw if recipe.layout == "NCHW" else chw.transpose(1, 2, 0)
    return np.ascontiguousarray(arr[None], dtype=np.dtype(recipe.dtype))


def preprocess_image(path: Path, recipe: Recipe, data: bytes | None = None) -> np.ndarray:
    return to_tensor(open_image(path, data=data), recipe)


def check_mask_size(mask: Path, image: Path) -> None:
    """A mask must cover its image exactly; a mismatch is named with both sizes."""
    msize, isize = image_size(mask), image_size(image)
    if msize != isize:
        raise BadInput(f"{mask}: mask is {msize[0]}x{msize[1]}, its image is {isize[0]}x{isize[1]}")


def preprocess_mask(path: Path | None, recipe: Recipe, image_path: Path) -> np.ndarray:
    """Boolean mask on the model's input grid (non-zero is anomalous); no mask means a good image."""
    if path is None:
        return np.zeros(recipe.crop, dtype=bool)
    check_mask_size(path, image_path)
    return np.asarray(_resize_crop(open_image(path, mode="L"), recipe, Image.Resampling.NEAREST)) > 0


def tensor_sha256(tensor: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest()
