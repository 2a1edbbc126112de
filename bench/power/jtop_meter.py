"""Jetson rails through jtop (jetson-stats), for boards where its service already reads the INA3221.

``jtop.power`` is ``{"rail": {name: {...}}, "tot": {...}}`` with ``volt`` (mV), ``curr`` (mA)
and ``power`` (mW) per rail and an ``online`` flag. jetson-stats moves the board's input rail
(VDD_IN, or POM_5V_IN on the Nano) out of ``rail`` into ``tot`` and names it there; otherwise
``tot`` is its sum of all rails and has only ``power``. Both are found here by name, and
``tot`` itself is the rail "tot". The service publishes at its own interval, so sampling
faster than that repeats values; it gathers every statistic (CPU, GPU, processes) each tick,
so its interval is kept at 0.1 s or more to spare the board being measured. jtop is imported
only when this meter is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

from bench import clock
from bench.power.base import MeterUnavailable, PowerMeter, Row, check_rails, one_line, power_row

TOTAL = "tot"
MIN_INTERVAL_S = 0.1


def _rail_names(power: dict[str, Any]) -> list[str]:
    names = list(power.get("rail", {}))
    total = power.get(TOTAL, {})
    if total.get("name"):
        names.append(str(total["name"]))
    return [*names, TOTAL] if total else names


def _entry(power: dict[str, Any], rail: str) -> dict[str, Any]:
    total = power.get(TOTAL) or {}
    if rail == TOTAL or (total.get("name") == rail and rail not in power.get("rail", {})):
        entry = total
    else:
        entry = power.get("rail", {}).get(rail)
    if not entry or "power" not in entry:
        raise MeterUnavailable(f"jtop reading has no rail {rail}")
    if entry.get("online") is False:
        raise MeterUnavailable(f"jtop rail {rail} is offline")
    return entry


def _milli(entry: dict[str, Any], key: str) -> float | None:
    return float(entry[key]) / 1000.0 if entry.get(key) is not None else None


class JtopMeter(PowerMeter):
    """Voltage, current and power per configured rail as the jtop service reports them."""

    def __init__(self, rails: list[str] | None = None, interval_s: float = 0.5) -> None:
        try:
            module = importlib.import_module("jtop")
        except ImportError:
            raise MeterUnavailable("jtop unavailable: the jetson-stats package is missing "
                                   "(pip install jetson-stats)") from None
        self._jetson = module.jtop(interval=max(interval_s, MIN_INTERVAL_S))
        try:
            self._jetson.start()
            power = self._jetson.power
        except (module.JtopException, OSError) as exc:
            raise MeterUnavailable(f"jtop service unreachable: {one_line(exc)}") from None
        try:
            found = _rail_names(power)
            if not found:
                raise MeterUnavailable("jtop reports no power rails on this board")
            self.rails = check_rails("jtop", rails, found)
        except BaseException:
            self.close()
            raise

    def read(self) -> list[Row]:
        """The latest reading the service published; raises once its connection is lost."""
        if not self._jetson.ok(spin=True):
            raise MeterUnavailable("jtop client stopped: no data from the jtop service")
        power = self._jetson.power
        now = clock.now_ns()
        rows = []
        for rail in self.rails:
            entry = _entry(power, rail)
            rows.append(power_row(now, rail, _milli(entry, "volt"), _milli(entry, "curr"), _milli(entry, "power")))
        return rows

    def close(self) -> None:
        """Stop the jtop client thread (the service keeps running for others)."""
        self._jetson.close()
