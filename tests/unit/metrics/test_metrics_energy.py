"""Tests for bench.metrics.energy on synthetic power traces whose integral is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.metrics.energy import NO_SAMPLES_NOTE, EnergyResult, energy_over_window, timed_window

T0 = 1_700_000_000_123_456_789  # epoch-sized clock: the integration must keep nanosecond precision
REL_TOL = 0.005  # the brief's bound on integration error


def _ns(seconds: float | np.ndarray) -> np.ndarray:
    return T0 + np.round(np.asarray(seconds, dtype=np.float64) * 1e9).astype(np.int64)


def _jittered_times(rng: np.random.Generator, start_s: float, end_s: float, mean_dt: float = 0.01) -> np.ndarray:
    """Sample times at ~1/mean_dt Hz with each step drawn uniformly between 0.5 and 1.5 mean_dt."""
    steps = rng.uniform(0.5 * mean_dt, 1.5 * mean_dt, size=int((end_s - start_s) / mean_dt * 1.2) + 10)
    times = start_s + np.cumsum(steps)
    return times[times <= end_s]


def _power(rails: dict[str, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    frames = [pd.DataFrame({"t_ns": _ns(t), "rail": name, "volts": np.nan, "amps": np.nan, "watts": w})
              for name, (t, w) in rails.items()]
    return pd.concat(frames, ignore_index=True)


def _one_rail(t: np.ndarray, w: np.ndarray, a: float, b: float) -> tuple[float, float]:
    """Joules over [a, b] (seconds) from one rail sampled at ``t``, and the seconds of the window the samples cover."""
    result = energy_over_window(_power({"VDD_IN": (t, w)}), int(_ns(a)), int(_ns(b)), ["VDD_IN"], inferences=1)
    return result.energy_j, result.coverage * result.window_s


def _sine(p0: float, amp: float, freq: float, phase: float):
    def power(t: np.ndarray) -> np.ndarray:
        return p0 + amp * np.sin(2 * math.pi * freq * t + phase)

    def energy(a: float, b: float) -> float:
        w = 2 * math.pi * freq
        return p0 * (b - a) - amp / w * (math.cos(w * b + phase) - math.cos(w * a + phase))

    return power, energy


def test_constant_power_window_between_samples() -> None:
    t = np.arange(-0.1, 2.1, 0.001)
    joules, covered = _one_rail(t, np.full(t.size, 4.2), 0.0123456, 1.9876543)
    window = 1.9876543 - 0.0123456
    assert covered == pytest.approx(window, abs=1e-9)
    assert joules == pytest.approx(4.2 * window, rel=1e-9)


def test_linear_ramp_is_exact_with_interpolated_edges() -> None:
    t = np.arange(0.0, 3.0, 0.1)  # 10 Hz: the window edges fall well inside sample intervals
    a, b = 0.537, 2.461
    joules, covered = _one_rail(t, 1.5 + 2.0 * t, a, b)
    expected = 1.5 * (b - a) + (b**2 - a**2)
    assert covered == pytest.approx(b - a, abs=1e-9)
    assert abs(joules - expected) / expected < 1e-9


@pytest.mark.parametrize("seed", range(5))
def test_irregular_sine_plus_offset_within_half_percent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    power, energy = _sine(p0=6.0, amp=2.5, freq=rng.uniform(1.0, 4.0), phase=rng.uniform(0, 2 * math.pi))
    t = _jittered_times(rng, -0.2, 6.2)
    a, b = rng.uniform(0.01, 0.5), rng.uniform(5.5, 5.99)
    assert not np.isin(_ns([a, b]), _ns(t)).any()
    result = energy_over_window(_power({"VDD_IN": (t, power(t))}), int(_ns(a)), int(_ns(b)), ["VDD_IN"], 100)
    assert result.complete and result.note is None and result.coverage == pytest.approx(1.0)
    assert abs(result.energy_j - energy(a, b)) / energy(a, b) < REL_TOL
    assert result.avg_power_w == pytest.approx(result.energy_j / (b - a))
    assert result.energy_mj_per_inference == pytest.approx(result.energy_j * 1e3 / 100)


def test_samples_outside_window_only_serve_edge_interpolation() -> None:
    t = np.array([-5.0, -0.05, 0.05, 0.15, 0.25, 0.35, 0.45, 5.0])
    w = np.array([1000.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 1000.0])
    joules, covered = _one_rail(t, w, 0.0, 0.4)
    assert joules == pytest.approx(1.2) and covered == pytest.approx(0.4)


def test_idle_subtraction_and_gmac() -> None:
    t = np.arange(-0.05, 2.06, 0.01)
    result = energy_over_window(_power({"VDD_IN": (t, np.full(t.size, 5.0))}), int(_ns(0.0)), int(_ns(2.0)),
                                ["VDD_IN"], inferences=40, idle_power_w=2.0, gmac=1.5)
    assert result.idle_power_w == 2.0
    assert result.energy_j == pytest.approx(6.0)
    assert result.avg_power_w == pytest.approx(3.0)
    assert result.energy_mj_per_inference == pytest.approx(150.0)
    assert result.gmac_per_j == pytest.approx(1.5 * 40 / 6.0)
    assert result.complete


def test_idle_above_measured_power_is_noted_without_gmac_per_j() -> None:
    t = np.arange(-0.05, 1.06, 0.01)
    result = energy_over_window(_power({"VDD_IN": (t, np.full(t.size, 1.0))}), int(_ns(0.0)), int(_ns(1.0)),
                                ["VDD_IN"], inferences=10, idle_power_w=2.0, gmac=1.0)
    assert result.energy_j == pytest.approx(-1.0)
    assert result.gmac_per_j is None and "idle" in result.note


def test_two_rails_are_summed() -> None:
    rng = np.random.default_rng(7)
    power, energy = _sine(p0=4.0, amp=1.0, freq=2.0, phase=0.3)
    t_cpu = _jittered_times(rng, -0.1, 3.1)
    t_gpu = _jittered_times(rng, -0.1, 3.1)
    other = np.arange(-0.1, 3.1, 0.01)
    frame = _power({"VDD_CPU": (t_cpu, power(t_cpu)), "VDD_GPU": (t_gpu, 2.0 + t_gpu),
                    "VDD_SOC": (other, np.full(other.size, 99.0))})
    a, b = 0.25, 2.75
    result = energy_over_window(frame, int(_ns(a)), int(_ns(b)), ["VDD_CPU", "VDD_GPU"], inferences=10)
    expected = energy(a, b) + 2.0 * (b - a) + (b**2 - a**2) / 2
    assert result.rails == ("VDD_CPU", "VDD_GPU")
    assert abs(result.energy_j - expected) / expected < REL_TOL
    assert result.complete


def test_meter_gap_is_flagged_and_not_counted_as_covered() -> None:
    t = np.arange(-0.05, 10.06, 0.01)
    t = t[(t < 3.0) | (t > 5.0)]
    result = energy_over_window(_power({"VDD_IN": (t, np.full(t.size, 5.0))}), int(_ns(0.0)), int(_ns(10.0)),
                                ["VDD_IN"], inferences=100)
    assert not result.complete
    assert result.coverage == pytest.approx(0.8, abs=0.002)
    assert "gap" in result.note and "cover" in result.note
    assert result.energy_j == pytest.approx(50.0)  # bridged linearly, never zero-filled


def test_window_past_last_sample_is_uncovered_not_extrapolated() -> None:
    t = np.arange(-0.05, 8.0, 0.01)
    w = np.full(t.size, 5.0)
    result = energy_over_window(_power({"VDD_IN": (t, w)}), int(_ns(0.0)), int(_ns(10.0)), ["VDD_IN"], inferences=10)
    assert not result.complete
    assert result.coverage == pytest.approx(t[-1] / 10.0)
    assert result.energy_j == pytest.approx(5.0 * t[-1])
    assert "cover" in result.note


def test_window_before_first_sample_is_uncovered() -> None:
    t = np.arange(1.0, 3.0, 0.01)
    joules, covered = _one_rail(t, np.full(t.size, 2.0), 0.0, 2.0)
    assert covered == pytest.approx(1.0) and joules == pytest.approx(2.0)


def test_missing_rail_is_named() -> None:
    t = np.arange(-0.05, 1.06, 0.01)
    result = energy_over_window(_power({"VDD_IN": (t, np.full(t.size, 5.0))}), int(_ns(0.0)), int(_ns(1.0)),
                                ["VDD_IN", "VDD_CPU_GPU_CV"], inferences=10)
    assert not result.complete
    assert "VDD_CPU_GPU_CV" in result.note
    assert result.rails == ("VDD_IN",)


@pytest.mark.parametrize("where", ["empty", "before", "after"])
def test_no_samples_gives_none_figures_and_a_note(where: str) -> None:
    if where == "empty":
        frame = pd.DataFrame({"t_ns": pd.Series([], dtype="int64"), "rail": pd.Series([], dtype=str),
                              "volts": pd.Series([], dtype=float), "amps": pd.Series([], dtype=float),
                              "watts": pd.Series([], dtype=float)})
    else:
        t = np.arange(-3.0, -1.0, 0.01) if where == "before" else np.arange(3.0, 5.0, 0.01)
        frame = _power({"VDD_IN": (t, np.full(t.size, 5.0))})
    result = energy_over_window(frame, int(_ns(0.0)), int(_ns(1.0)), ["VDD_IN"], inferences=10, gmac=2.0)
    assert isinstance(result, EnergyResult)
    assert result.energy_j is None and result.avg_power_w is None
    assert result.energy_mj_per_inference is None and result.gmac_per_j is None
    assert not result.complete and result.coverage == 0.0
    assert NO_SAMPLES_NOTE in result.note
    assert result.window_s == pytest.approx(1.0)


def test_samples_only_across_a_long_dropout_count_as_none() -> None:
    frame = _power({"VDD_IN": (np.array([-2.0, 3.0]), np.array([5.0, 5.0]))})
    result = energy_over_window(frame, int(_ns(0.0)), int(_ns(1.0)), ["VDD_IN"], inferences=1)
    assert result.energy_j is None and NO_SAMPLES_NOTE in result.note


def test_watts_from_volts_and_amps_and_nan_samples_dropped() -> None:
    t = np.arange(-0.05, 1.06, 0.01)
    frame = pd.DataFrame({"t_ns": _ns(t), "rail": "VDD_IN", "volts": 5.0, "amps": 0.8, "watts": np.nan})
    frame.loc[::7, ["volts", "amps"]] = np.nan
    result = energy_over_window(frame, int(_ns(0.0)), int(_ns(1.0)), ["VDD_IN"], inferences=1)
    assert result.energy_j == pytest.approx(4.0) and result.complete


def test_bad_window_is_refused() -> None:
    with pytest.raises(ValueError):
        _one_rail(np.array([0.0, 1.0]), np.array([1.0, 1.0]), 1.0, 1.0)


def test_timed_window_picks_timed_rows_of_the_attempt() -> None:
    rows = [
        ("bottle", 0, "warmup", 100, 200),
        ("bottle", 0, "timed", 300, 400),
        ("bottle", 0, "timed", 450, 700),
        ("bottle", 1, "warmup", 1000, 1100),
        ("bottle", 1, "timed", 1200, 1300),
        ("bottle", 1, "timed", 1350, 1500),
        ("bottle", 1, "timed", 1550, 1600),
        ("cable", 1, "timed", 50, 5000),
    ]
    latency = pd.DataFrame(rows, columns=["category", "attempt", "phase", "t_start_ns", "t_end_ns"])
    latency["latency_ms"] = (latency["t_end_ns"] - latency["t_start_ns"]) / 1e6
    latency["device_ms"] = np.nan
    latency["timing_source"] = "host_clock"
    assert timed_window(latency, "bottle", 1) == (1200, 1600, 3)
    assert timed_window(latency, "bottle", 0) == (300, 700, 2)
    assert timed_window(latency, "bottle", None) == (300, 1600, 5)
    assert timed_window(latency, "bottle", 2) is None
    assert timed_window(latency, "carpet", None) is None


def test_a_profilers_rows_have_no_window() -> None:
    """The device's profiler gives latencies, not a span on the host clock the power samples could cover."""
    latency = pd.DataFrame({"category": "cable", "attempt": 0, "phase": "timed", "t_start_ns": [None, None],
                            "t_end_ns": [None, None], "latency_ms": [2.0, 3.0], "device_ms": [2.0, 3.0],
                            "timing_source": "device_profiler"})
    assert timed_window(latency, "cable", 0) is None


def test_energy_counter_rails_are_steps_over_their_intervals() -> None:
    """Rows that are interval averages (RAPL, NVML's energy counter): row k holds (t[k-1], t[k]]. A window
    cutting intervals counts each by its overlap; the first row only marks where the next interval starts."""
    t = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    w = np.array([999.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    power = _power({"pkg": (t, w)})
    result = energy_over_window(power, int(_ns(0.1)), int(_ns(0.9)), ["pkg"], inferences=4, interval_rails={"pkg"})
    assert result.energy_j == pytest.approx(0.1 * 10 + 0.2 * 20 + 0.2 * 30 + 0.2 * 40 + 0.1 * 50)
    assert result.coverage == pytest.approx(1.0) and result.complete
    early = energy_over_window(power, int(_ns(-0.2)), int(_ns(0.2)), ["pkg"], inferences=1, interval_rails={"pkg"})
    assert early.energy_j == pytest.approx(0.2 * 10) and early.coverage == pytest.approx(0.5) and not early.complete
