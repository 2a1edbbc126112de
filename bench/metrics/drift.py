"""Drift of a device run against the host reference run of the same model on the same images.

A device (FP16, INT8, another runtime) never reproduces the host's scores bit for bit. What matters is
whether the difference changes the accuracy figures, and whether it is larger than the sampling noise
of the test set. This module answers that at three depths:

* Accuracy: :func:`auroc_difference_interval` gives the 95 % interval of the change in image AUROC that
  the gates use: a paired bootstrap stratified by label, never narrower than one disagreeing image
  pair would make it (it stays honest where DeLong's variance vanishes, e.g. both runs perfect), and
  :func:`mean_interval` the same for the mean over categories. :func:`paired_delong` adds the paired
  DeLong test's p-value (DeLong, DeLong & Clarke-Pearson 1988, Biometrics 44:837). Both are paired:
  the two runs score the *same* images, so their AUCs are strongly correlated, and a paired method is
  far more sensitive than comparing two independent confidence intervals. DeLong is computed with the
  O(n log n) mid-rank algorithm of Sun & Xu (2014, IEEE Signal Processing Letters 21:1389), exact with ties.
* Ranking: :func:`rank_agreement` says how much the order of the images changed (AUROC only sees the
  order), and :func:`score_error` how far the raw scores moved.
* Decisions: :func:`verdict_flips` applies the host's operating point to both runs and counts the
  images whose good/defective verdict changes, which is what a deployed line would notice.

:func:`drift_summary` gathers all of it, plus pixel-level figures when anomaly maps are available,
as a JSON-ready dict. Scores follow the "higher means more anomalous" convention of
:mod:`bench.metrics.accuracy`, and inputs are validated the same way (ValueError on NaN scores, one
class only, or mismatched lengths).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from bench.metrics.accuracy import _as_scores, _image_inputs, _nan_count, f1_max, image_auroc, pixel_auroc

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "DeLongResult",
    "DriftInterval",
    "auroc_difference_interval",
    "drift_summary",
    "mean_interval",
    "paired_delong",
    "rank_agreement",
    "score_error",
    "verdict_flips",
]

# Pixel maps are ranked on a subsample: a million pixels pin a Spearman correlation to about 1e-3
# while ranking a full test set (tens of millions of pixels) would take seconds and gigabytes.
MAX_SPEARMAN_PIXELS = 1_000_000
_SUBSAMPLE_SEED = 0
# 2000 resamples put the Monte Carlo error of a 2.5 % percentile at about 0.35 % in probability.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
_BOOTSTRAP_CELLS = 1 << 23  # resample counts held at once (64 MiB of int64): bounds memory on huge sets


@dataclass(frozen=True)
class DeLongResult:
    """Paired DeLong comparison of two ROC AUCs on the same images (AUCs as fractions, not points)."""

    auc_ref: float
    auc_dev: float
    delta: float  # auc_dev - auc_ref
    ci_low: float  # lower end of the (1 - alpha) confidence interval of delta
    ci_high: float
    p_value: float  # two-sided, H0: both runs have the same AUC
    se: float  # standard error of delta


def _paired_scores(scores_ref: ArrayLike, scores_dev: ArrayLike, what: str) -> tuple[NDArray, NDArray]:
    """Two real arrays of the same shape without NaN (float16 widened like in the accuracy module)."""
    a = _as_scores(scores_ref, f"{what}: reference values")
    b = _as_scores(scores_dev, f"{what}: device values")
    if a.shape != b.shape:
        raise ValueError(f"{what}: reference and device must have the same shape, got {a.shape} and {b.shape}")
    n_nan = _nan_count(a) + _nan_count(b)
    if n_nan:
        raise ValueError(f"{what}: inputs contain {n_nan} NaN value(s)")
    return a, b


def paired_delong(labels: ArrayLike, scores_ref: ArrayLike, scores_dev: ArrayLike, alpha: float = 0.05,
                  ) -> DeLongResult:
    """Paired DeLong test of ``AUC(dev) - AUC(ref)`` on the same labelled images.

    Sun & Xu's formulation: the structural components (the per-image placement values of DeLong) are
    differences of mid-ranks, so three rankings per run replace the O(m n) pair kernel and ties count
    one half exactly as in the Mann-Whitney AUC. The AUCs are exact (they equal ``image_auroc``). The
    variance of the difference is taken from the differences of the components, which equals
    ``var_ref + var_dev - 2 cov`` of the textbook covariance matrix but cannot go negative by rounding.

    Degenerate case: when the variance of the difference is zero (identical scores, any strictly
    increasing transform of them, or both runs separating the classes perfectly) there is no evidence
    of a difference, and the result is delta 0, se 0, CI [0, 0], p_value 1.0. In contrived inputs
    the variance can also vanish with a non-zero delta (every image's placement moved by the same
    amount, e.g. two images per class with the order reversed); then se is 0, the CI is [delta, delta]
    and p_value is 0.0, the limit of the test statistic.

    Raises ValueError for mismatched lengths, NaN scores, non-binary labels, or fewer than two images
    of either class (the component variances need two of each).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"paired_delong: alpha must be in (0, 1), got {alpha}")
    positive, ref = _image_inputs(labels, scores_ref, "paired_delong")
    _, dev = _image_inputs(labels, scores_dev, "paired_delong")
    m = int(np.count_nonzero(positive))
    n = positive.size - m
    if m < 2 or n < 2:
        raise ValueError(f"paired_delong needs at least two normal and two anomalous images, got {n} and {m}")

    pos = np.stack([ref[positive], dev[positive]])
    neg = np.stack([ref[~positive], dev[~positive]])
    # Mid-rank among all images minus mid-rank within the own class: for an anomalous image, the number
    # of normal images scoring lower plus half the tied ones (and symmetrically for a normal image).
    # These are half-integers, so sums and differences below are exact.
    all_ranks = stats.rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    place_pos = all_ranks[:, :m] - stats.rankdata(pos, axis=1)
    place_neg = all_ranks[:, m:] - stats.rankdata(neg, axis=1)

    auc_ref, auc_dev = (float(v) for v in place_pos.sum(axis=1) / (m * n))
    delta = auc_dev - auc_ref
    # V10 = place_pos / n and V01 = 1 - place_neg / m; only the ref/dev differences enter the variance.
    var = (float(np.var(place_pos[1] - place_pos[0], ddof=1)) / (n * n * m)
           + float(np.var(place_neg[1] - place_neg[0], ddof=1)) / (m * m * n))
    if var <= 0.0:
        return DeLongResult(auc_ref, auc_dev, delta, delta, delta, 1.0 if delta == 0.0 else 0.0, 0.0)
    se = math.sqrt(var)
    p_value = float(min(1.0, 2.0 * stats.norm.sf(abs(delta) / se)))
    half = float(stats.norm.isf(alpha / 2.0)) * se
    return DeLongResult(auc_ref, auc_dev, delta, delta - half, delta + half, p_value, se)


