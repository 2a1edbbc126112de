"""Energy over the timed window from background power samples.

The meter samples on its own schedule, so the timed window rarely starts or ends on a sample.
Power is integrated by the trapezoid rule over exactly the window, interpolating linearly at
its edges from the samples that straddle them. Rails read from an energy counter (RAPL, NVML's
total energy) are different: each row is the average power over the interval ending at its
timestamp, so it is integrated as a step over that interval, its share of the window counted
exactly, and the window's energy is the counter's own. Nothing is extrapolated past the first or last
sample, and stretches where the meter dropped out count as uncovered: a figure built on too
little data is flagged (``complete`` False with a ``note``) and, when there is no data at all,
it is None rather than zero.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.metrics.latency import DEVICE_PROFILER, timed_rows, timing_source

NO_SAMPLES_NOTE = "no power samples in the timed window"


@dataclass(frozen=True)
class EnergyResult:
    """Energy figures of one timed window, with how much of it the samples actually cover.

    ``energy_j`` and ``avg_power_w`` are net of ``idle_power_w`` when that is given. Over an
    incomplete window they understate the truth (uncovered edges add nothing), which is why
    ``complete`` and ``note`` travel with them.
    """

    energy_j: float | None
    avg_power_w: float | None
    window_s: float
    inferences: int
    energy_mj_per_inference: float | None
    idle_power_w: float | None
    rails: tuple[str, ...]
    coverage: float
    complete: bool
    note: str | None
    gmac_per_j: float | None


def _trace(t_ns: np.ndarray | Sequence[int], watts: np.ndarray | Sequence[float], start_ns: int,
           ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted sample times in seconds from ``start_ns`` and their power, NaNs dropped, repeats averaged.

    Times are shifted in int64 before going to float so epoch-sized clocks keep nanosecond precision.
    """
    t = np.asarray(t_ns, dtype=np.int64)
    w = np.asarray(watts, dtype=np.float64)
    if t.shape != w.shape:
        raise ValueError(f"t_ns and watts differ in shape: {t.shape} vs {w.shape}")
    keep = np.isfinite(w)
    rel = (t[keep] - np.int64(start_ns)).astype(np.float64) / 1e9
    times, inverse = np.unique(rel, return_inverse=True)
    power = np.bincount(inverse, weights=w[keep], minlength=times.size) / np.bincount(inverse, minlength=times.size)
    return times, power


def _check_window(start_ns: int, end_ns: int) -> float:
    if end_ns <= start_ns:
        raise ValueError(f"empty window: end_ns {end_ns} <= start_ns {start_ns}")
    return (int(end_ns) - int(start_ns)) / 1e9


def _integrate_trace(t: np.ndarray, w: np.ndarray, window_s: float, max_gap_s: float) -> tuple[float, float]:
    """Trapezoid energy over [0, window_s] ∩ [t[0], t[-1]] and the seconds of it not inside a gap.

    Samples outside the window only serve to interpolate the power at its edges; where the window runs
    past the first or last sample that part is left out, not extrapolated."""
    if t.size < 2:
        return 0.0, 0.0
    lo, hi = max(0.0, float(t[0])), min(window_s, float(t[-1]))
    if hi <= lo:
        return 0.0, 0.0
    x = np.concatenate(([lo], t[(t > lo) & (t < hi)], [hi]))
    y = np.interp(x, t, w)
    dx = np.diff(x)
    joules = float(np.sum(dx * (y[:-1] + y[1:]) / 2.0))
    segment = np.searchsorted(t, x[:-1], side="right") - 1
    sampled = (t[segment + 1] - t[segment]) <= max_gap_s
    return joules, float(np.sum(dx[sampled]))


def _integrate_steps(t: np.ndarray, w: np.ndarray, window_s: float, max_gap_s: float) -> tuple[float, float]:
    """Energy over [0, window_s] when ``w[k]`` is the average power over (t[k-1], t[k]], and the seconds of
    it inside intervals no longer than ``max_gap_s``. The first row's interval began at an unknown time, so
    it only marks where the next one starts."""
    if t.size < 2:
        return 0.0, 0.0
    overlap = np.clip(np.minimum(t[1:], window_s) - np.maximum(t[:-1], 0.0), 0.0, None)
    sampled = np.diff(t) <= max_gap_s
    return float(np.sum(overlap * w[1:])), float(np.sum(overlap[sampled]))


def _longest_gap(t: np.ndarray, window_s: float) -> float:
    """Longest stretch of the window without a sample on each side close by: edges and interior intervals.

    An interior interval counts at its full length when it overlaps the window at all, since the
    interpolated power inside it rests on samples that far apart.
    """
    if t.size == 0:
        return window_s
    lead = min(max(float(t[0]), 0.0), window_s)
    trail = min(max(window_s - float(t[-1]), 0.0), window_s)
    steps = np.diff(t)
    overlapping = (t[:-1] < window_s) & (t[1:] > 0.0)
    interior = float(steps[overlapping].max()) if overlapping.any() else 0.0
    return max(lead, trail, interior)


