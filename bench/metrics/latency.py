"""Latency and throughput figures from the timed rows of latency.parquet, by their timing source.

The authoritative clock differs by session (``timing_source`` in the rows): the host's monotonic
clock around each call; the device's own clock per call (``device_ms``), where the host's would
include a link's round trips or frame pacing; or the device's profiler, whose rows have no host
timestamps. Percentiles come from that clock, and so does FPS: for host-clock rows it is timed
inferences over the timed window, for device sources single-stream 1000 / mean device latency,
since the host window would again include what the device clock leaves out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

HOST_CLOCK = "host_clock"
DEVICE_CLOCK = "device_clock"
DEVICE_PROFILER = "device_profiler"
FPS_BASIS = {
    HOST_CLOCK: "timed inferences over the timed window (host clock)",
    DEVICE_CLOCK: "single stream: 1000 / mean device latency",
    DEVICE_PROFILER: "single stream: 1000 / mean device latency",
}


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
    p50, p90, p99, mean = _figures(authoritative_ms(rows))
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
    }