@dataclass(frozen=True)
class DriftInterval:
    """The (1 - alpha) interval of ``AUC(dev) - AUC(ref)`` that the gates use (fractions, not points).

    ``ci_low``/``ci_high`` are the reported interval: the bootstrap's (``boot_low``/``boot_high``) widened
    to at least ``delta -+ floor``. ``replicates`` are the bootstrap deltas, kept to combine categories.
    """

    delta: float
    ci_low: float
    ci_high: float
    boot_low: float
    boot_high: float
    floor: float  # the half-width one disagreeing image pair gives: no interval is narrower
    images: int
    alpha: float
    replicates: NDArray[np.float64]


def _resampled_pair_sums(positive: NDArray[np.bool_], scores: NDArray, counts_pos: NDArray, counts_neg: NDArray,
                         ) -> NDArray[np.int64]:
    """Twice the Mann-Whitney U of each resample, given as how often each image is drawn (one row each).

    A drawn anomalous image counts the drawn normal images below it plus half the tied ones, so one
    sort and a cumulative sum per resample replace the m x n pair kernel: O(B (m + n)) time and memory,
    in integers, hence exact. The AUROC of a resample is the result over ``2 m n``.
    """
    pos, neg = scores[positive], scores[~positive]
    order = np.argsort(neg, kind="stable")
    neg_sorted = neg[order]
    cum = np.zeros((counts_neg.shape[0], neg.size + 1), dtype=np.int64)
    np.cumsum(counts_neg[:, order], axis=1, out=cum[:, 1:])
    twice = (cum.take(np.searchsorted(neg_sorted, pos, side="left"), axis=1)
             + cum.take(np.searchsorted(neg_sorted, pos, side="right"), axis=1))
    return np.einsum("bi,bi->b", twice, counts_pos, dtype=np.int64)


