"""Latency and throughput figures from the timed rows of latency.parquet, by their timing source.

The authoritative clock differs by session (``timing_source`` in the rows): the host's monotonic
clock around each call; the device's own clock per call (``device_ms``), where the host's would
include a link's round trips or frame pacing; or the device's profiler, whose rows have no host
timestamps. Percentiles come from that clock, and so does FPS: for host-clock rows it is timed
inferences over the timed window, for device sources single-stream 1000 / mean device latency,
since the host window would again include what the device clock leaves out.

How certain and how stable the figures are comes beside them (``latency_stability``): 95 %
distribution-free intervals for p50/p90/p99 from order statistics, the ranks chosen from the
binomial distribution of how many inferences fall below the true percentile (as MLPerf LoadGen's
early-stopping estimate does), the coefficient of variation, and drift between the first and the
last third of the timed window.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

HOST_CLOCK = "host_clock"
DEVICE_CLOCK = "device_clock"
DEVICE_PROFILER = "device_profiler"
FPS_BASIS = {
    HOST_CLOCK: "timed inferences over the timed window (host clock)",
    DEVICE_CLOCK: "single stream: 1000 / mean device latency",
    DEVICE_PROFILER: "single stream: 1000 / mean device latency",
}


CONFIDENCE = 0.95
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}
CV_LIMIT = 0.20  # a spread above this is flagged: the percentiles then depend on when the window fell
DRIFT_LIMIT = 0.05  # a last-third median this far from the first third's, beyond both intervals, is drift


def timed_rows(latency: pd.DataFrame, category: str, attempt: int | None) -> pd.DataFrame:
    """The timed rows of the attempt that completed the category's timed pass."""
    rows = latency[(latency["category"] == category) & (latency["phase"] == "timed")]
    return rows if attempt is None else rows[rows["attempt"] == attempt]


def timing_source(rows: pd.DataFrame) -> str | None:
    """The one timing source of a category's timed rows (None without rows); rows that state none were
    timed on the host clock."""
    if rows.empty:
        return None
    sources = set(rows["timing_source"].fillna(HOST_CLOCK))
    if len(sources) > 1:
        raise ValueError(f"timed rows mix timing sources {sorted(sources)}")
    source = sources.pop()
    if source not in FPS_BASIS:
        raise ValueError(f"unknown timing source {source!r}; known: {', '.join(FPS_BASIS)}")
    return source


def authoritative_ms(rows: pd.DataFrame) -> np.ndarray:
    """The timed rows' latencies on their authoritative clock: host ``latency_ms``, else ``device_ms``."""
    source = timing_source(rows)
    column = "latency_ms" if source in (HOST_CLOCK, None) else "device_ms"
    return rows[column].dropna().to_numpy(dtype=np.float64)


def _figures(values: np.ndarray) -> tuple[float | None, ...]:
    """p50, p90, p99 and mean; None each without values."""
    if values.size == 0:
        return None, None, None, None
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return float(p50), float(p90), float(p99), float(values.mean())


