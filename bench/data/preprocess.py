"""Preprocessing, defined by the model card and done once on the host.

Every device is fed the very bytes produced here; ``tensor_sha256`` of them goes into the
record, which is what lets drift be computed image by image across devices.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from dataclasses import asdict, dataclass, replace
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


RESIZE_MODES = ("exact", "shorter")
# How a mask becomes the boolean ground truth on the input grid:
# - nearest_nonzero: nearest-neighbour resize, any non-zero pixel is anomalous;
# - bilinear_cast: the official GLASS/TinyGLASS convention: bilinear resize, ToTensor, then an integer
#   cast in the metrics, so only pixels that stay exactly 255 after interpolation count.
MASK_CONVENTIONS = ("nearest_nonzero", "bilinear_cast")


@dataclass(frozen=True)
class Recipe:
    """Resize, centre crop, scale to [0,1], normalise, NCHW float32; and the mask convention.

    ``resize_mode`` "shorter" is torchvision's ``Resize(int)``: the shorter side to ``resize[0]``,
    aspect kept; "exact" resizes to ``resize`` as (height, width). The centre crop rounds its
    offsets as torchvision's ``CenterCrop`` does.
    """

    resize: tuple[int, int]
    crop: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    layout: str = "NCHW"
    dtype: str = "float32"
    resize_mode: str = "exact"
    mask: str = "nearest_nonzero"
    channel_order: str = "RGB"
    value_range: tuple[float, float] = (0.0, 1.0)

    @classmethod
    def from_card(cls, spec: dict[str, Any]) -> Recipe:
        """``mean``/``std`` null: no normalisation (the graph does its own); ``value_range`` is what pixel values
        0..255 map to before normalising; ``channel_order`` BGR feeds the channels reversed."""
        resize = _pair(spec["resize"])
        crop = _pair(spec.get("crop", resize))
        mean = tuple(spec.get("mean", IMAGENET_MEAN) or (0.0, 0.0, 0.0))
        std = tuple(spec.get("std", IMAGENET_STD) or (1.0, 1.0, 1.0))
        low, high = spec.get("value_range") or (0.0, 1.0)
        recipe = cls(resize, crop, mean, std, spec.get("layout", "NCHW"), spec.get("dtype", "float32"),
                     spec.get("resize_mode", "exact"), spec.get("mask", "nearest_nonzero"),
                     spec.get("channel_order", "RGB"), (float(low), float(high)))
        if recipe.channel_order not in ("RGB", "BGR"):
            raise BadInput(f"model card: unknown channel_order {recipe.channel_order!r} (RGB or BGR)")
        if recipe.layout not in ("NCHW", "NHWC"):
            raise BadInput(f"model card: unsupported input layout {recipe.layout!r} (NCHW or NHWC)")
        if recipe.resize_mode not in RESIZE_MODES:
            raise BadInput(f"model card: unknown resize_mode {recipe.resize_mode!r} ({' or '.join(RESIZE_MODES)})")
        if recipe.mask not in MASK_CONVENTIONS:
            raise BadInput(f"model card: unknown mask convention {recipe.mask!r} ({' or '.join(MASK_CONVENTIONS)})")
        return recipe

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> Recipe:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    @property
    def input_shape(self) -> tuple[int, ...]:
        h, w = self.crop
        return (1, 3, h, w) if self.layout == "NCHW" else (1, h, w, 3)

    def for_category(self, category: str) -> Recipe:
        return self

    def with_mask(self, convention: str | None) -> Recipe:
        if convention is None:
            return self
        if convention not in MASK_CONVENTIONS:
            raise BadInput(f"--mask-convention: unknown {convention!r} ({' or '.join(MASK_CONVENTIONS)})")
        return replace(self, mask=convention)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Recipes:
    """A card's recipe and its per-category overrides (TinyGLASS resizes wood and toothbrush to 292)."""

    default: Recipe
    overrides: tuple[tuple[str, Recipe], ...] = ()

    @classmethod
    def from_card(cls, spec: dict[str, Any]) -> Recipes:
        overrides = spec.get("overrides") or {}
        base = {k: v for k, v in spec.items() if k != "overrides"}
        return cls(Recipe.from_card(base),
                   tuple((str(cat), Recipe.from_card({**base, **dict(change)})) for cat, change in overrides.items()))

    def for_category(self, category: str) -> Recipe:
        return dict(self.overrides).get(category, self.default)

    def with_mask(self, convention: str | None) -> Recipes:
        return Recipes(self.default.with_mask(convention),
                       tuple((cat, r.with_mask(convention)) for cat, r in self.overrides))