def _draw_counts(rng: np.random.Generator, size: int, k: int) -> NDArray[np.int64]:
    """How often each of ``k`` images is drawn in ``size`` resamples of ``k`` draws with replacement."""
    drawn = rng.integers(0, k, size=(size, k)) + (np.arange(size) * k)[:, None]
    return np.bincount(drawn.ravel(), minlength=size * k).reshape(size, k)


def _one_pair_quantile(m: int, n: int, level: float) -> int:
    """The ``level`` quantile of how often one (anomalous, normal) pair is drawn in a stratified resample.

    The pair is drawn ``A * N`` times with ``A ~ Binomial(m, 1/m)`` and ``N ~ Binomial(n, 1/n)``
    independent; their exact joint law is enumerated (counts above 40 have probability below 1e-45).
    """
    a, b = np.arange(min(m, 40) + 1), np.arange(min(n, 40) + 1)
    products = np.multiply.outer(a, b).ravel()
    mass = np.multiply.outer(stats.binom.pmf(a, m, 1.0 / m), stats.binom.pmf(b, n, 1.0 / n)).ravel()
    order = np.argsort(products, kind="stable")
    cdf = np.cumsum(mass[order])
    return int(products[order][min(np.searchsorted(cdf, level - 1e-12), cdf.size - 1)])


