"""metrics.json figures from record tables: energy over exactly the timed window, honest nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.metrics.summary import summarize

NS = 1_000_000_000


def tables(count: int = 50) -> tuple[pd.DataFrame, pd.DataFrame]:
    images = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "category": ["cat"] * 4, "defect_type": ["good"] * 4,
                           "label": [0, 0, 1, 1], "input_sha256": ["x"] * 4, "score": [0.1, 0.2, 0.3, 0.9],
                           "error": [None] * 4})
    starts = NS + np.arange(count) * (NS // count)
    latency = pd.DataFrame({"category": "cat", "attempt": 0, "phase": "timed", "t_start_ns": starts,
                            "t_end_ns": starts + NS // count, "latency_ms": 1000 / count, "device_ms": None})
    warm = pd.DataFrame({"category": ["cat"], "attempt": [0], "phase": ["warmup"], "t_start_ns": [0],
                         "t_end_ns": [NS // 2], "latency_ms": [500.0], "device_ms": [None]})
    return images, pd.concat([warm, latency], ignore_index=True)


def test_energy_over_the_timed_window_only() -> None:
    images, latency = tables(50)
    t = np.arange(0, 3 * NS, NS // 1000)  # 1 kHz from 0 to 3 s; 9 W outside the window must not count
    watts = np.where((t >= NS) & (t <= 2 * NS), 5.0, 9.0)
    power = pd.DataFrame({"t_ns": t, "rail": "VDD_IN", "volts": np.nan, "amps": np.nan, "watts": watts})
    figures = summarize(images, latency, {}, {"cat": None}, {"cat": 0}, gmac=2.0, power=power,
                        rails=["VDD_IN"])["categories"]["cat"]
    assert figures["avg_power_w"] == pytest.approx(5.0, rel=5e-3)
    assert figures["energy_mj_per_inference"] == pytest.approx(5.0 * 1000 / 50, rel=5e-3)
    assert figures["gmac_per_j"] == pytest.approx(2.0 * 50 / 5.0, rel=5e-3)
    assert figures["energy_complete"] is True and figures["image_auroc"] == 1.0


def test_without_a_meter_energy_is_null_with_the_reason() -> None:
    images, latency = tables()
    figures = summarize(images, latency, {}, {"cat": None}, {"cat": 0}, gmac=2.0)["categories"]["cat"]
    assert figures["energy_mj_per_inference"] is None and figures["gmac_per_j"] is None
    assert figures["gmac_per_inference"] == 2.0
    assert "no power meter" in figures["energy_note"]


def test_a_meter_that_dropped_out_is_flagged() -> None:
    images, latency = tables(50)
    t = np.arange(0, int(1.3 * NS), NS // 1000)  # samples stop 0.3 s into the 1 s timed window
    power = pd.DataFrame({"t_ns": t, "rail": "VDD_IN", "volts": np.nan, "amps": np.nan, "watts": 5.0})
    figures = summarize(images, latency, {}, {"cat": None}, {"cat": 0}, power=power,
                        rails=["VDD_IN"])["categories"]["cat"]
    assert figures["energy_complete"] is False and figures["power_coverage"] < 0.5
    assert figures["energy_note"]
