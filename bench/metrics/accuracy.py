"""Accuracy metrics for anomaly detection: image-level and pixel-level.

All metrics are exact (no threshold grids) and need only numpy and scipy at run time, so they can be
computed on a device image that carries no scikit-learn. Scores follow the convention "higher means
more anomalous"; labels and masks use 0 = normal, non-zero = anomalous.

Choices worth knowing when comparing numbers with other tools:

* Ties. ROC AUC is the Mann-Whitney statistic with mid-ranks: a tied (anomalous, normal) pair counts
  one half. That is exactly what scikit-learn's trapezoidal ROC integration over distinct score
  thresholds yields, so :func:`image_auroc` and :func:`pixel_auroc` match ``roc_auc_score``. The
  count is accumulated in integers and divided once, so the result does not depend on summation order.
* Average precision is scikit-learn's step-wise definition (no interpolation): the sum over distinct
  thresholds of the recall increment times the precision at that threshold, ties grouped together.
* F1-max scans every distinct score threshold (predict anomalous when ``score >= threshold``) and
  reports the lowest threshold reaching the maximum, the most permissive operating point.
* AUPRO follows the MVTec AD evaluation code: regions are the connected components of each mask found
  with ``scipy.ndimage.label`` and a 3x3 ones structure (8-connectivity, so diagonal neighbours join);
  PRO at a threshold is the mean over all regions of all images of the fraction of the region's
  pixels scoring at or above it; FPR is the fraction of all normal pixels at or above it. The curve
  starts at (0, 0), visits every distinct threshold, and is integrated with the trapezoid rule up to
  ``fpr_limit``, interpolating linearly at the limit. With ``normalize=True`` the area is divided by
  ``fpr_limit`` (as MVTec's evaluation code and anomalib 2.7 do), so a perfect detector scores 1.0. Many
  papers instead copy CFlow-AD's PRO loop: a fixed threshold grid whose truncated FPR axis is min-max
  rescaled to [0, 1] before integrating. That stretches the curve by a grid-dependent factor, so its
  numbers are not directly comparable; :func:`aupro_grid_minmax` follows that convention, not its exact
  figures.
* Degenerate inputs raise ``ValueError`` instead of returning NaN: a test split with one class only,
  or pixel metrics on masks without any anomalous region, is a configuration problem that callers
  should report as "metric not available".
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = ["F1Max", "aupro", "aupro_grid_minmax", "average_precision", "f1_max", "image_auroc", "pixel_auroc"]

# 3x3 ones structure: 8-connected regions, as in the MVTec AD reference evaluation.
_REGION_STRUCTURE = np.ones((3, 3), dtype=bool)


class F1Max(NamedTuple):
    """Best F1 over all score thresholds and the lowest threshold achieving it."""

    f1: float
    threshold: float


def _as_scores(values: ArrayLike, what: str) -> NDArray:
    """Real-valued score array; float16 is widened (exactly) to float32 because numpy sorts it slowly."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be real numbers, got dtype {arr.dtype}")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    return arr


def _nan_count(arr: NDArray) -> int:
    if arr.dtype.kind != "f":
        return 0
    return int(np.count_nonzero(np.isnan(arr)))


def _nan_count_sorted(arr: NDArray) -> int:
    """NaN count of an ascending-sorted array without a temporary mask (numpy sorts NaN last)."""
    if arr.dtype.kind != "f" or arr.size == 0:
        return 0
    return int(arr.size - np.searchsorted(arr, np.nan, side="left"))


def _image_inputs(labels: ArrayLike, scores: ArrayLike, metric: str) -> tuple[NDArray[np.bool_], NDArray]:
    """Validate 1-D image-level inputs; returns (is_anomalous, scores)."""
    y = np.asarray(labels)
    s = _as_scores(scores, "scores")
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(f"{metric}: labels and scores must be 1-D, got shapes {y.shape} and {s.shape}")
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"{metric}: labels and scores must have the same length, got {y.shape[0]} and {s.shape[0]}"
        )
    if y.dtype != np.bool_:
        if y.dtype.kind not in "iuf" or not np.all((y == 0) | (y == 1)):
            raise ValueError(f"{metric}: labels must be binary (0 = normal, 1 = anomalous)")
        y = y.astype(bool)
    n_nan = _nan_count(s)
    if n_nan:
        raise ValueError(f"{metric}: scores contain {n_nan} NaN value(s) out of {s.size}")
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        present = "no samples" if y.size == 0 else ("only anomalous" if n_pos else "only normal")
        raise ValueError(
            f"{metric} needs both normal and anomalous samples, got {present} ({y.size} samples)"
        )
    return y, s