def _pair(value: int | list[int]) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_intact(data: bytes) -> bool:
    """Every chunk complete with a matching CRC, up to IEND. libpng prints its own errors to stderr
    ("libpng error: IDAT: ...", OpenCV's "PNG input buffer is incomplete"), so a damaged file goes to PIL,
    whose error becomes the one line naming it; the check costs ~1 ms of crc32 for a 1024 px image."""
    view, pos = memoryview(data), len(PNG_MAGIC)
    while pos + 12 <= len(data):
        length = int.from_bytes(view[pos:pos + 4], "big")
        end = pos + 12 + length
        if end > len(data) or zlib.crc32(view[pos + 4:end - 4]) != int.from_bytes(view[end - 4:end], "big"):
            return False
        if view[pos + 4:pos + 8] == b"IEND":
            return True
        pos = end
    return False


def _decode_png_fast(data: bytes, mode: str) -> Image.Image | None:
    """8-bit PNGs through OpenCV's libpng, about a quarter faster than PIL's decoder and bit-identical
    (PNG is lossless); anything else (16-bit, palette, alpha, a damaged file) returns None and goes
    through PIL."""
    if cv2 is None or not data.startswith(PNG_MAGIC) or not _png_intact(data):
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


def resized_size(size: tuple[int, int], recipe: Recipe) -> tuple[int, int]:
    """(width, height) after the recipe's resize of an image of ``size`` (width, height)."""
    if recipe.resize_mode == "exact":
        return recipe.resize[1], recipe.resize[0]
    w, h = size  # torchvision's _compute_resized_output_size for an int size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = recipe.resize[0], int(recipe.resize[0] * long / short)
    return (new_short, new_long) if w <= h else (new_long, new_short)


def _resize_crop(img: Image.Image, recipe: Recipe, resample: Image.Resampling) -> Image.Image:
    width, height = resized_size(img.size, recipe)
    crop_h, crop_w = recipe.crop
    if width < crop_w or height < crop_h:
        raise BadInput(f"image of {img.size[0]}x{img.size[1]} resizes to {width}x{height}, smaller than the "
                       f"{crop_w}x{crop_h} crop")
    img = img.resize((width, height), resample=resample)
    top = round((height - crop_h) / 2.0)  # torchvision's CenterCrop rounding (half to even)
    left = round((width - crop_w) / 2.0)
    return img.crop((left, top, left + crop_w, top + crop_h))


@lru_cache(maxsize=16)
def _lut(mean: tuple[float, ...], std: tuple[float, ...], value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Per-channel uint8 -> normalised float32 table: the same float32 operations, done 256 times."""
    if tuple(value_range) == (0.0, 1.0):
        values = np.arange(256, dtype=np.float32)[None, :] / np.float32(255.0)
    else:  # exact at both ends: [0, 255] gives the integers themselves
        low, high = value_range
        values = (low + np.arange(256, dtype=np.float64) * ((high - low) / 255.0)).astype(np.float32)[None, :]
    return (values - np.asarray(mean, np.float32)[:, None]) / np.asarray(std, np.float32)[:, None]


def to_tensor(img: Image.Image, recipe: Recipe) -> np.ndarray:
    """The exact input tensor of a decoded RGB image, batch of one, C-contiguous."""
    pixels = np.asarray(_resize_crop(img, recipe, Image.Resampling.BILINEAR))
    lut = _lut(recipe.mean, recipe.std, tuple(recipe.value_range))
    source = (2, 1, 0) if recipe.channel_order == "BGR" else (0, 1, 2)  # mean/std follow the graph's channel order
    chw = np.stack([lut[c][pixels[..., source[c]]] for c in range(3)])
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
    """Boolean mask on the model's input grid by the recipe's convention; no mask means a good image."""
    if path is None:
        return np.zeros(recipe.crop, dtype=bool)
    check_mask_size(path, image_path)
    return _mask_on_grid(open_image(path, mode="L"), recipe)


def mask_from_bytes(path: Path, data: bytes, recipe: Recipe) -> np.ndarray:
    """``preprocess_mask`` of a mask file already read (its size already checked against its image)."""
    return _mask_on_grid(open_image(path, mode="L", data=data or None), recipe)


def _mask_on_grid(mask: Image.Image, recipe: Recipe) -> np.ndarray:
    if recipe.mask == "bilinear_cast":
        return np.asarray(_resize_crop(mask, recipe, Image.Resampling.BILINEAR)) == 255
    return np.asarray(_resize_crop(mask, recipe, Image.Resampling.NEAREST)) > 0


def tensor_sha256(tensor: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(tensor).tobytes()).hexdigest()
