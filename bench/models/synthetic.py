"""Synthetic anomalies made from normal images (GLASS's image-level synthesis, simplified), numpy only.

The fit uses them as anomalous training examples; INT8 calibration uses them so the quantized
output sees the anomalous score range without any test image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.models.postprocess import bilinear_matrix


def perlin_like_mask(rng: np.random.Generator, size: tuple[int, int], area: float) -> np.ndarray:
    """A smooth random blob mask covering about ``area`` of the image."""
    cells = int(rng.choice([4, 8, 16]))
    noise = rng.standard_normal((cells, cells))
    field = bilinear_matrix(cells, size[0]) @ noise @ bilinear_matrix(cells, size[1]).T
    return field > np.quantile(field, 1.0 - area)


def synthesize(images: np.ndarray, cfg: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """LAS: anomalous copies of normal images and their pixel masks (in the normalised input space)."""
    n, _, h, w = images.shape
    out, masks = [], []
    for i in range(n * cfg.las_per_image):
        base = images[i % n]
        source = images[int(rng.integers(n))]
        source = np.flip(np.roll(source, int(rng.integers(h)), axis=1), axis=int(rng.integers(1, 3)))
        source = source * rng.uniform(0.5, 1.5, size=(3, 1, 1)) + rng.normal(0, 0.5, size=(3, 1, 1))
        mask = perlin_like_mask(rng, (h, w), float(rng.uniform(*cfg.las_area)))
        beta = float(rng.uniform(*cfg.las_blend))
        mixed = np.where(mask[None], (1 - beta) * base + beta * source, base)
        out.append(mixed.astype(np.float32))
        masks.append(mask)
    return np.stack(out), np.stack(masks)