def _pixel_inputs(masks: ArrayLike, maps: ArrayLike, metric: str) -> tuple[NDArray[np.bool_], NDArray]:
    """Validate mask/map stacks of equal shape; returns (is_anomalous, maps) without copying maps."""
    m = np.asarray(masks)
    a = np.asarray(maps)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{metric}: maps must be real numbers, got dtype {a.dtype}")
    if m.shape != a.shape:
        raise ValueError(f"{metric}: masks and maps must have the same shape, got {m.shape} and {a.shape}")
    if m.dtype != np.bool_:
        m = m != 0
    return m, a


def _split_sorted(values: NDArray, positive: NDArray[np.bool_], metric: str) -> tuple[NDArray, NDArray]:
    """Anomalous and normal scores as two ascending-sorted copies (no index arrays)."""
    pos = _as_scores(values[positive], "scores")
    neg = _as_scores(values[~positive], "scores")
    pos.sort()
    neg.sort()
    n_nan = _nan_count_sorted(pos) + _nan_count_sorted(neg)
    if n_nan:
        raise ValueError(f"{metric}: scores contain {n_nan} NaN value(s) out of {values.size}")
    return pos, neg


def _mann_whitney_auc(pos: NDArray, neg: NDArray) -> float:
    """P(pos > neg) + P(pos == neg) / 2 from two ascending-sorted arrays, exact in integers.

    Each distinct anomalous score is located in the normal scores with two binary searches: the left
    index counts strictly lower normal scores, the right-minus-left gap counts ties, so
    ``left + right = 2 * lower + ties`` is twice the pair credit of that score.
    """
    starts = np.flatnonzero(np.concatenate(([True], pos[1:] != pos[:-1])))
    counts = np.diff(np.append(starts, pos.size))
    distinct = pos[starts]
    credit = np.searchsorted(neg, distinct, side="left") + np.searchsorted(neg, distinct, side="right")
    twice = int(np.dot(counts.astype(np.int64), credit.astype(np.int64)))
    return twice / (2 * pos.size * neg.size)


