"""Model outputs -> (image score, anomaly map), in numpy so the device side needs no torch.

It runs on the host for every device alike, so device differences come from the device's
numerics alone, never from post-processing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter


def bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """1-D weights of bilinear resizing with align_corners=False (PyTorch's and ONNX's half-pixel rule)."""
    scale = n_in / n_out
    src = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    weights[np.arange(n_out), lo] += 1 - frac
    weights[np.arange(n_out), hi] += frac
    return weights


def anomaly_map(patch_scores: np.ndarray, size: tuple[int, int], sigma: float) -> np.ndarray:
    """Upsample a [h, w] grid to ``size`` and smooth it, as GLASS's RescaleSegmentor does."""
    grid = np.asarray(patch_scores, dtype=np.float64)
    up = bilinear_matrix(grid.shape[0], size[0]) @ grid @ bilinear_matrix(grid.shape[1], size[1]).T
    return gaussian_filter(up, sigma=sigma).astype(np.float32) if sigma > 0 else up.astype(np.float32)


def decode(outputs: dict[str, np.ndarray], postprocess: dict[str, Any]) -> tuple[float, np.ndarray | None]:
    """The image score and, where the model has one, its anomaly map for a batch of one.

    The outputs read are the card's ``score_output`` and ``map_output`` (exported models), else ``score``
    and ``patch_scores``; without a score output the score is the map's maximum, before any smoothing."""
    exported = "score_output" in postprocess or "map_output" in postprocess
    score_name = postprocess.get("score_output") if exported else "score"
    map_name = postprocess.get("map_output") if exported else "patch_scores"
    grid = None
    if map_name and map_name in outputs:
        grid = np.asarray(outputs[map_name])[0]
        while grid.ndim > 2 and grid.shape[0] == 1:
            grid = grid[0]
        if grid.ndim != 2:
            raise ValueError(f"output '{map_name}' of shape {np.shape(outputs[map_name])} is not one map per image")
    if score_name:
        score = float(np.asarray(outputs[score_name]).reshape(-1)[0])
    elif grid is not None:
        score = float(np.max(grid))
    else:
        raise ValueError(f"no score output and no map output '{map_name}' among {', '.join(outputs)}")
    if grid is None:
        return score, None
    size = tuple(postprocess.get("map_size") or grid.shape)
    if tuple(grid.shape) == size and not postprocess.get("map_sigma"):
        return score, grid.astype(np.float32)
    return score, anomaly_map(grid, size, float(postprocess.get("map_sigma", 0)))