def auroc_difference_interval(labels: ArrayLike, scores_ref: ArrayLike, scores_dev: ArrayLike, alpha: float = 0.05,
                              resamples: int = BOOTSTRAP_RESAMPLES, seed: int | Sequence[int] = BOOTSTRAP_SEED,
                              ) -> DriftInterval:
    """Interval of ``AUC(dev) - AUC(ref)`` that stays honest where DeLong's variance vanishes.

    Bootstrap: ``resamples`` resamples of the images with replacement, anomalous and normal images
    drawn separately (stratified, so each keeps the observed class sizes), the same images for both
    runs (paired); the interval is the ``alpha/2`` and ``1 - alpha/2`` percentiles of the resampled
    differences, from a fixed ``seed`` so a record is reproducible.

    Floor: a resample can only move the difference through image pairs the two runs order
    differently. When none do (identical or monotonically related scores, both runs separating the
    classes perfectly) every resample gives the same difference and the bootstrap collapses, as
    DeLong's variance does, although a few images can never pin the difference down. The rule: the
    interval always covers ``delta -+ floor``, where ``floor`` is the extent the bootstrap gives when
    exactly one pair is ordered differently, ``q / (m n)`` with ``q`` the exact ``1 - alpha/2`` quantile
    of that pair's resampled multiplicity (:func:`_one_pair_quantile`). So the interval is never
    narrower than the sample's resolution, and one more disagreeing pair never narrows it: a gate
    cannot reward a noisier device. For 3 normal and 4 anomalous images, both runs perfect, the
    interval is [-33.3, +33.3] points; for 1,000 and 725 images with identical rankings about
    +-0.001 points. An exact lower bound on each perfect run's AUROC (``(alpha/2) ** (1 / min(m, n))``,
    from ``min(m, n)`` disjoint pairs) was not used: it ignores the pairing and, applied only at AUROC 1,
    would judge an identical device inconclusive where a slightly noisier one passes.

    Needs at least one image of each class (ValueError otherwise, and for NaN or mismatched inputs).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"auroc_difference_interval: alpha must be in (0, 1), got {alpha}")
    if resamples < 1:
        raise ValueError(f"auroc_difference_interval: resamples must be at least 1, got {resamples}")
    positive, ref = _image_inputs(labels, scores_ref, "auroc_difference_interval")
    _, dev = _image_inputs(labels, scores_dev, "auroc_difference_interval")
    m = int(np.count_nonzero(positive))
    n = positive.size - m
    ones_pos, ones_neg = np.ones((1, m), dtype=np.int64), np.ones((1, n), dtype=np.int64)
    delta = float((_resampled_pair_sums(positive, dev, ones_pos, ones_neg)[0]
                   - _resampled_pair_sums(positive, ref, ones_pos, ones_neg)[0]) / (2 * m * n))
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // positive.size)
    parts = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        counts_pos, counts_neg = _draw_counts(rng, size, m), _draw_counts(rng, size, n)
        parts.append((_resampled_pair_sums(positive, dev, counts_pos, counts_neg)
                      - _resampled_pair_sums(positive, ref, counts_pos, counts_neg)) / (2 * m * n))
    replicates = np.concatenate(parts)
    floor = _one_pair_quantile(m, n, 1.0 - alpha / 2.0) / (m * n)
    return _widened(delta, replicates, floor, positive.size, alpha)


def _widened(delta: float, replicates: NDArray[np.float64], floor: float, images: int, alpha: float,
             ) -> DriftInterval:
    low, high = (float(v) for v in np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0]))
    return DriftInterval(delta, min(low, delta - floor), max(high, delta + floor), low, high, floor, images, alpha,
                         replicates)


def mean_interval(intervals: Sequence[DriftInterval]) -> DriftInterval:
    """The interval of the mean difference over categories (the dataset figure the gates judge).

    Categories hold disjoint images and are resampled independently (give each its own seed), so
    the mean's bootstrap distribution is the resample-wise mean of theirs. Its floor is the coarsest
    category's divided by the number of categories: one disagreeing pair there moves the mean that much.
    """
    if not intervals:
        raise ValueError("mean_interval: no categories")
    sizes = {item.replicates.size for item in intervals}
    alphas = {item.alpha for item in intervals}
    if len(sizes) != 1 or len(alphas) != 1:
        raise ValueError("mean_interval: the categories need the same number of resamples and the same alpha")
    k = len(intervals)
    delta = float(np.mean([item.delta for item in intervals]))
    replicates = np.mean(np.stack([item.replicates for item in intervals]), axis=0)
    floor = max(item.floor for item in intervals) / k
    return _widened(delta, replicates, floor, sum(item.images for item in intervals), alphas.pop())


def _tied_pairs(values: NDArray) -> int:
    """Number of pairs with equal values (rows compared whole for 2-D input)."""
    if values.ndim == 1:
        _, counts = np.unique(values, return_counts=True)
    else:
        _, counts = np.unique(values, axis=0, return_counts=True)
    counts = counts.astype(np.int64)
    return int(np.sum(counts * (counts - 1) // 2))


def _strict_inversions(ranks: NDArray[np.int64]) -> int:
    """Pairs i < j with ranks[i] > ranks[j], for non-negative integer ranks, in O(n log^2 n) numpy.

    Such a pair is decided at the highest bit where the two ranks differ: both share the prefix above
    it, the earlier one has the bit set and the later one not. For every bit the sequence is grouped
    by that prefix (a stable sort keeps sequence order inside a group), and each element with the bit
    clear counts the elements with the bit set before it in its group. Equal ranks are never counted.
    """
    total = 0
    for bit in range(int(ranks.max(initial=0)).bit_length()):
        prefix = ranks >> (bit + 1)
        order = np.argsort(prefix, kind="stable")
        prefix_sorted = prefix[order]
        is_set = ((ranks[order] >> bit) & 1).astype(np.int64)
        set_before = np.cumsum(is_set) - is_set
        starts = np.flatnonzero(np.concatenate(([True], prefix_sorted[1:] != prefix_sorted[:-1])))
        sizes = np.diff(np.append(starts, ranks.size))
        set_before -= np.repeat(set_before[starts], sizes)
        total += int(set_before[is_set == 0].sum())
    return total


def _discordant_pairs(x: NDArray, y: NDArray) -> int:
    """Pairs ordered one way by ``x`` and strictly the other way by ``y`` (ties in either never count).

    Sorted by x, then by y inside ties of x, a discordant pair is exactly a strict inversion of y.
    """
    order = np.lexsort((y, x))
    _, dense = np.unique(y[order], return_inverse=True)
    return _strict_inversions(dense.ravel().astype(np.int64))


def _correlation(kind: str, x: NDArray, y: NDArray) -> float:
    """Spearman or Kendall tau-b, NaN (without scipy's warning) when either input is constant."""
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.spearmanr(x, y) if kind == "spearman" else stats.kendalltau(x, y, variant="b")
    return float(result.statistic)


def rank_agreement(scores_ref: ArrayLike, scores_dev: ArrayLike) -> dict[str, float]:
    """How much the device reorders the images: Spearman, Kendall tau-b and the share of flipped pairs.

    AUROC depends only on the order of the scores, so a device that keeps the order keeps the AUROC
    whatever its numeric error. ``flipped_pairs`` is the number of discordant pairs divided by the
    pairs tied in neither run (pairs tied in one run have no order to flip), counted in O(n log^2 n).
    All three are NaN when undefined: fewer than two images, a constant run, or no untied pair.
    """
    x, y = _paired_scores(scores_ref, scores_dev, "rank_agreement")
    if x.ndim != 1:
        raise ValueError(f"rank_agreement: scores must be 1-D, got shape {x.shape}")
    n = x.size
    untied = n * (n - 1) // 2 - _tied_pairs(x) - _tied_pairs(y) + _tied_pairs(np.stack([x, y], axis=1))
    flipped = _discordant_pairs(x, y) / untied if untied else math.nan
    return {"spearman": _correlation("spearman", x, y), "kendall": _correlation("kendall", x, y),
            "flipped_pairs": float(flipped)}


def score_error(scores_ref: ArrayLike, scores_dev: ArrayLike) -> dict[str, float]:
    """Largest and mean absolute difference, in float64 so integer or float16 inputs cannot overflow.

    Works on arrays of any (equal) shape, so it serves image scores and anomaly maps alike.
    """
    a, b = _paired_scores(scores_ref, scores_dev, "score_error")
    if a.size == 0:
        raise ValueError("score_error: inputs are empty")
    diff = np.subtract(a, b, dtype=np.float64)
    np.abs(diff, out=diff)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean())}


