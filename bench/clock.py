"""The one clock for latency rows and power samples, so windows line up exactly."""

from __future__ import annotations

import time

now_ns = time.perf_counter_ns


def clock_info() -> dict[str, int | str]:
    """Recorded in the manifest: add ``epoch_offset_ns`` to a timestamp to get Unix time (for external traces)."""
    return {"name": "time.perf_counter_ns", "epoch_offset_ns": time.time_ns() - now_ns()}
