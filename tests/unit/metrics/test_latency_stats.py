"""Latency intervals, spread, drift and the stability verdict, against exact binomial sums and built cases."""

from __future__ import annotations

from fractions import Fraction
from math import comb

import numpy as np
import pandas as pd
import pytest

from bench.metrics.latency import CV_LIMIT, latency_stability, latency_summary, quantile_ci, quantile_ranks
from bench.metrics.summary import summarize

NS = 1_000_000_000


def exact_ranks(n: int, q: Fraction, confidence: Fraction = Fraction(95, 100)) -> tuple[int, int]:
    """Brute force in exact arithmetic: the largest ``l`` with P(B < l) < tail and the smallest ``u`` with
    P(B >= u) <= tail, B ~ Binom(n, q), tail = (1 - confidence) / 2."""
    pmf = [comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
    tail = (1 - confidence) / 2
    low = max(r for r in range(n + 1) if sum(pmf[:r]) < tail)
    high = min(r for r in range(1, n + 2) if sum(pmf[r:]) <= tail)
    return low, high


@pytest.mark.parametrize("n", [6, 20, 57, 100, 250])
@pytest.mark.parametrize("q", [Fraction(1, 2), Fraction(9, 10), Fraction(99, 100)])
def test_ranks_match_exact_binomial_sums(n: int, q: Fraction) -> None:
    low, high = quantile_ranks(n, float(q))
    assert (low, high) == exact_ranks(n, q)
    pmf = [comb(n, k) * q**k * (1 - q) ** (n - k) for k in range(n + 1)]
    assert sum(pmf[max(low, 0):min(high, n + 1)]) >= Fraction(95, 100)  # P(l <= B < u)


def test_known_ranks() -> None:
    # the median of 100 observations: x(40) to x(61), the classical table value (Conover, Practical
    # Nonparametric Statistics); p99's upper side needs 1 - 0.99**n >= 0.975, i.e. n >= 368
    assert quantile_ranks(100, 0.5) == (40, 61)
    assert quantile_ranks(367, 0.99)[1] == 368 and quantile_ranks(368, 0.99)[1] == 368


def test_interval_is_order_statistics_and_unbounded_sides_are_none() -> None:
    values = np.random.default_rng(1).permutation(np.arange(1.0, 101.0))  # x(k) == k
    assert quantile_ci(values, 0.5) == [40.0, 61.0]
    low, high = quantile_ci(values, 0.99)
    assert low == float(quantile_ranks(100, 0.99)[0]) and high is None
    assert quantile_ci(np.arange(5.0), 0.5) == [None, None]
    assert quantile_ci(np.empty(0), 0.5) == [None, None]


def test_interval_covers_the_true_quantile_at_least_95_percent() -> None:
    rng = np.random.default_rng(3)
    true_p90 = -np.log(0.1)  # exponential(1)
    trials = 4000
    covered = 0
    for _ in range(trials):
        low, high = quantile_ci(rng.exponential(size=200), 0.9)
        covered += low <= true_p90 <= high
    assert covered / trials >= 0.94  # >= 0.95 by construction; 0.01 allows Monte Carlo error (sd 0.0035)


def test_stable_latencies() -> None:
    values = np.random.default_rng(4).normal(20.0, 0.5, 600)
    out = latency_stability(values)
    assert out["latency_stability"] == "stable" and out["latency_drift"] == "no drift"
    assert out["latency_cv"] == pytest.approx(np.std(values, ddof=1) / np.mean(values))
    assert out["latency_drift_ratio"] == pytest.approx(np.median(values[400:]) / np.median(values[:200]))


def test_drifting_latencies_are_unstable() -> None:
    rng = np.random.default_rng(5)
    values = np.linspace(20.0, 24.0, 600) + rng.normal(0, 0.3, 600)  # e.g. thermal throttling
    out = latency_stability(values)
    assert out["latency_drift"] == "drifting"
    ratio = np.median(values[400:]) / np.median(values[:200])
    assert out["latency_drift_ratio"] == pytest.approx(ratio) and ratio > 1.1
    assert out["latency_stability"].startswith("unstable: median +")
    assert out["latency_drift_first_p50_ms"] == pytest.approx(np.median(values[:200]))


def test_small_shift_beyond_noise_is_not_drift() -> None:
    """A 2 % step is resolved by the intervals but stays under the 5 % limit."""
    values = np.r_[np.full(300, 20.0), np.full(300, 20.4)] + np.random.default_rng(6).normal(0, 0.01, 600)
    out = latency_stability(values)
    assert out["latency_drift"] == "no drift" and out["latency_stability"] == "stable"


def test_wide_spread_is_unstable_without_drift() -> None:
    values = np.random.default_rng(7).lognormal(np.log(20), 0.6, 900)
    out = latency_stability(values)
    cv = np.std(values, ddof=1) / np.mean(values)
    assert cv > CV_LIMIT and out["latency_drift"] == "no drift"
    assert out["latency_stability"] == f"unstable: coefficient of variation {cv:.2f} > {CV_LIMIT:.2f}"


def test_too_few_inferences_for_drift() -> None:
    out = latency_stability(np.full(12, 5.0))
    assert out["latency_drift"].startswith("not assessed") and out["latency_stability"] == "stable"
    assert latency_stability(np.empty(0))["latency_stability"] is None


def rows(values: np.ndarray, category: str = "cat") -> pd.DataFrame:
    starts = NS + np.arange(len(values)) * 50_000_000
    return pd.DataFrame({"category": category, "attempt": 0, "phase": "timed", "t_start_ns": starts,
                         "t_end_ns": starts + (values * 1e6).astype(np.int64), "latency_ms": values,
                         "device_ms": None, "timing_source": "host_clock"})


def test_summary_reads_the_window_in_time_order() -> None:
    values = np.linspace(10.0, 14.0, 300)
    shuffled = rows(values).sample(frac=1.0, random_state=0)
    figures = latency_summary(shuffled)
    assert figures["latency_drift"] == "drifting" and figures["latency_drift_ratio"] > 1.2
    assert figures["p50_ci_ms"] == quantile_ci(values, 0.5)
    assert figures["p99_ci_ms"][1] is None  # 300 inferences cannot bound p99 from above


def test_metrics_name_the_unstable_categories() -> None:
    steady = np.full(300, 8.0)
    latency = pd.concat([rows(np.linspace(10.0, 14.0, 300), "a"), rows(steady, "b")], ignore_index=True)
    images = pd.DataFrame({"image_id": ["a/1", "a/2", "b/1", "b/2"], "category": ["a", "a", "b", "b"],
                           "defect_type": "x", "label": [0, 1, 0, 1], "input_sha256": "x",
                           "score": [0.1, 0.9, 0.1, 0.9], "error": None})
    result = summarize(images, latency, {}, {"a": None, "b": None}, {"a": 0, "b": 0})
    assert result["categories"]["b"]["latency_stability"] == "stable"
    assert result["mean"]["latency_stability"] == "unstable: a"
