"""Power meters, sampled in the background over exactly the timed window.

A device profile's ``power`` section picks the meter::

    power:
      meter: ina3221          # none (default) | ina3221 | jtop | rapl | nvml | csv
      rails: [VDD_IN]         # rails to sample; default: every rail found
      energy_rails: [VDD_IN]  # rails whose sum is the energy figure (default: rails); the others are shown
      rate_hz: 100            # background sampling rate (default 20)
      max_failures: 5         # failed reads in a row before the sampler gives up (default 5)
      root: /                 # filesystem root of the sysfs meters (ina3221, rapl); tests use a fake tree
      idle_w: 4.2             # idle power the energy figures subtract (read by the metrics)
      note: AI Hub reports no power   # with meter: none, why the energy figures are missing (shown instead)
      csv:                    # meter: csv only - an external meter's trace, imported after the run
        path: traces/run.csv  # or given when importing
        time: Timestamp(ms)   # column names; spaces and a leading '#' are ignored
        time_unit: ms         # s | ms | us | ns
        amps: Current(uA)     # with amps_unit A | mA | uA; or watts (W | mW | uW), or volts (V | mV)
        amps_unit: uA
        volts_fixed: 5.0      # supply voltage when the meter logs current only
        offset_ns: 0          # run-clock time = trace time + offset_ns
        rail: board           # the rail name its rows get (default: the first of rails)

Rails by meter: ina3221 and jtop use the board's labels (Jetson Orin Nano: VDD_IN,
VDD_CPU_GPU_CV, VDD_SOC; jtop also "tot"; "NC" channels are not rails); rapl the powercap zone
names (package-0, dram, ...); nvml ``gpu<index>``, from its energy counter where the GPU has one
(``bench.power.nvml``). With ``meter: none`` the run records no power samples and its energy
figures say why they are missing, rather than showing zeros. A meter that cannot be opened,
or drops out, is recorded as such by the ``Sampler`` (see ``bench.power.base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import BadInput, one_of
from bench.power.base import DEFAULT_MAX_FAILURES, MeterUnavailable, PowerMeter, Sampler

if TYPE_CHECKING:
    from bench.power.csv_trace import CsvTrace

NO_METER_REASON = "no power meter configured in the device profile"
METERS = ("none", "ina3221", "jtop", "rapl", "nvml", "csv")
LIVE_METERS = ("ina3221", "jtop", "rapl", "nvml")
DEFAULT_RATE_HZ = 20.0

__all__ = ["DEFAULT_RATE_HZ", "LIVE_METERS", "METERS", "NO_METER_REASON", "MeterUnavailable", "PowerMeter",
           "Sampler", "check_meter", "max_failures", "meter_name", "open_meter", "open_trace", "rate_hz"]


def meter_name(power: dict[str, Any]) -> str:
    """The profile's meter (default ``none``); an unknown name is refused before any work."""
    name = str(power.get("meter", "none"))
    if name not in METERS:
        raise one_of("power meter", name, METERS)
    return name


def rate_hz(power: dict[str, Any]) -> float:
    """The profile's sampling rate, or the default."""
    rate = power.get("rate_hz", DEFAULT_RATE_HZ)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
        raise BadInput(f"power rate_hz must be a positive number, got {rate!r}")
    return float(rate)


def _names(power: dict[str, Any], key: str) -> list[str] | None:
    names = power.get(key)
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(r, str) for r in names):
        raise BadInput(f"power {key} must be a list of names, got {names!r}")
    return names


def _rails(power: dict[str, Any]) -> list[str] | None:
    """The sampled rails; ``energy_rails`` must be among them, or the energy figure could never be complete."""
    rails = _names(power, "rails")
    energy = _names(power, "energy_rails")
    if energy is not None and rails is not None and not set(energy) <= set(rails):
        extra = sorted(set(energy) - set(rails))
        raise BadInput(f"power energy_rails {', '.join(extra)} not in rails {rails}: add them to rails")
    return rails


def open_meter(power: dict[str, Any]) -> PowerMeter | None:
    """The profile's live meter, opened; None for ``none`` and ``csv`` (nothing to sample live).

    Raises ``MeterUnavailable`` when the meter cannot be read on this machine and ``BadInput``
    when the profile names rails the meter does not have.
    """
    name = meter_name(power)
    rails = _rails(power)
    root = power.get("root", "/")
    if name == "ina3221":
        from bench.power.hwmon import Ina3221Meter

        return Ina3221Meter(rails, root=root)
    if name == "rapl":
        from bench.power.rapl import RaplMeter

        return RaplMeter(rails, root=root)
    if name == "nvml":
        from bench.power.nvml import NvmlMeter

        return NvmlMeter(rails)
    if name == "jtop":
        from bench.power.jtop_meter import JtopMeter

        return JtopMeter(rails, interval_s=1.0 / rate_hz(power))
    return None


def max_failures(power: dict[str, Any]) -> int:
    """Failed reads in a row before the sampler gives up: the profile's ``max_failures``, or the default."""
    value = power.get("max_failures", DEFAULT_MAX_FAILURES)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadInput(f"power max_failures must be a whole number of at least 1, got {value!r}")
    return value


def open_trace(power: dict[str, Any], path: str | Path | None = None) -> CsvTrace:
    """The external meter's CSV trace described by the profile's ``power.csv`` section."""
    from bench.power.csv_trace import CsvTrace, TraceFormat

    if meter_name(power) != "csv":
        raise BadInput(f"power meter is '{meter_name(power)}', not csv: there is no trace to import")
    rails = _rails(power)
    fmt = TraceFormat.from_profile(dict(power.get("csv") or {}), default_rail=rails[0] if rails else "external")
    where = path if path is not None else fmt.path
    if where is None:
        raise BadInput("no power trace given: set power.csv.path in the profile or pass the file")
    return CsvTrace(where, fmt)


def check_meter(power: dict[str, Any]) -> tuple[bool, str]:
    """Whether the profile's meter can be read here, and a one-line reason (for ``bench doctor``)."""
    name = meter_name(power)
    if name == "none":
        return True, NO_METER_REASON
    if name == "csv":
        return True, "external meter: its CSV trace is imported after the run"
    try:
        meter = open_meter(power)
    except MeterUnavailable as exc:
        return False, str(exc)
    assert meter is not None
    with meter:
        found = f"{name}: {', '.join(meter.rails)}"
        return True, f"{found} ({meter.source})" if meter.source else found