def _rail_watts(rows: pd.DataFrame) -> np.ndarray:
    """Watts as recorded, falling back to volts x amps where only those were read."""
    watts = rows["watts"].to_numpy(dtype=np.float64, copy=True)
    if {"volts", "amps"} <= set(rows.columns):
        product = rows["volts"].to_numpy(dtype=np.float64) * rows["amps"].to_numpy(dtype=np.float64)
        watts = np.where(np.isnan(watts), product, watts)
    return watts


def energy_over_window(
    power: pd.DataFrame,
    start_ns: int,
    end_ns: int,
    rails: Sequence[str],
    inferences: int,
    idle_power_w: float | None = None,
    gmac: float | None = None,
    max_gap_s: float = 0.5,
    min_coverage: float = 0.99,
    interval_rails: Collection[str] = (),
) -> EnergyResult:
    """Energy of ``inferences`` timed inferences from the listed rails, summed, over [start_ns, end_ns].

    Profiles name the rails that add up to the figure wanted (on a Jetson just VDD_IN, the
    board total). ``gmac`` is per inference; ``idle_power_w`` x window is subtracted to give the
    energy the inferences added. Coverage is the worst rail's share of the window with samples
    no more than ``max_gap_s`` apart; gaps are bridged linearly in the energy but not counted as
    covered. Rails in ``interval_rails`` hold interval averages from an energy counter (module docstring).
    """
    if not rails:
        raise ValueError("no power rails given")
    window_s = _check_window(start_ns, end_ns)
    rails = list(dict.fromkeys(rails))  # a rail named twice must not be counted twice
    notes: list[str] = []
    present = set(power["rail"].unique())
    missing = [r for r in rails if r not in present]
    if missing:
        notes.append(f"rail{'s' if len(missing) > 1 else ''} {', '.join(missing)} not in the power samples")

    used: list[str] = []
    total_j = 0.0
    coverage = 1.0
    longest = 0.0
    for rail in rails:
        if rail in missing:
            continue
        rows = power[power["rail"] == rail]
        t, w = _trace(rows["t_ns"].to_numpy(), _rail_watts(rows), start_ns)
        integrate = _integrate_steps if rail in interval_rails else _integrate_trace
        joules, covered = integrate(t, w, window_s, max_gap_s)
        if covered <= 0.0:
            coverage = 0.0
            continue
        used.append(rail)
        total_j += joules
        coverage = min(coverage, covered / window_s)
        longest = max(longest, _longest_gap(t, window_s))

    if not used:
        return EnergyResult(energy_j=None, avg_power_w=None, window_s=window_s, inferences=inferences,
                            energy_mj_per_inference=None, idle_power_w=idle_power_w, rails=(), coverage=0.0,
                            complete=False, note="; ".join([NO_SAMPLES_NOTE, *notes]), gmac_per_j=None)

    coverage = min(max(coverage, 0.0), 1.0)
    if len(used) + len(missing) < len(rails):
        silent = [r for r in rails if r not in used and r not in missing]
        notes.append(f"no power samples of {', '.join(silent)} in the timed window")
    if coverage < min_coverage:
        notes.append(f"power samples cover {coverage:.1%} of the timed window (need {min_coverage:.0%})")
    if longest > max_gap_s:
        notes.append(f"power meter gap of {longest:.3g} s (allowed {max_gap_s:.3g} s)")

    energy_j = total_j - (idle_power_w * window_s if idle_power_w is not None else 0.0)
    if idle_power_w is not None and energy_j <= 0.0:
        notes.append(f"energy above the idle {idle_power_w:.3g} W is not positive")
    gmac_per_j = gmac * inferences / energy_j if gmac is not None and energy_j > 0.0 else None
    return EnergyResult(
        energy_j=energy_j,
        avg_power_w=energy_j / window_s,
        window_s=window_s,
        inferences=inferences,
        energy_mj_per_inference=energy_j * 1e3 / inferences if inferences > 0 else None,
        idle_power_w=idle_power_w,
        rails=tuple(used),
        coverage=coverage,
        complete=not missing and len(used) == len(rails) and coverage >= min_coverage and longest <= max_gap_s,
        note="; ".join(notes) if notes else None,
        gmac_per_j=gmac_per_j,
    )


def timed_window(latency: pd.DataFrame, category: str, attempt: int | None) -> tuple[int, int, int] | None:
    """(first t_start_ns, last t_end_ns, count) of the category's timed rows on the host clock: the span the
    energy is over. None without timed rows, or for a profiler's rows, which have no host timestamps."""
    rows = timed_rows(latency, category, attempt)
    if rows.empty or timing_source(rows) == DEVICE_PROFILER:
        return None
    return int(rows["t_start_ns"].min()), int(rows["t_end_ns"].max()), len(rows)