def verdict_flips(labels: ArrayLike, scores_ref: ArrayLike, scores_dev: ArrayLike) -> dict[str, Any]:
    """Images whose verdict changes when the host's F1-max threshold is applied to both runs.

    A deployment calibrates its threshold on the host and ships it with the model, so the device is
    judged at the host's operating point (anomalous when ``score >= threshold``), not at its own best
    one. Returns ``count`` (int), ``share`` of all images, and the ``threshold``.
    """
    ref = _image_inputs(labels, scores_ref, "verdict_flips")[1]
    dev = _image_inputs(labels, scores_dev, "verdict_flips")[1]
    threshold = f1_max(labels, ref).threshold
    count = int(np.count_nonzero((ref >= threshold) != (dev >= threshold)))
    return {"count": count, "share": count / ref.size, "threshold": threshold}


def _pixel_level(maps_ref: ArrayLike, maps_dev: ArrayLike, masks: ArrayLike | None, n_images: int,
                 auroc_ref: float | None = None) -> dict[str, Any]:
    a, b = _paired_scores(maps_ref, maps_dev, "drift_summary: maps")
    if a.ndim < 2 or a.shape[0] != n_images:
        raise ValueError(f"drift_summary: maps must be a stack of one map per image ({n_images}), got shape {a.shape}")
    out: dict[str, Any] = {"auroc_ref": None, "auroc_dev": None, "delta_points": None}
    if masks is None:
        out["note"] = "no masks: pixel AUROC not available"
    else:
        try:
            auroc_ref = pixel_auroc(masks, a) if auroc_ref is None else auroc_ref
            auroc_dev = pixel_auroc(masks, b)
        except ValueError as exc:
            out["note"] = f"pixel AUROC not available: {exc}"
        else:
            out.update(auroc_ref=auroc_ref, auroc_dev=auroc_dev, delta_points=(auroc_dev - auroc_ref) * 100.0)
    error = score_error(a, b)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    if flat_a.size > MAX_SPEARMAN_PIXELS:
        picked = _subsample(flat_a.size, MAX_SPEARMAN_PIXELS)
        flat_a, flat_b = flat_a[picked], flat_b[picked]
    spearman = float16_spearman(flat_a, flat_b)
    if spearman is None:
        spearman = _correlation("spearman", flat_a, flat_b)
    out.update(max_abs_error=error["max_abs"], mean_abs_error=error["mean_abs"],
               spearman=spearman, spearman_pixels=int(flat_a.size))
    return out


