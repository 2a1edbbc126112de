"""Tests for bench.metrics.drift against scipy, scikit-learn and straightforward O(n^2) references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from bench.metrics.accuracy import f1_max, image_auroc, pixel_auroc
from bench.metrics.drift import (
    DeLongResult,
    _one_pair_quantile,
    _resampled_pair_sums,
    auroc_difference_interval,
    drift_summary,
    float16_spearman,
    mean_interval,
    paired_delong,
    rank_agreement,
    score_error,
    verdict_flips,
)

TOL = 1e-10


def _reference_delong(labels: np.ndarray, scores_ref: np.ndarray, scores_dev: np.ndarray,
                      ) -> tuple[float, float, float, float]:
    """Textbook DeLong: Mann-Whitney kernel, structural components, covariance matrix, normal z-test.

    Returns (auc_ref, auc_dev, se of the difference, two-sided p-value).
    """
    y = labels.astype(bool)
    m, n = int(y.sum()), int((~y).sum())
    aucs, v10, v01 = [], [], []
    for scores in (scores_ref, scores_dev):
        x_pos, x_neg = scores[y], scores[~y]
        psi = (x_pos[:, None] > x_neg[None, :]) + 0.5 * (x_pos[:, None] == x_neg[None, :])
        aucs.append(psi.mean())
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s = np.cov(np.array(v10)) / m + np.cov(np.array(v01)) / n
    contrast = np.array([-1.0, 1.0])
    se = math.sqrt(contrast @ s @ contrast)
    p = 2.0 * stats.norm.sf(abs(aucs[1] - aucs[0]) / se)
    return float(aucs[0]), float(aucs[1]), se, float(p)


def _random_pair(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels with at least two per class, a reference run and a perturbed device run, both with ties."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 250))
    labels = rng.random(n) < rng.uniform(0.1, 0.9)
    labels[:2], labels[2:4] = True, False
    rng.shuffle(labels)
    ref = rng.normal(size=n) + rng.uniform(0.0, 2.0) * labels
    dev = ref + rng.normal(scale=rng.uniform(0.01, 1.0), size=n)
    decimals = int(rng.integers(0, 3))
    return labels.astype(int), np.round(ref, decimals), np.round(dev, decimals)


@pytest.mark.parametrize("seed", range(40))
def test_paired_delong_matches_reference(seed: int) -> None:
    labels, ref, dev = _random_pair(seed)
    result = paired_delong(labels, ref, dev)
    auc_ref, auc_dev, se, p = _reference_delong(labels, ref, dev)
    assert isinstance(result, DeLongResult)
    assert result.auc_ref == pytest.approx(auc_ref, abs=TOL)
    assert result.auc_dev == pytest.approx(auc_dev, abs=TOL)
    assert result.auc_ref == pytest.approx(roc_auc_score(labels, ref), abs=TOL)
    assert result.auc_dev == pytest.approx(roc_auc_score(labels, dev), abs=TOL)
    assert result.auc_ref == image_auroc(labels, ref)
    assert result.delta == pytest.approx(auc_dev - auc_ref, abs=TOL)
    assert se > 0
    assert result.se == pytest.approx(se, abs=TOL)
    assert result.p_value == pytest.approx(p, abs=TOL)


def test_paired_delong_ci_contains_delta_and_is_symmetric() -> None:
    labels, ref, dev = _random_pair(7)
    result = paired_delong(labels, ref, dev)
    assert result.se > 0
    assert result.ci_low < result.delta < result.ci_high
    assert result.ci_high - result.delta == pytest.approx(result.delta - result.ci_low, abs=1e-12)
    assert result.ci_high - result.delta == pytest.approx(stats.norm.ppf(0.975) * result.se, abs=1e-12)
    wider = paired_delong(labels, ref, dev, alpha=0.01)
    assert wider.ci_high - wider.ci_low > result.ci_high - result.ci_low


def test_paired_delong_identical_scores() -> None:
    labels, ref, _ = _random_pair(3)
    for dev in (ref.copy(), ref * 2.0 + 5.0):
        result = paired_delong(labels, ref, dev)
        assert (result.delta, result.se, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 0.0, 1.0)


def test_paired_delong_both_perfect_is_degenerate() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    result = paired_delong(labels, [0.1, 0.2, 0.3, 0.7, 0.8, 0.9], [0.3, 0.1, 0.2, 0.9, 0.95, 0.7])
    assert (result.auc_ref, result.auc_dev, result.p_value, result.se) == (1.0, 1.0, 1.0, 0.0)


def test_paired_delong_zero_variance_with_a_difference() -> None:
    # Every image's placement moves by the same amount: no variance, yet the order of the classes flips.
    result = paired_delong([0, 0, 1, 1], [1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 1.0, 2.0])
    assert (result.auc_ref, result.auc_dev, result.delta) == (1.0, 0.0, -1.0)
    assert (result.se, result.ci_low, result.ci_high, result.p_value) == (0.0, -1.0, -1.0, 0.0)


def test_paired_delong_detects_a_degraded_device() -> None:
    rng = np.random.default_rng(11)
    labels = (rng.random(2000) < 0.4).astype(int)
    ref = rng.normal(size=labels.size) + 2.0 * labels
    dev = ref + rng.normal(scale=1.5, size=labels.size)
    result = paired_delong(labels, ref, dev)
    assert result.delta < 0
    assert result.p_value < 0.05
    assert result.ci_high < 0


def test_paired_delong_small_noise_is_not_significant() -> None:
    rng = np.random.default_rng(12)
    labels = (rng.random(300) < 0.5).astype(int)
    ref = rng.normal(size=labels.size) + 1.0 * labels
    dev = ref + rng.normal(scale=1e-3, size=labels.size)
    result = paired_delong(labels, ref, dev)
    # the noise reorders a few pairs (the degenerate delta 0 is test_paired_delong_identical_scores)
    assert result.delta == pytest.approx(roc_auc_score(labels, dev) - roc_auc_score(labels, ref), abs=1e-12)
    assert result.delta != 0.0
    assert result.p_value > 0.05
    assert result.ci_low < 0 < result.ci_high


def test_paired_delong_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="normal and anomalous"):
        paired_delong([1, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        paired_delong([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least two"):
        paired_delong([0, 0, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="alpha"):
        paired_delong([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4], alpha=1.5)


def _brute_flipped(x: np.ndarray, y: np.ndarray) -> float:
    discordant = untied = 0
    for i in range(x.size):
        for j in range(i + 1, x.size):
            dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
            if dx and dy:
                untied += 1
                discordant += dx != dy
    return discordant / untied


@pytest.mark.parametrize("seed", range(20))
def test_rank_agreement_matches_scipy_and_brute_force(seed: int) -> None:
    _, ref, dev = _random_pair(seed)
    result = rank_agreement(ref, dev)
    assert set(result) == {"spearman", "kendall", "flipped_pairs"}
    assert result["spearman"] == pytest.approx(stats.spearmanr(ref, dev).statistic, abs=1e-12)
    assert result["kendall"] == pytest.approx(stats.kendalltau(ref, dev).statistic, abs=1e-12)
    assert result["flipped_pairs"] == pytest.approx(_brute_flipped(ref, dev), abs=1e-15)


def test_rank_agreement_extremes() -> None:
    x = np.arange(10.0)
    assert rank_agreement(x, x) == {"spearman": pytest.approx(1.0), "kendall": pytest.approx(1.0), "flipped_pairs": 0.0}
    reverse = rank_agreement(x, -x)
    assert reverse["flipped_pairs"] == 1.0
    assert reverse["spearman"] == pytest.approx(-1.0)
    constant = rank_agreement(x, np.zeros(10))
    assert all(math.isnan(v) for v in constant.values())


def test_rank_agreement_large_input_is_exact() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(0, 50, size=3000)
    y = x + rng.integers(-5, 6, size=x.size)
    flipped = rank_agreement(x, y)["flipped_pairs"]
    tau = stats.kendalltau(x, y)
    # With C + D = untied pairs, tau-b fixes D: cross-check the count on a size too large for the loop.
    pairs = x.size * (x.size - 1) // 2

    def tied(v: np.ndarray) -> int:
        counts = np.unique(v, axis=0, return_counts=True)[1]
        return int(np.sum(counts * (counts - 1) // 2))

    n1, n2, n3 = tied(x), tied(y), tied(np.stack([x, y], axis=1))
    untied = pairs - n1 - n2 + n3
    discordant = (untied - tau.statistic * math.sqrt((pairs - n1) * (pairs - n2))) / 2
    assert flipped == pytest.approx(discordant / untied, rel=1e-9)


def test_score_error() -> None:
    result = score_error([1.0, 2.0, 3.0], [1.5, 2.0, 1.0])
    assert result == {"max_abs": 2.0, "mean_abs": pytest.approx(2.5 / 3)}
    assert score_error(np.array([0], dtype=np.uint8), np.array([255], dtype=np.uint8))["max_abs"] == 255.0
    with pytest.raises(ValueError, match="same shape"):
        score_error([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        score_error([1.0, np.nan], [1.0, 2.0])


def test_verdict_flips_by_hand() -> None:
    labels = [0, 0, 0, 1, 1, 1]
    ref = [0.1, 0.2, 0.6, 0.5, 0.7, 0.9]
    # Host F1-max: threshold 0.5 flags {0.6, 0.5, 0.7, 0.9}: TP 3, FP 1, F1 = 6/7; 0.7 gives 4/5 only.
    assert f1_max(labels, ref).threshold == 0.5
    dev = [0.55, 0.2, 0.45, 0.5, 0.69, 0.9]  # image 0 turns anomalous, image 2 turns normal
    result = verdict_flips(labels, ref, dev)
    assert result == {"count": 2, "share": pytest.approx(2 / 6), "threshold": 0.5}
    assert verdict_flips(labels, ref, ref)["count"] == 0


def _maps_case() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(2)
    labels = np.array([0, 0, 0, 1, 1, 1])
    masks = np.zeros((6, 8, 8), dtype=np.uint8)
    masks[3, 2:4, 2:5] = 1
    masks[4, 5:7, 1:3] = 1
    masks[5, 0:3, 6:8] = 1
    maps_ref = (rng.random(masks.shape) + 1.5 * masks).astype(np.float32)
    maps_dev = (maps_ref + rng.normal(scale=0.2, size=masks.shape)).astype(np.float16)
    scores_ref = maps_ref.reshape(6, -1).max(axis=1)
    scores_dev = maps_dev.reshape(6, -1).max(axis=1).astype(np.float32)
    return labels, scores_ref, scores_dev, maps_ref, maps_dev, masks


def test_drift_summary_with_maps() -> None:
    labels, scores_ref, scores_dev, maps_ref, maps_dev, masks = _maps_case()
    summary = drift_summary(labels, scores_ref, scores_dev, maps_ref, maps_dev, masks)
    json.dumps(summary, allow_nan=False)

    image = summary["image"]
    delong = paired_delong(labels, scores_ref, scores_dev)
    assert image["auroc_ref"] == delong.auc_ref
    assert image["delta_points"] == pytest.approx(100 * delong.delta)
    # both runs separate the 3 + 3 images perfectly: DeLong collapses to [0, 0], the reported interval does not
    assert (delong.auc_ref, delong.auc_dev, delong.ci_low, delong.ci_high) == (1.0, 1.0, 0.0, 0.0)
    assert (image["delong_ci_low_points"], image["delong_ci_high_points"]) == (0.0, 0.0)
    honest = auroc_difference_interval(labels, scores_ref, scores_dev)
    assert (image["ci_low_points"], image["ci_high_points"]) == (100 * honest.ci_low, 100 * honest.ci_high)
    assert image["ci_low_points"] <= -100 / 9 and image["ci_high_points"] >= 100 / 9  # at least one pair of 9
    assert image["p_value"] == delong.p_value
    assert image["spearman"] == pytest.approx(stats.spearmanr(scores_ref, scores_dev).statistic)
    assert image["max_abs_error"] == pytest.approx(np.abs(scores_ref.astype(float) - scores_dev).max())
    assert isinstance(image["verdict_flips"], int)
    assert image["verdict_threshold"] == f1_max(labels, scores_ref).threshold

    pixel = summary["pixel"]
    auroc_ref, auroc_dev = pixel_auroc(masks, maps_ref), pixel_auroc(masks, maps_dev)
    assert pixel["auroc_ref"] == auroc_ref
    assert pixel["auroc_dev"] == auroc_dev
    assert pixel["delta_points"] == pytest.approx(100 * (auroc_dev - auroc_ref))
    diff = np.abs(maps_ref.astype(np.float64) - maps_dev.astype(np.float64))
    assert pixel["max_abs_error"] == pytest.approx(diff.max())
    assert pixel["mean_abs_error"] == pytest.approx(diff.mean())
    assert pixel["spearman"] == pytest.approx(stats.spearmanr(maps_ref.ravel(), maps_dev.ravel()).statistic)
    assert pixel["spearman_pixels"] == maps_ref.size
    assert image.pop("ci_method").startswith("paired bootstrap stratified by label, 2000 resamples")
    for value in [*image.values(), *pixel.values()]:
        assert type(value) in (float, int)


@pytest.mark.parametrize("case", ["distinct", "ties", "signed zeros", "large and tiny"])
def test_float16_spearman_is_scipys_spearman(case: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=5000).astype(np.float16)
    if case == "ties":
        x = np.round(x, 1).astype(np.float16)
    if case == "signed zeros":  # -0 and +0 are one value: scipy ranks them as a tie
        x[:1000], x[1000:2000] = np.float16(0.0), np.float16(-0.0)
    y = (x.astype(np.float32) + rng.normal(scale=0.5, size=x.size)).astype(np.float16)
    if case == "large and tiny":
        y = (np.abs(y) * np.float16(1000)).astype(np.float16)
        y[:10] = np.float16(6e-8)  # subnormals
    a, b = x.astype(np.float32), y.astype(np.float32)
    assert float16_spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_float16_spearman_refuses_what_float16_cannot_hold() -> None:
    halves = np.array([0.5, 1.0, 2.0, 3.0], dtype=np.float32)
    assert float16_spearman(halves + np.float32(1e-4), halves) is None  # not float16 values
    assert float16_spearman(np.array([1e6, 1.0, 2.0, 3.0], np.float32), halves) is None  # past float16's range
    assert float16_spearman(np.array([np.inf, 1.0, 2.0, 3.0], np.float32), halves) is None
    assert math.isnan(float16_spearman(np.ones(4, np.float32), halves))  # constant: undefined, as scipy's


def test_drift_summary_without_maps_or_masks() -> None:
    labels, scores_ref, scores_dev, maps_ref, maps_dev, _ = _maps_case()
    assert drift_summary(labels, scores_ref, scores_dev)["pixel"] is None
    pixel = drift_summary(labels, scores_ref, scores_dev, maps_ref, maps_dev)["pixel"]
    assert pixel["auroc_ref"] is None and pixel["delta_points"] is None and "note" in pixel
    assert pixel["max_abs_error"] > 0
    with pytest.raises(ValueError, match="both runs"):
        drift_summary(labels, scores_ref, scores_dev, maps_ref, None)
    with pytest.raises(ValueError, match="one map per image"):
        drift_summary(labels, scores_ref, scores_dev, maps_ref[:5], maps_dev[:5])


def test_drift_summary_subsamples_large_maps_deterministically(monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.metrics.drift as drift

    monkeypatch.setattr(drift, "MAX_SPEARMAN_PIXELS", 100)
    labels, scores_ref, scores_dev, maps_ref, maps_dev, masks = _maps_case()
    first = drift_summary(labels, scores_ref, scores_dev, maps_ref, maps_dev, masks)["pixel"]
    second = drift_summary(labels, scores_ref, scores_dev, maps_ref, maps_dev, masks)["pixel"]
    assert first["spearman_pixels"] == 100
    assert first["spearman"] == second["spearman"]
    assert 0.5 < first["spearman"] <= 1.0


# --- the interval the gates use: paired stratified bootstrap with a one-pair floor --------------------------


def _one_pair_simulated(m: int, n: int, draws: int = 400_000) -> int:
    """The 97.5 % quantile of how often one fixed (anomalous, normal) pair is drawn, by brute-force resampling."""
    rng = np.random.default_rng(123)
    hits_pos = (rng.integers(0, m, size=(draws, m)) == 0).sum(axis=1)
    hits_neg = (rng.integers(0, n, size=(draws, n)) == 0).sum(axis=1)
    return int(np.quantile(hits_pos * hits_neg, 0.975, method="inverted_cdf"))


@pytest.mark.parametrize(("m", "n"), [(4, 3), (20, 20), (40, 60), (63, 20)])
def test_one_pair_quantile_matches_brute_force_resampling(m: int, n: int) -> None:
    assert _one_pair_quantile(m, n, 0.975) == _one_pair_simulated(m, n)


def test_one_pair_quantile_of_a_single_image_class_is_a_binomial_quantile() -> None:
    # one anomalous image is drawn exactly once in every resample: the pair count is Binomial(n, 1/n)
    for n in (2, 5, 30, 500):
        assert _one_pair_quantile(1, n, 0.975) == int(stats.binom.ppf(0.975, n, 1 / n))


@pytest.mark.parametrize("seed", range(6))
def test_resampled_aurocs_match_sklearn_on_repeated_images(seed: int) -> None:
    labels, ref, _ = _random_pair(seed)  # rounded scores: ties within and across classes
    positive = labels.astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    rng = np.random.default_rng(seed)
    counts_pos = rng.multinomial(m, np.full(m, 1 / m), size=5)
    counts_neg = rng.multinomial(n, np.full(n, 1 / n), size=5)
    twice_u = _resampled_pair_sums(positive, ref, counts_pos, counts_neg)
    for row in range(5):
        weights = np.zeros(labels.size, dtype=int)
        weights[positive], weights[~positive] = counts_pos[row], counts_neg[row]
        expected = roc_auc_score(np.repeat(labels, weights), np.repeat(ref, weights))
        assert twice_u[row] / (2 * m * n) == pytest.approx(expected, abs=TOL)


def test_both_runs_perfect_on_seven_images_is_not_a_narrow_interval() -> None:
    # EdgeZSAD host vs emulated Jetson on 7 images, both at AUROC 100: DeLong printed [+0.00, +0.00].
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    ref = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 1.0])
    dev = np.array([0.2, 0.1, 0.35, 0.9, 0.75, 0.8, 0.95])
    assert paired_delong(labels, ref, dev).ci_high == 0.0
    result = auroc_difference_interval(labels, ref, dev)
    assert result.delta == 0.0 and result.boot_low == result.boot_high == 0.0 and result.images == 7
    # one pair of 12 is 8.3 points; the pair is drawn A * N times, A ~ Bin(4, 1/4), N ~ Bin(3, 1/3):
    # P(A N >= 6) = P(A >= 3) P(N >= 2) + P(A >= 2) P(N >= 3) - P(A >= 3) P(N >= 3) = 0.021 <= 0.025 and
    # A N = 5 is impossible, while P(A N >= 4) > P(A >= 2) P(N >= 2) = 0.068: the quantile is 4, 4/12 of AUROC
    assert (result.ci_low, result.ci_high) == pytest.approx((-4 / 12, 4 / 12), abs=1e-15)
    assert result.ci_low < -0.002 and result.ci_high > 0.002  # not inside +-0.2 points


def test_identical_rankings_get_the_floor_and_nothing_narrower() -> None:
    labels, ref, _ = _random_pair(3)
    positive = labels.astype(bool)
    m, n = int(positive.sum()), int((~positive).sum())
    for dev in (ref.copy(), ref * 2.0 + 5.0):
        result = auroc_difference_interval(labels, ref, dev)
        assert result.delta == 0.0 and np.all(result.replicates == 0.0)
        assert result.floor == _one_pair_simulated(m, n) / (m * n)
        assert (result.ci_low, result.ci_high) == (-result.floor, result.floor)
    # one pair ordered differently: the device swaps the lowest anomalous image with the normal just below it
    ranked = np.argsort(ref, kind="stable")
    one = ref.astype(float).copy()
    low = int(np.flatnonzero(positive[ranked])[0])
    below = [i for i in ranked[:low] if not positive[i]]
    if below and not np.any(ref[~positive] == ref[ranked[low]]):
        one[ranked[low]] = ref[below[-1]] - 1e-9
        flipped = auroc_difference_interval(labels, ref, one)
        assert flipped.delta < 0
        assert flipped.ci_high - flipped.ci_low >= 2 * result.floor - 1e-15  # never narrower for more noise


def test_one_class_tiny() -> None:
    rng = np.random.default_rng(5)
    labels = np.array([1] + [0] * 30)
    ref = np.r_[2.0, rng.normal(size=30)]
    dev = ref.copy()
    dev[1 + np.argsort(ref[1:])[-3:]] = 5.0  # the three highest normal images rise above the anomalous one
    with pytest.raises(ValueError, match="at least two"):
        paired_delong(labels, ref, dev)
    result = auroc_difference_interval(labels, ref, dev)
    expected = roc_auc_score(labels, dev) - roc_auc_score(labels, ref)
    assert result.delta == pytest.approx(expected, abs=TOL) and result.delta < 0
    # with one anomalous image every resample keeps it once: the difference is -(draws of the three) / 30,
    # the draws of three of 30 images are Binomial(30, 1/10)
    assert result.boot_low == pytest.approx(-stats.binom.ppf(0.975, 30, 0.1) / 30, abs=1 / 30 + 1e-12)
    assert result.boot_high == pytest.approx(-stats.binom.ppf(0.025, 30, 0.1) / 30, abs=1 / 30 + 1e-12)
    assert result.floor == stats.binom.ppf(0.975, 30, 1 / 30) / 30
    summary = drift_summary(labels, ref, dev)["image"]
    assert summary["p_value"] is None and summary["se_points"] is None
    assert summary["ci_low_points"] == pytest.approx(100 * result.ci_low)


def test_ties() -> None:
    labels = np.array([0] * 8 + [1] * 8)
    flat = np.ones(16)
    result = auroc_difference_interval(labels, flat, flat)  # AUROC 0.5 both, every pair tied
    assert result.delta == 0.0 and (result.ci_low, result.ci_high) == (-result.floor, result.floor)
    ref = np.r_[np.arange(8.0), np.arange(8.0) + 10]
    dev = ref.copy()
    dev[8] = dev[7]  # the lowest anomalous image now ties the highest normal one: half a pair lost
    tied = auroc_difference_interval(labels, ref, dev)
    assert tied.delta == -0.5 / 64
    assert tied.ci_low <= tied.delta - tied.floor and tied.ci_high >= tied.delta + tied.floor
    assert tied.replicates.max() == 0.0 and tied.replicates.min() < 0.0


def test_bootstrap_agrees_with_delong_and_a_brute_force_bootstrap_on_a_large_sample() -> None:
    rng = np.random.default_rng(21)
    labels = (np.arange(1725) < 725).astype(int)
    ref = rng.normal(size=labels.size) + 1.0 * labels
    dev = ref + rng.normal(scale=0.1, size=labels.size)
    result = auroc_difference_interval(labels, ref, dev)
    _, _, se, _ = _reference_delong(labels, ref, dev)
    half = (result.ci_high - result.ci_low) / 2
    assert half == pytest.approx(stats.norm.ppf(0.975) * se, rel=0.1)
    # an independent bootstrap: sklearn on explicitly resampled images, 250 resamples of each class
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    brute = []
    for _ in range(250):
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        brute.append(roc_auc_score(labels[idx], dev[idx]) - roc_auc_score(labels[idx], ref[idx]))
    assert np.std(result.replicates) == pytest.approx(np.std(brute), rel=0.2)
    assert auroc_difference_interval(labels, ref, dev).ci_low == result.ci_low  # fixed seed: reproducible


def test_mean_interval_over_categories() -> None:
    labels = np.array([0] * 30 + [1] * 20)
    scores = np.r_[np.linspace(0, 1, 30), np.linspace(2, 3, 20)]
    same = auroc_difference_interval(labels, scores, scores, seed=1)
    reversed_ = auroc_difference_interval(labels, scores, -scores, seed=2)  # AUROC 1 -> 0 in every resample
    assert reversed_.delta == -1.0 and np.all(reversed_.replicates == -1.0)
    mean = mean_interval([same, reversed_])
    assert mean.delta == -0.5 and mean.images == 100 and np.all(mean.replicates == -0.5)
    assert mean.floor == max(same.floor, reversed_.floor) / 2
    assert (mean.ci_low, mean.ci_high) == (-0.5 - mean.floor, -0.5 + mean.floor)
    only = mean_interval([reversed_])
    assert (only.ci_low, only.ci_high, only.floor) == (reversed_.ci_low, reversed_.ci_high, reversed_.floor)
    with pytest.raises(ValueError, match="no categories"):
        mean_interval([])
    with pytest.raises(ValueError, match="same number of resamples"):
        mean_interval([same, auroc_difference_interval(labels, scores, scores, resamples=10)])


def test_interval_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="normal and anomalous"):
        auroc_difference_interval([1, 1, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="alpha"):
        auroc_difference_interval([0, 1], [0.1, 0.2], [0.1, 0.2], alpha=0.0)
    with pytest.raises(ValueError, match="resamples"):
        auroc_difference_interval([0, 1], [0.1, 0.2], [0.1, 0.2], resamples=0)
    with pytest.raises(ValueError, match="NaN"):
        auroc_difference_interval([0, 1], [0.1, np.nan], [0.1, 0.2])
