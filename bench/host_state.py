"""What the machine running the timed pass is doing: CPU clocks and governors, devfreq clocks, temperatures.

Latency depends on clocks and heat as much as on the model: a governor that scales down, a board
that throttles when hot. The measure step records a snapshot before and after each timed window
(``measure``). Everything comes from world-readable sysfs nodes (``cpufreq``, ``devfreq``,
``thermal``); on a Jetson the power mode and EMC clock come from ``jetson_env``. A node that is
missing or unreadable is left out, never guessed. ``root`` is injectable so tests use generated trees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.devices.tensorrt.jetson_env import Run, is_jetson, jetson_state, run_command
from bench.sysfs import read_int, read_text

CPUFREQ_GLOB = "sys/devices/system/cpu/cpu[0-9]*/cpufreq"
DEVFREQ_GLOB = "sys/class/devfreq/*"
THERMAL_GLOB = "sys/class/thermal/thermal_zone[0-9]*"


def _number(path: Path) -> int:
    """The index in a sysfs name (``cpu12``, ``thermal_zone3``), so cpu10 sorts after cpu9."""
    found = re.search(r"(\d+)$", path.name)
    return int(found[1]) if found else -1


def cpu_frequencies(root: Path) -> dict[str, Any]:
    """Per CPU: its current frequency (kHz) and governor, each where readable."""
    freq, governor = {}, {}
    for folder in sorted(root.glob(CPUFREQ_GLOB), key=lambda p: _number(p.parent)):
        cpu = folder.parent.name
        khz = read_int(folder / "scaling_cur_freq")
        if khz is None:
            khz = read_int(folder / "cpuinfo_cur_freq")
        name = read_text(folder / "scaling_governor")
        if khz is not None:
            freq[cpu] = khz
        if name:
            governor[cpu] = name
    out: dict[str, Any] = {}
    if freq:
        out["cpu_freq_khz"] = freq
    if governor:
        out["cpu_governor"] = governor
    return out


def devfreq_clocks(root: Path) -> dict[str, int]:
    """Current rate (Hz) of each devfreq device: a Jetson's GPU (17000000.gpu), a Qualcomm GPU (kgsl-3d0)."""
    clocks = {}
    for folder in sorted(root.glob(DEVFREQ_GLOB)):
        hz = read_int(folder / "cur_freq")
        if hz is not None:
            clocks[folder.name] = hz
    return clocks


def thermal_zones(root: Path) -> dict[str, float]:
    """Temperature (degrees C) of each thermal zone by its type (``cpu-thermal``, ``x86_pkg_temp``); a type
    that repeats keeps its zone name (``acpitz/thermal_zone3``). Zones reading an error are left out."""
    temps: dict[str, float] = {}
    for folder in sorted(root.glob(THERMAL_GLOB), key=_number):
        millidegrees = read_int(folder / "temp")
        if millidegrees is None:
            continue
        kind = read_text(folder / "type") or folder.name
        key = kind if kind not in temps else f"{kind}/{folder.name}"
        temps[key] = millidegrees / 1000
    return temps


def machine_state(root: str | Path = "/", run: Run = run_command) -> dict[str, Any]:
    """A snapshot of this machine's clocks and temperatures; only what could be read."""
    base = Path(root)
    out: dict[str, Any] = cpu_frequencies(base)
    readers: tuple[tuple[str, Callable[[Path], dict[str, Any]]], ...] = (
        ("devfreq_hz", devfreq_clocks), ("thermal_c", thermal_zones))
    for key, reader in readers:
        values = reader(base)
        if values:
            out[key] = values
    if is_jetson(base):
        jetson = jetson_state(base, run)
        if jetson:
            out["jetson"] = jetson
    return out
