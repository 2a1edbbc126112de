"""Tests for bench.metrics.accuracy against scikit-learn and straightforward reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from bench.metrics.accuracy import (
    F1Max,
    aupro,
    aupro_grid_minmax,
    average_precision,
    f1_max,
    image_auroc,
    pixel_auroc,
)

TOL = 1e-9


def _random_case(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random labels with both classes and scores with a seed-dependent amount of ties."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 300))
    labels = rng.random(n) < rng.uniform(0.05, 0.95)
    labels[0], labels[1] = True, False
    rng.shuffle(labels)
    scores = rng.normal(size=n) + rng.uniform(0.0, 2.0) * labels
    decimals = int(rng.integers(0, 4))
    if seed % 3:
        scores = np.round(scores, decimals)
    return labels.astype(int), scores


def _brute_f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    best_f1, best_t = -1.0, np.nan
    for t in np.unique(scores):
        pred = scores >= t
        tp = int(np.sum(pred & (labels == 1)))
        fp = int(np.sum(pred & (labels == 0)))
        fn = int(np.sum(~pred & (labels == 1)))
        f1 = 2 * tp / (2 * tp + fp + fn)
        if f1 > best_f1:
            best_f1, best_t = f1, float(t)
    return best_f1, best_t


def _reference_aupro(masks: np.ndarray, maps: np.ndarray, limit: float) -> float:
    """Direct definition: per-threshold FPR and mean region overlap, trapezoid cut at ``limit``."""
    regions = []
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        for r in range(1, n + 1):
            full = np.zeros(masks.shape, dtype=bool)
            full[i] = labelled == r
            regions.append(full)
    normal = masks == 0
    xs, ys = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        pred = maps >= t
        xs.append(float(pred[normal].mean()))
        ys.append(float(np.mean([pred[r].mean() for r in regions])))
    area = 0.0
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:], strict=True):
        if x0 >= limit:
            break
        if x1 <= limit:
            area += 0.5 * (y0 + y1) * (x1 - x0)
        else:
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += 0.5 * (y0 + y_lim) * (limit - x0)
            break
    return area / limit


def _blob_masks(rng: np.random.Generator, n: int, h: int, w: int, density: float) -> np.ndarray:
    """Masks with several irregular (partly diagonal-touching) regions; image 0 stays normal."""
    masks = (rng.random((n, h, w)) < density).astype(np.uint8)
    masks[0] = 0
    return masks


@pytest.mark.parametrize("seed", range(60))
def test_image_metrics_match_sklearn_random(seed: int) -> None:
    labels, scores = _random_case(seed)
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=TOL
    )


def test_image_metrics_heavy_ties() -> None:
    rng = np.random.default_rng(7)
    labels = rng.random(1000) < 0.3
    scores = np.round(rng.random(1000) + 0.2 * labels, 1)
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=TOL
    )
    constant = np.zeros(1000)
    assert image_auroc(labels, constant) == pytest.approx(0.5, abs=TOL)
    assert average_precision(labels, constant) == pytest.approx(
        average_precision_score(labels, constant), abs=TOL
    )


def test_image_metrics_perfect_and_inverted() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9])
    assert image_auroc(labels, scores) == 1.0
    assert average_precision(labels, scores) == 1.0
    assert image_auroc(labels, -scores) == 0.0
    assert average_precision(labels, -scores) == pytest.approx(
        average_precision_score(labels, -scores), abs=TOL
    )
    assert image_auroc(labels.astype(bool), scores.astype(np.float32)) == 1.0


def test_f1_max_matches_brute_force() -> None:
    for seed in range(40):
        labels, scores = _random_case(seed)
        result = f1_max(labels, scores)
        best_f1, best_t = _brute_f1_max(labels, scores)
        assert isinstance(result, F1Max)
        assert result.f1 == pytest.approx(best_f1, abs=1e-12)
        assert result.threshold == best_t


def test_f1_max_prefers_lowest_threshold_on_ties() -> None:
    # Threshold 0.9 gives TP=1, FP=0, FN=1 (F1 2/3); threshold 0.1 gives TP=2, FP=2 (F1 2/3 too).
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.9, 0.5, 0.1, 0.5])
    assert f1_max(labels, scores) == F1Max(f1=pytest.approx(2 / 3), threshold=0.1)


def test_pixel_auroc_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    masks = _blob_masks(rng, 4, 32, 40, 0.1)
    maps = rng.random(masks.shape) + 0.3 * masks
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=TOL)
    maps32 = maps.astype(np.float32)
    expected32 = roc_auc_score(masks.ravel(), maps32.astype(np.float64).ravel())
    assert pixel_auroc(masks * 255, maps32) == pytest.approx(expected32, abs=TOL)
    maps8 = (maps * 100).astype(np.uint8)
    expected8 = roc_auc_score(masks.ravel(), maps8.ravel())
    assert pixel_auroc(masks, maps8) == pytest.approx(expected8, abs=TOL)


def test_pixel_auroc_float16_heavy_ties() -> None:
    rng = np.random.default_rng(11)
    masks = _blob_masks(rng, 5, 48, 48, 0.15)
    maps = np.round(rng.random(masks.shape) + 0.2 * masks, 2).astype(np.float16)
    maps[1, :5] = -0.0
    maps[2, :5] = 0.0
    expected = roc_auc_score(masks.ravel(), maps.astype(np.float64).ravel())
    assert pixel_auroc(masks.astype(bool), maps) == pytest.approx(expected, abs=TOL)


def _sorted_cumsum_pro_curve(masks: np.ndarray, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PRO curve the way the MVTec AD evaluation code builds it: full argsort plus cumulative sums."""
    fp_change = np.zeros(maps.shape)
    pro_change = np.zeros(maps.shape)
    n_regions = 0
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
        n_regions += n
        fp_change[i][labelled == 0] = 1.0
        for r in range(1, n + 1):
            pro_change[i][labelled == r] = 1.0 / np.sum(labelled == r)
    order = np.argsort(maps.ravel(), kind="stable")[::-1]
    sorted_scores = maps.ravel()[order]
    fpr = np.cumsum(fp_change.ravel()[order]) / fp_change.sum()
    pro = np.cumsum(pro_change.ravel()[order]) / n_regions
    keep = np.append(np.diff(sorted_scores) != 0, True)
    return np.concatenate(([0.0], fpr[keep])), np.concatenate(([0.0], pro[keep]))