def _threshold_counts(positive: NDArray[np.bool_], scores: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Distinct thresholds (descending) with true/false positive counts for ``score >= threshold``."""
    distinct, inverse = np.unique(scores, return_inverse=True)
    inverse = inverse.ravel()
    total = np.bincount(inverse, minlength=distinct.size)
    hits = np.bincount(inverse[positive], minlength=distinct.size)
    tps = np.cumsum(hits[::-1])
    fps = np.cumsum((total - hits)[::-1])
    return distinct[::-1], tps, fps


def image_auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Exact ROC AUC with mid-rank ties (equals scikit-learn's ``roc_auc_score``).

    Raises ValueError when lengths differ, only one class is present, or scores contain NaN, because
    an AUROC on such data would be meaningless rather than merely low.
    """
    y, s = _image_inputs(labels, scores, "image_auroc")
    pos, neg = _split_sorted(s, y, "image_auroc")
    return _mann_whitney_auc(pos, neg)


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision exactly as scikit-learn's ``average_precision_score`` (step-wise, no interpolation).

    Interpolated variants overestimate; the step-wise sum over distinct thresholds is the common
    reference for published image-level AP numbers.
    """
    y, s = _image_inputs(labels, scores, "average_precision")
    _, tps, fps = _threshold_counts(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def f1_max(labels: ArrayLike, scores: ArrayLike) -> F1Max:
    """Maximum F1 over all distinct thresholds (anomalous when ``score >= threshold``).

    Reports the lowest threshold reaching the maximum so the chosen operating point is reproducible
    and favours recall among equally good options.
    """
    y, s = _image_inputs(labels, scores, "f1_max")
    thresholds, tps, fps = _threshold_counts(y, s)
    n_pos = tps[-1]
    # F1 = 2 TP / (2 TP + FP + FN) with FN = P - TP; equal ratios of integers give equal floats.
    f1 = 2 * tps / (tps + fps + n_pos)
    best = f1.max()
    idx = int(np.flatnonzero(f1 == best)[-1])
    return F1Max(f1=float(best), threshold=float(thresholds[idx]))


def pixel_auroc(masks: ArrayLike, maps: ArrayLike) -> float:
    """ROC AUC over every pixel of a stack of masks (non-zero = anomalous) and anomaly maps.

    Exact (same as ``roc_auc_score`` on the flattened arrays) but lean: the anomalous and normal
    scores are copied and sorted separately in their own dtype (float16 widened to float32), and the
    AUC is counted by binary search, so no float64 copy or int64 argsort of all pixels is made.
    """
    m, a = _pixel_inputs(masks, maps, "pixel_auroc")
    n_pos = int(np.count_nonzero(m))
    if n_pos == 0 or n_pos == m.size:
        present = "no pixels" if m.size == 0 else ("only anomalous" if n_pos else "only normal")
        raise ValueError(f"pixel_auroc needs both normal and anomalous pixels, got {present}")
    pos, neg = _split_sorted(a, m, "pixel_auroc")
    return _mann_whitney_auc(pos, neg)


def _trapezoid_until(x: NDArray, y: NDArray, x_max: float) -> float:
    """Trapezoid area under (x, y) for x in [x[0], x_max]; x non-decreasing and reaching x_max."""
    inside = int(np.searchsorted(x, x_max, side="right"))
    xs, ys = x[:inside], y[:inside]
    area = float(np.sum(0.5 * (ys[1:] + ys[:-1]) * np.diff(xs)))
    if inside < x.size and xs[-1] < x_max:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += float(0.5 * (y0 + y_at) * (x_max - x0))
    return area


def _pro_inputs(masks: ArrayLike, maps: ArrayLike, fpr_limit: float, name: str,
                ) -> tuple[NDArray, NDArray, NDArray, int]:
    """Sorted normal scores, anomalous scores with their region weights 1/|region|, and the region count."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"{name}: fpr_limit must be in (0, 1], got {fpr_limit}")
    m, a = _pixel_inputs(masks, maps, name)
    if m.ndim == 2:
        m, a = m[None], a[None]
    if m.ndim != 3:
        raise ValueError(f"{name}: expected (N, H, W) or (H, W) arrays, got shape {m.shape}")

    pos_parts: list[NDArray] = []
    weight_parts: list[NDArray] = []
    n_regions = 0
    for mask, amap in zip(m, a, strict=True):
        if not mask.any():
            continue
        regions, n = ndimage.label(mask, structure=_REGION_STRUCTURE)
        sizes = np.bincount(regions.ravel())
        pos_parts.append(amap[mask])
        weight_parts.append(1.0 / sizes[regions[mask]])
        n_regions += n
    if n_regions == 0:
        raise ValueError(f"{name}: masks contain no anomalous region; PRO is undefined")

    neg = _as_scores(a[~m], "maps")
    if neg.size == 0:
        raise ValueError(f"{name}: masks contain no normal pixel; FPR is undefined")
    neg.sort()
    pos = _as_scores(np.concatenate(pos_parts), "maps")
    n_nan = _nan_count_sorted(neg) + _nan_count(pos)
    if n_nan:
        raise ValueError(f"{name}: maps contain {n_nan} NaN value(s) out of {a.size}")

    return neg, pos, np.concatenate(weight_parts), n_regions


def aupro(masks: ArrayLike, maps: ArrayLike, fpr_limit: float = 0.3, normalize: bool = True) -> float:
    """Area under the per-region-overlap curve up to ``fpr_limit`` (MVTec AD definition), exact.

    PRO weighs every defect region equally, so small defects count as much as large ones, unlike
    pixel AUROC. ``masks``/``maps`` are (N, H, W) or a single (H, W) image. Regions are 8-connected
    components per image. The curve uses every distinct score threshold: normal scores are sorted
    once, anomalous pixels (usually few) are ordered with their region weight 1/|region|, and only
    thresholds down to the first one past the FPR limit are evaluated. Raises ValueError when the
    masks hold no anomalous region or no normal pixel.
    """
    neg, pos, weights, n_regions = _pro_inputs(masks, maps, fpr_limit, "aupro")
    n_neg = neg.size
    order = np.argsort(pos, kind="stable")[::-1]
    pos_desc = pos[order]
    # cum_weight[k]: summed region weights of the k highest-scoring anomalous pixels.
    cum_weight = np.concatenate(([0.0], np.cumsum(weights[order])))
    pos_asc = pos_desc[::-1]

    # Thresholds below ``cut`` cannot affect the area: at ``cut`` itself the FPR already exceeds the
    # limit (or is 1), so the curve beyond it is only needed for that one interpolation point.
    # The slice starts at the first copy of ``cut`` so that its whole tie group is counted.
    beyond = min(math.floor(fpr_limit * n_neg) + 1, n_neg - 1)
    cut = neg[n_neg - 1 - beyond]
    neg_top = neg[np.searchsorted(neg, cut, side="left") :]
    pos_top = pos_asc[np.searchsorted(pos_asc, cut, side="left") :]
    thresholds = np.union1d(neg_top, pos_top)[::-1]

    false_pos = neg_top.size - np.searchsorted(neg_top, thresholds, side="left")
    true_pos = pos_top.size - np.searchsorted(pos_top, thresholds, side="left")
    fpr = np.concatenate(([0.0], false_pos / n_neg))
    pro = np.concatenate(([0.0], np.minimum(cum_weight[true_pos] / n_regions, 1.0)))

    area = _trapezoid_until(fpr, pro, fpr_limit)
    return area / fpr_limit if normalize else area


def aupro_grid_minmax(masks: ArrayLike, maps: ArrayLike, fpr_limit: float = 0.3, steps: int = 200) -> float:
    """AUPRO on a threshold grid with a min-max rescaled FPR axis, to set beside papers that use that convention.

    The convention is that of the PRO loop in CFlow-AD (taken from DFR) and its many copies, not their
    exact figures. Here PRO and FPR are taken at ``steps`` evenly spaced thresholds from the maps'
    maximum down to their minimum, both included, a pixel counting as anomalous when ``score >=
    threshold``; points with FPR >= ``fpr_limit`` are dropped, the kept FPRs are min-max rescaled to
    [0, 1] and the curve is integrated with the trapezoid rule. CFlow-AD's loop instead takes the
    thresholds max - k (max - min) / steps for k < steps, counts ``score > threshold`` and keeps FPR <=
    the limit, which moves its figures by a fraction of a point. Because the last kept FPR is
    below the limit by a grid-dependent amount, rescaling stretches the curve: values depend on ``steps``
    and usually run a little higher than :func:`aupro`'s. Use :func:`aupro` for new results.
    """
    neg, pos, weights, n_regions = _pro_inputs(masks, maps, fpr_limit, "aupro_grid_minmax")
    order = np.argsort(pos, kind="stable")
    pos_asc = pos[order]
    tail_weight = np.concatenate((np.cumsum(weights[order][::-1])[::-1], [0.0]))
    top = max(float(neg[-1]), float(pos_asc[-1]))
    bottom = min(float(neg[0]), float(pos_asc[0]))
    thresholds = np.linspace(top, bottom, steps)
    fpr = (neg.size - np.searchsorted(neg, thresholds, side="left")) / neg.size
    pro = tail_weight[np.searchsorted(pos_asc, thresholds, side="left")] / n_regions
    keep = fpr < fpr_limit
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min():
        raise ValueError("aupro_grid_minmax: fewer than two distinct grid FPRs below the FPR limit")
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    return float(np.sum((fpr[1:] - fpr[:-1]) * (pro[1:] + pro[:-1]) / 2))
