"""Latency and throughput figures from the timed rows of latency.parquet."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def timed_rows(latency: pd.DataFrame, category: str, attempt: int | None) -> pd.DataFrame:
    """The timed rows of the attempt that completed the category's timed pass."""
    rows = latency[(latency["category"] == category) & (latency["phase"] == "timed")]
    return rows if attempt is None else rows[rows["attempt"] == attempt]


def latency_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """Percentiles and mean of host-clock latency, device-reported latency where present, and FPS.

    FPS is timed inferences over the timed window (first start to last end), so it includes
    any host overhead between single-stream queries rather than assuming 1000 / mean latency.
    """
    if rows.empty:
        return {"timed_inferences": 0, "p50_ms": None, "p90_ms": None, "p99_ms": None, "mean_ms": None,
                "fps": None, "window_s": None, "device_p50_ms": None, "device_mean_ms": None}
    lat = rows["latency_ms"].to_numpy(dtype=np.float64)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99])
    window_s = (int(rows["t_end_ns"].max()) - int(rows["t_start_ns"].min())) / 1e9
    device = rows["device_ms"].dropna().to_numpy(dtype=np.float64)
    return {
        "timed_inferences": len(lat),
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(lat.mean()),
        "fps": float(len(lat) / window_s) if window_s > 0 else None,
        "window_s": window_s,
        "device_p50_ms": float(np.percentile(device, 50)) if device.size else None,
        "device_mean_ms": float(device.mean()) if device.size else None,
    }