def _area_until(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area for x < limit plus the segment that reaches the limit, interpolated on it."""
    i = int(np.searchsorted(x, limit, side="left"))
    y_at = y[i - 1] + (y[i] - y[i - 1]) * (limit - x[i - 1]) / (x[i] - x[i - 1])
    grid_x = np.append(x[:i], limit)
    grid_y = np.append(y[:i], y_at)
    return float(np.sum(0.5 * (grid_y[1:] + grid_y[:-1]) * np.diff(grid_x)))


def test_aupro_matches_reference() -> None:
    rng = np.random.default_rng(5)
    for trial in range(8):
        masks = _blob_masks(rng, 3, 14, 12, 0.12)
        maps = rng.random(masks.shape) + 0.4 * masks
        if trial % 2:
            maps = np.round(maps, 1)
        for limit in (0.01, 0.05, 0.3, 0.5, 1.0):
            expected = _reference_aupro(masks, maps, limit)
            assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)
            assert aupro(masks, maps, fpr_limit=limit, normalize=False) == pytest.approx(
                expected * limit, abs=1e-9
            )


def test_aupro_matches_cumsum_reference_with_ties() -> None:
    rng = np.random.default_rng(9)
    for decimals in (1, 2, 3):
        masks = _blob_masks(rng, 6, 40, 40, 0.03)
        maps = np.round(rng.random(masks.shape) + 0.3 * masks, decimals).astype(np.float16)
        fpr, pro = _sorted_cumsum_pro_curve(masks, maps.astype(np.float64))
        for limit in (0.001, 0.02, 0.3, 0.77, 1.0):
            expected = _area_until(fpr, pro, limit) / limit
            assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(expected, abs=1e-9)


def test_aupro_hand_computed() -> None:
    # One region of 2 pixels (0.9, 0.2), normals 0.8, 0.5, 0.1, 0.1. Curve:
    # (0,0) (0,.5) (.25,.5) (.5,.5) (.5,1) (1,1).
    masks = np.array([[[1, 0, 0], [1, 0, 0]]])
    maps = np.array([[[0.9, 0.8, 0.5], [0.2, 0.1, 0.1]]])
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.5)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(0.75)
    assert aupro(masks[0], maps[0], fpr_limit=0.3, normalize=False) == pytest.approx(0.15)
    # A tie between the region pixel and a normal pixel gives the diagonal (0,0)-(.25,1).
    masks = np.array([[1, 0, 0, 0, 0]])
    maps = np.array([[0.5, 0.5, 0.0, 0.0, 0.0]])
    assert aupro(masks, maps, fpr_limit=0.1) == pytest.approx(0.2)
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(0.175 / 0.3)


def test_aupro_averages_over_regions_and_pools_normal_pixels() -> None:
    # Image 0: region A (3 pixels: 0.9, 0.1, 0.1), a normal 0.5, a normal 0.0, region B (1 pixel: 0.9).
    # Image 1 is normal: 0.7 and five 0.0. FPR counts the 8 normal pixels of both images.
    # Threshold .9: A 1/3, B 1, PRO 2/3 (by pixels it would be 1/2), FPR 0; .7: FPR 1/8; .5: FPR 2/8;
    # .1: PRO 1; 0: FPR 1. Curve (0,0) (0,2/3) (1/8,2/3) (1/4,2/3) (1/4,1) (1,1).
    masks = np.array([[[1, 1, 1, 0, 0, 1]], [[0, 0, 0, 0, 0, 0]]])
    maps = np.array([[[0.9, 0.1, 0.1, 0.5, 0.0, 0.9]], [[0.7, 0.0, 0.0, 0.0, 0.0, 0.0]]])
    # up to 0.3: 1/4 x 2/3 + 0.05 x 1 = 13/60; up to 1: 1/4 x 2/3 + 3/4 = 11/12
    assert aupro(masks, maps, fpr_limit=0.3, normalize=False) == pytest.approx(13 / 60)
    assert aupro(masks, maps, fpr_limit=0.3) == pytest.approx(13 / 18)
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(11 / 12)


def test_aupro_uses_8_connectivity() -> None:
    # Diagonal (0,0)-(1,1) joins (1,1)-(1,2): one region of 3 pixels, so PRO at 0.9 is 1/3, not
    # mean(1, 0) = 1/2 as two 4-connected regions would give. Curve (0,0) (0,1/3) (1,1).
    masks = np.zeros((3, 3), dtype=bool)
    masks[0, 0] = masks[1, 1] = masks[1, 2] = True
    maps = np.zeros((3, 3))
    maps[0, 0] = 0.9
    assert aupro(masks, maps, fpr_limit=1.0) == pytest.approx(2 / 3)


def test_aupro_perfect_detector() -> None:
    rng = np.random.default_rng(2)
    masks = _blob_masks(rng, 3, 16, 16, 0.1)
    maps = masks + 0.5 * rng.random(masks.shape)
    assert aupro(masks, maps) == pytest.approx(1.0)


def test_errors() -> None:
    with pytest.raises(ValueError, match="both normal and anomalous"):
        image_auroc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="both normal and anomalous"):
        average_precision([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="same length"):
        f1_max([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="2 NaN"):
        image_auroc([0, 1, 0, 1], [0.1, np.nan, 0.3, np.nan])
    with pytest.raises(ValueError, match="binary"):
        image_auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same shape"):
        pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="only normal"):
        pixel_auroc(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    maps = np.zeros((2, 4, 4), dtype=np.float32)
    maps[0, 0, :3] = np.nan
    masks = np.zeros((2, 4, 4))
    masks[1, 1, 1] = 1
    with pytest.raises(ValueError, match="3 NaN"):
        pixel_auroc(masks, maps)
    with pytest.raises(ValueError, match="no anomalous region"):
        aupro(np.zeros((2, 4, 4)), np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(masks, np.zeros((2, 4, 4)), fpr_limit=0.0)


def test_aupro_grid_minmax_hand_computed() -> None:
    # One region of 2 pixels (1.0, 0.5), normals 0.75, 0.25, 0, 0; steps 5 puts the thresholds at 1, .75, .5,
    # .25, 0 and a pixel on a threshold counts as anomalous. (FPR, PRO) per threshold: (0, .5) (.25, .5)
    # (.25, 1) (.5, 1) (1, 1). Below 0.3 (and below 0.5: the limit itself is dropped) the kept FPRs
    # 0, .25, .25 rescale to 0, 1, 1: area .5. Below 0.6, 0, .25, .25, .5 rescale to 0, .5, .5, 1: area .75.
    masks = np.array([[[1, 1, 0, 0, 0, 0]]])
    maps = np.array([[[1.0, 0.5, 0.75, 0.25, 0.0, 0.0]]])
    assert aupro_grid_minmax(masks, maps, 0.3, steps=5) == 0.5
    assert aupro_grid_minmax(masks, maps, 0.5, steps=5) == 0.5
    assert aupro_grid_minmax(masks, maps, 0.6, steps=5) == 0.75
    # The exact curve of the same maps, (0,0) (0,.5) (.25,.5) (.25,1) (.5,1) (1,1), up to 0.3: (.125 + .05) / .3.
    assert aupro(masks, maps, 0.3) == pytest.approx(0.175 / 0.3)


def test_aupro_grid_minmax_rescales_from_the_lowest_kept_fpr() -> None:
    # A normal pixel holds the maximum, so the top threshold already has FPR .25. Region (0.75, 0.25), normals
    # 1.0, 0.5, 0, 0: (FPR, PRO) per threshold (.25, 0) (.25, .5) (.5, .5) (.5, 1) (1, 1). Below 0.6 the FPRs
    # .25, .25, .5, .5 rescale to 0, 0, 1, 1: area .5 (dividing by the largest FPR alone would give .25).
    masks = np.array([[[1, 1, 0, 0, 0, 0]]])
    maps = np.array([[[0.75, 0.25, 1.0, 0.5, 0.0, 0.0]]])
    assert aupro_grid_minmax(masks, maps, 0.6, steps=5) == 0.5
    with pytest.raises(ValueError, match="fewer than two distinct grid FPRs"):
        aupro_grid_minmax(masks, maps, 0.3, steps=5)