@functools.lru_cache(maxsize=16)
def _subsample(size: int, count: int) -> NDArray:
    """The fixed-seed pixel subsample for ``size`` pixels, drawn once: a report compares many runs over the
    same categories, and drawing a million of eight million indices took a tenth of its time."""
    picked = np.sort(np.random.default_rng(_SUBSAMPLE_SEED).choice(size, count, replace=False))
    picked.flags.writeable = False
    return picked


def float16_spearman(x: NDArray, y: NDArray) -> float | None:
    """Spearman's rho when both arrays hold only finite float16 values (a record's maps); None otherwise.
    Exactly scipy's (average ranks for ties, then Pearson of the ranks), in O(n): the ranks
    come from counting each of the 65,536 bit patterns instead of sorting. NaN when either is constant."""
    ranks_x, ranks_y = _float16_ranks(x), _float16_ranks(y)
    if ranks_x is None or ranks_y is None:
        return None
    ranks_x -= ranks_x.mean()
    ranks_y -= ranks_y.mean()
    scale = math.sqrt(float(np.dot(ranks_x, ranks_x)) * float(np.dot(ranks_y, ranks_y)))
    return float(np.dot(ranks_x, ranks_y) / scale) if scale > 0 else math.nan


def _float16_ranks(values: NDArray) -> NDArray | None:
    """1-based average ranks of finite float16-valued ``values`` (ties share their mean rank); None otherwise."""
    if values.size < 2:
        return None
    with np.errstate(over="ignore"):  # a value past float16's range becomes inf here, and is refused
        half = values.astype(np.float16)
    if not np.isfinite(half).all() or not np.array_equal(half, values):
        return None
    bits = (half + np.float16(0)).view(np.uint16).astype(np.int32)  # -0 + 0 is +0: one value, one pattern
    key = np.where(bits >= 0x8000, 0xFFFF - bits, bits + 0x8000)  # sign-magnitude to ascending order
    counts = np.bincount(key, minlength=1 << 16)
    ends = np.cumsum(counts)
    return ((2 * ends - counts + 1) / 2.0)[key]