def quantile_ranks(n: int, q: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """1-based ranks ``l``, ``u`` whose order statistics bound the ``q`` quantile with at least ``confidence``.

    The count B of inferences below the true quantile is Binom(n, q), and x_(l) <= quantile < x_(u) exactly
    when l <= B < u; each tail outside is held to (1 - confidence) / 2. ``l`` < 1 or ``u`` > n means that
    side has no bound from ``n`` inferences (e.g. p99's upper side below 368).
    """
    tail = (1 - confidence) / 2
    low = int(stats.binom.ppf(tail, n, q))
    high = int(stats.binom.isf(tail, n, q)) + 1
    return low, high


def quantile_ci(values: np.ndarray, q: float, confidence: float = CONFIDENCE) -> list[float | None]:
    """``[low, high]`` bounds of the ``q`` quantile of ``values``; None for a side ``len(values)`` cannot bound."""
    n = len(values)
    if n == 0:
        return [None, None]
    ordered = np.sort(values)
    low, high = quantile_ranks(n, q, confidence)
    return [float(ordered[low - 1]) if low >= 1 else None, float(ordered[high - 1]) if high <= n else None]


def _drift(values: np.ndarray) -> dict[str, Any]:
    """Median of the last third of the window against the first third's; ``drifting`` only when they differ by
    more than ``DRIFT_LIMIT`` and their 95 % intervals are disjoint (noise alone rarely separates them)."""
    third = len(values) // 3
    first, last = values[:third], values[len(values) - third:]
    empty = {"latency_drift_first_p50_ms": None, "latency_drift_last_p50_ms": None, "latency_drift_ratio": None}
    if third == 0:
        return {**empty, "latency_drift": "not assessed: no timed inferences"}
    first_ci, last_ci = quantile_ci(first, 0.5), quantile_ci(last, 0.5)
    a, b = float(np.median(first)), float(np.median(last))
    ratio = b / a if a > 0 else None
    figures = {"latency_drift_first_p50_ms": a, "latency_drift_last_p50_ms": b, "latency_drift_ratio": ratio}
    if None in first_ci or None in last_ci or ratio is None:
        return {**figures, "latency_drift": f"not assessed: {third} inferences per third bound no median"}
    disjoint = first_ci[1] < last_ci[0] or last_ci[1] < first_ci[0]
    if disjoint and abs(ratio - 1) > DRIFT_LIMIT:
        return {**figures, "latency_drift": "drifting"}
    return {**figures, "latency_drift": "no drift"}


def latency_stability(values: np.ndarray) -> dict[str, Any]:
    """Intervals of p50/p90/p99, coefficient of variation, drift and the verdict, from latencies in time order.

    The verdict is ``stable`` or ``unstable: <reasons>``; a drift that cannot be assessed is no reason.
    """
    out: dict[str, Any] = {f"{name}_ci_ms": quantile_ci(values, q) for name, q in QUANTILES.items()}
    cv = float(stats.variation(values, ddof=1)) if len(values) >= 2 and values.mean() > 0 else None
    out["latency_cv"] = cv
    out.update(_drift(values))
    reasons = []
    if cv is not None and cv > CV_LIMIT:
        reasons.append(f"coefficient of variation {cv:.2f} > {CV_LIMIT:.2f}")
    if out["latency_drift"] == "drifting":
        change = (out["latency_drift_ratio"] - 1) * 100
        reasons.append(f"median {change:+.1f} % from the first to the last third of the timed window")
    if len(values) == 0:
        out["latency_stability"] = None
    else:
        out["latency_stability"] = "unstable: " + "; ".join(reasons) if reasons else "stable"
    return out


def in_time_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows by start time where the host timed them; a profiler's rows keep the order it reported them in."""
    if rows.empty or rows["t_start_ns"].isna().any():
        return rows
    return rows.sort_values("t_start_ns", kind="stable")


def latency_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Percentiles, mean and FPS from the rows' authoritative clock, with the host and device figures beside.

    ``window_s`` is the host's timed window (first start to last end); a profiler's rows have none.
    """
    source = timing_source(rows)
    host = rows["latency_ms"].to_numpy(dtype=np.float64) if source != DEVICE_PROFILER else np.empty(0)
    device = rows["device_ms"].dropna().to_numpy(dtype=np.float64)
    window_s = None
    if source in (HOST_CLOCK, DEVICE_CLOCK):
        window_s = (int(rows["t_end_ns"].max()) - int(rows["t_start_ns"].min())) / 1e9
    ordered = authoritative_ms(in_time_order(rows))
    p50, p90, p99, mean = _figures(ordered)
    fps = None
    if source == HOST_CLOCK and window_s:
        fps = len(rows) / window_s
    elif source != HOST_CLOCK and mean:
        fps = 1000.0 / mean
    host_p50, _, _, host_mean = _figures(host)
    device_p50, _, _, device_mean = _figures(device)
    return {
        "timed_inferences": len(rows),
        "timing_source": source,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "mean_ms": mean,
        "fps": fps,
        "fps_basis": FPS_BASIS.get(source) if fps is not None else None,
        "window_s": window_s,
        "host_p50_ms": host_p50,
        "host_mean_ms": host_mean,
        "device_p50_ms": device_p50,
        "device_mean_ms": device_mean,
        **latency_stability(ordered),
    }
