"""Power traces exported by external meters (Joulescope, Otii, Nordic PPK2, USB meters) as CSV.

These meters log on their own clock and are read after the run, not sampled live. The format
says which columns hold time and power, or voltage and current, or current alone at a fixed
supply voltage (a PPK2 in source mode logs ``Timestamp(ms),Current(uA)``; Joulescope's
statistics CSV is ``#time,current,voltage,power,...`` in s, A, V, W), and their units. Trace time
is put on the run's clock by ``t_ns = trace_time_ns + offset_ns``: for a trace stamped in Unix
time, ``offset_ns`` is minus the ``epoch_offset_ns`` of ``bench.clock.clock_info()`` recorded in
the run's manifest; for a trace that starts at 0, it is the run-clock time of the trace's start.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BadInput
from bench.power.base import Row

TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
AMPS_UNITS = {"A": 1.0, "mA": 1e-3, "uA": 1e-6}
VOLTS_UNITS = {"V": 1.0, "mV": 1e-3}
WATTS_UNITS = {"W": 1.0, "mW": 1e-3, "uW": 1e-6}


def _clean(name: object) -> str:
    return str(name).strip().lstrip("#").strip()


def _unit(kind: str, unit: str, table: dict[str, Any]) -> None:
    if unit not in table:
        raise BadInput(f"csv {kind} '{unit}' is not one of {', '.join(table)}")


@dataclass(frozen=True)
class TraceFormat:
    """Which columns of an external meter's CSV hold what, in which units, and the clock offset.

    Power comes from ``watts``, else ``volts`` x ``amps``, else ``amps`` x ``volts_fixed``.
    """

    time: str = "time"
    time_unit: str = "s"
    watts: str | None = None
    volts: str | None = None
    amps: str | None = None
    volts_fixed: float | None = None
    watts_unit: str = "W"
    volts_unit: str = "V"
    amps_unit: str = "A"
    offset_ns: int = 0
    rail: str = "external"
    delimiter: str = ","
    path: str | None = None

    def __post_init__(self) -> None:
        _unit("time_unit", self.time_unit, TIME_UNITS)
        _unit("watts_unit", self.watts_unit, WATTS_UNITS)
        _unit("volts_unit", self.volts_unit, VOLTS_UNITS)
        _unit("amps_unit", self.amps_unit, AMPS_UNITS)
        if self.watts is None and self.amps is None:
            raise BadInput("csv trace needs a 'watts' column, or 'amps' with 'volts' or 'volts_fixed'")
        if self.watts is None and self.volts is None and self.volts_fixed is None:
            raise BadInput("csv trace with only 'amps' needs 'volts' (a column) or 'volts_fixed' (the supply voltage)")
        if self.volts is not None and self.volts_fixed is not None:
            raise BadInput("csv trace: give 'volts' (a column) or 'volts_fixed', not both")

    @classmethod
    def from_profile(cls, options: dict[str, Any], default_rail: str = "external") -> TraceFormat:
        """The profile's ``power.csv`` section; an unknown key is refused so typos do not pass silently."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise BadInput(f"unknown power.csv key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                           f"valid: {', '.join(sorted(known))}")
        values = {"rail": default_rail, **options}
        if values.get("volts_fixed") is not None:
            values["volts_fixed"] = float(values["volts_fixed"])
        values["offset_ns"] = int(values.get("offset_ns", 0))
        return cls(**values)


def _column(frame: pd.DataFrame, name: str, path: Path) -> pd.Series:
    key = _clean(name)
    if key not in frame.columns:
        raise BadInput(f"column '{key}' not in {path.name}; columns: {', '.join(map(str, frame.columns))}")
    return pd.to_numeric(frame[key], errors="coerce")


def _time_ns(values: pd.Series, unit: str) -> np.ndarray:
    """Integer times stay exact; float times are rounded to the nearest nanosecond."""
    scale = TIME_UNITS[unit]
    if pd.api.types.is_integer_dtype(values):
        return values.to_numpy(dtype=np.int64) * np.int64(scale)
    return np.rint(values.to_numpy(dtype=np.float64) * scale).astype(np.int64)


class CsvTrace:
    """An external meter's CSV on the run's clock, sorted by time, as power-table rows."""

    def __init__(self, path: str | Path, fmt: TraceFormat) -> None:
        self.path = Path(path)
        self.format = fmt
        if not self.path.is_file():
            raise BadInput(f"power trace {self.path} does not exist")
        raw = pd.read_csv(self.path, sep=fmt.delimiter, skipinitialspace=True)
        raw.columns = [_clean(c) for c in raw.columns]
        time = _column(raw, fmt.time, self.path)
        keep = time.notna().to_numpy()
        volts = amps = None
        if fmt.volts is not None:
            volts = _column(raw, fmt.volts, self.path) * VOLTS_UNITS[fmt.volts_unit]
        elif fmt.volts_fixed is not None:
            volts = pd.Series(fmt.volts_fixed, index=raw.index, dtype=np.float64)
        if fmt.amps is not None:
            amps = _column(raw, fmt.amps, self.path) * AMPS_UNITS[fmt.amps_unit]
        if fmt.watts is not None:
            watts = _column(raw, fmt.watts, self.path) * WATTS_UNITS[fmt.watts_unit]
        else:
            assert volts is not None and amps is not None
            watts = volts * amps
        empty = pd.Series(np.nan, index=raw.index, dtype=np.float64)
        frame = pd.DataFrame({
            "t_ns": _time_ns(time[keep], fmt.time_unit) + np.int64(fmt.offset_ns),
            "rail": fmt.rail,
            "volts": (empty if volts is None else volts)[keep].to_numpy(dtype=np.float64),
            "amps": (empty if amps is None else amps)[keep].to_numpy(dtype=np.float64),
            "watts": watts[keep].to_numpy(dtype=np.float64),
        })
        self.frame = frame.sort_values("t_ns", kind="stable").reset_index(drop=True)

    def window(self, start_ns: int | None = None, end_ns: int | None = None) -> pd.DataFrame:
        """Samples in [start_ns, end_ns] plus the nearest one either side, so the edges can be interpolated."""
        t = self.frame["t_ns"].to_numpy()
        lo = 0 if start_ns is None else max(int(np.searchsorted(t, start_ns, side="left")) - 1, 0)
        hi = len(t) if end_ns is None else min(int(np.searchsorted(t, end_ns, side="right")) + 1, len(t))
        return self.frame.iloc[lo:hi].reset_index(drop=True)

    def rows(self, start_ns: int | None = None, end_ns: int | None = None) -> list[Row]:
        """``window`` as power-table rows; quantities the meter did not log are None."""
        out = []
        for t_ns, rail, volts, amps, watts in self.window(start_ns, end_ns).itertuples(index=False, name=None):
            out.append({"t_ns": int(t_ns), "rail": rail, "volts": None if np.isnan(volts) else float(volts),
                        "amps": None if np.isnan(amps) else float(amps),
                        "watts": None if np.isnan(watts) else float(watts)})
        return out