def drift_summary(labels: ArrayLike, scores_ref: ArrayLike, scores_dev: ArrayLike, maps_ref: ArrayLike | None = None,
                  maps_dev: ArrayLike | None = None, masks: ArrayLike | None = None,
                  interval: DriftInterval | None = None, pixel_auroc_ref: float | None = None) -> dict[str, Any]:
    """All drift figures of one category as a JSON-ready dict: ``{"image": {...}, "pixel": {...} | None}``.

    Image level: ``auroc_ref``/``auroc_dev`` (fractions); ``delta_points``, ``ci_low_points`` and
    ``ci_high_points`` (AUROC points, i.e. x100: the 95 % interval of :func:`auroc_difference_interval`,
    or ``interval`` when the caller computed it, e.g. with a seed of its own), ``ci_floor_points`` (the
    narrowest half-width this sample allows) and ``ci_method``; the paired DeLong test's ``p_value``,
    ``se_points``, ``delong_ci_low_points`` and ``delong_ci_high_points`` (all None when a class has
    fewer than two images); ``spearman``, ``kendall``, ``flipped_pairs``; ``max_abs_error``,
    ``mean_abs_error``; ``verdict_flips`` (int), ``verdict_flip_share`` and ``verdict_threshold``.

    Pixel level, only when maps are given for both runs (one map per image, same order as ``labels``):
    ``auroc_ref``, ``auroc_dev``, ``delta_points`` (None, with a ``note``, without masks or when the
    masks hold one class only; ``pixel_auroc_ref``, when given, is the reference's, already computed on these maps
    and masks by a caller comparing many runs with one reference); ``max_abs_error``, ``mean_abs_error`` over all
    pixels; ``spearman`` of
    the flattened maps on a fixed-seed subsample of at most ``MAX_SPEARMAN_PIXELS`` pixels (ranked by counting when
    both hold float16 values, as recorded maps do: 4x faster than sorting, same figure) and ``spearman_pixels``,
    the number used. There is no test or interval at pixel level on purpose: the
    pixels of one image, and neighbouring pixels above all, are strongly dependent, so a method that
    treats them as independent samples would report absurdly small p-values.
    """
    if (maps_ref is None) != (maps_dev is None):
        raise ValueError("drift_summary: pixel drift needs the maps of both runs, got only one")
    honest = interval if interval is not None else auroc_difference_interval(labels, scores_ref, scores_dev)
    positive, ref = _image_inputs(labels, scores_ref, "drift_summary")
    dev = _image_inputs(labels, scores_dev, "drift_summary")[1]
    m = int(np.count_nonzero(positive))
    delong: dict[str, float | None] = dict.fromkeys(
        ("p_value", "se_points", "delong_ci_low_points", "delong_ci_high_points"))
    if min(m, positive.size - m) >= 2:  # DeLong's component variances need two images of each class
        test = paired_delong(positive, ref, dev)
        delong = {"p_value": test.p_value, "se_points": test.se * 100.0,
                  "delong_ci_low_points": test.ci_low * 100.0, "delong_ci_high_points": test.ci_high * 100.0}
    ranks = rank_agreement(scores_ref, scores_dev)
    error = score_error(scores_ref, scores_dev)
    verdicts = verdict_flips(labels, scores_ref, scores_dev)
    image = {
        "auroc_ref": image_auroc(positive, ref),
        "auroc_dev": image_auroc(positive, dev),
        "delta_points": honest.delta * 100.0,
        "ci_low_points": honest.ci_low * 100.0,
        "ci_high_points": honest.ci_high * 100.0,
        "ci_floor_points": honest.floor * 100.0,
        "ci_method": f"paired bootstrap stratified by label, {honest.replicates.size} resamples, "
                     f"floor of one disagreeing pair",
        **delong,
        **ranks,
        "max_abs_error": error["max_abs"],
        "mean_abs_error": error["mean_abs"],
        "verdict_flips": verdicts["count"],
        "verdict_flip_share": verdicts["share"],
        "verdict_threshold": verdicts["threshold"],
    }
    pixel = None if maps_ref is None else _pixel_level(maps_ref, maps_dev, masks, len(np.asarray(labels)),
                                                       pixel_auroc_ref)
    return {"image": image, "pixel": pixel}
