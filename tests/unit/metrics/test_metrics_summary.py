"""metrics.json figures from record tables: energy over exactly the timed window, honest nulls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.metrics.summary import summarize

NS = 1_000_000_000


def tables(count: int = 50, source: str = "host_clock", device_ms: float | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    images = pd.DataFrame({"image_id": ["a", "b", "c", "d"], "category": ["cat"] * 4, "defect_type": ["good"] * 4,
                           "label": [0, 0, 1, 1], "input_sha256": ["x"] * 4, "score": [0.1, 0.2, 0.3, 0.9],
                           "error": [None] * 4})
    starts = NS + np.arange(count) * (NS // count)
    latency = pd.DataFrame({"category": "cat", "attempt": 0, "phase": "timed", "t_start_ns": starts,
                            "t_end_ns": starts + NS // count, "latency_ms": 1000 / count, "device_ms": device_ms,
                            "timing_source": source})
    warm = pd.DataFrame({"category": ["cat"], "attempt": [0], "phase": ["warmup"], "t_start_ns": [0],
                         "t_end_ns": [NS // 2], "latency_ms": [500.0], "device_ms": [None], "timing_source": [source]})
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


def test_host_clock_figures_come_from_the_host_window() -> None:
    images, latency = tables(50)
    figures = summarize(images, latency, {}, {"cat": None}, {"cat": 0})["categories"]["cat"]
    assert figures["timing_source"] == "host_clock" and figures["p50_ms"] == pytest.approx(20.0)
    assert figures["fps"] == pytest.approx(50.0) and figures["window_s"] == pytest.approx(1.0)
    assert figures["device_p50_ms"] is None


def test_device_clock_figures_come_from_the_device() -> None:
    """50 calls of 20 ms on the host clock, of which the device says 4 ms were its own."""
    images, latency = tables(50, "device_clock", device_ms=4.0)
    t = np.arange(0, 3 * NS, NS // 1000)
    power = pd.DataFrame({"t_ns": t, "rail": "VDD_IN", "volts": np.nan, "amps": np.nan, "watts": 5.0})
    result = summarize(images, latency, {}, {"cat": None}, {"cat": 0}, power=power, rails=["VDD_IN"])
    figures = result["categories"]["cat"]
    assert figures["timing_source"] == "device_clock" and result["mean"]["timing_source"] == "device_clock"
    assert figures["p50_ms"] == figures["p99_ms"] == figures["mean_ms"] == 4.0
    assert figures["fps"] == pytest.approx(250.0) and figures["fps_basis"].startswith("single stream")
    assert figures["host_p50_ms"] == pytest.approx(20.0) and figures["device_p50_ms"] == 4.0
    # the energy window is still the host's: 5 W over 1 s for 50 inferences
    assert figures["window_s"] == pytest.approx(1.0)
    assert figures["energy_mj_per_inference"] == pytest.approx(100.0, rel=5e-3)


def test_profiler_figures_have_no_window_and_no_energy() -> None:
    images, _ = tables()
    latency = pd.DataFrame({"category": "cat", "attempt": 0, "phase": "timed", "t_start_ns": [None] * 4,
                            "t_end_ns": [None] * 4, "latency_ms": [2.0, 4.0, 6.0, 8.0],
                            "device_ms": [2.0, 4.0, 6.0, 8.0], "timing_source": "device_profiler"})
    t = np.arange(0, 3 * NS, NS // 1000)
    power = pd.DataFrame({"t_ns": t, "rail": "VDD_IN", "volts": np.nan, "amps": np.nan, "watts": 5.0})
    figures = summarize(images, latency, {}, {"cat": None}, {"cat": 0}, gmac=2.0, power=power,
                        rails=["VDD_IN"])["categories"]["cat"]
    assert figures["timing_source"] == "device_profiler" and figures["timed_inferences"] == 4
    assert figures["p50_ms"] == 5.0 and figures["mean_ms"] == 5.0 and figures["fps"] == 200.0
    assert figures["window_s"] is None and figures["host_p50_ms"] is None
    assert figures["energy_mj_per_inference"] is None and figures["gmac_per_j"] is None
    assert "profiler" in figures["energy_note"] and "host clock" in figures["energy_note"]


def test_mixed_timing_sources_are_refused() -> None:
    images, latency = tables(4)
    latency.loc[latency.index[-1], "timing_source"] = "device_clock"
    with pytest.raises(ValueError, match="mix timing sources"):
        summarize(images, latency, {}, {"cat": None}, {"cat": 0})
