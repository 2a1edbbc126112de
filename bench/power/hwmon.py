"""TI INA3221 rail monitors through the Linux hwmon sysfs ABI (Jetson Orin Nano: VDD_IN and its parts).

The kernel driver exposes ``in<N>_label``, ``in<N>_input`` (bus voltage, mV) and
``curr<N>_input`` (current, mA) per channel. Which channel carries which rail differs between
boards and carrier revisions, so rails are found by their labels, never by channel number, and
the hwmon index (assigned at boot) is found by glob. ``in7`` is the driver's sum of shunt
voltages and has no current file, so it is not a rail. JetPack 4's iio driver (``rail_name_<N>``)
is not supported.

Like jetson-stats 7.2.2 (``jtop/core/power.py``, ``list_all_i2c_ports``), a channel whose label
contains "NC" is not connected and not a rail: Orin boards label unused channels so, often several
of them. jetson-stats keys its rails by label, so a label on two channels keeps one of them, the
last one listed, which depends on directory order; here such a label is left out of the default
rails instead (and refused when a profile names it), since which channel is meant cannot be told.
``source`` names what the default left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench import clock
from bench.errors import BadInput
from bench.power.base import MeterUnavailable, PowerMeter, Row, check_rails, power_row, read_sysfs_int

# Any hwmon device named ina3221, and the Jetson path through the I2C driver (the same devices
# reached another way; duplicates are dropped by their resolved path).
HWMON_GLOBS = ("sys/class/hwmon/hwmon*", "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*")
CHIP_NAME = "ina3221"
NOT_CONNECTED = "NC"


@dataclass(frozen=True)
class Channel:
    """One labelled INA3221 channel: where its voltage and current are read."""

    label: str
    volts_path: Path
    amps_path: Path


def _number(path: Path) -> int:
    digits = re.findall(r"\d+", path.name)
    return int(digits[-1]) if digits else -1


def not_connected(label: str) -> bool:
    """jetson-stats' test for an unused channel: the label contains "NC"."""
    return NOT_CONNECTED in label


def _plural(items: list[str], word: str) -> str:
    return f"{word}{'s' if len(items) > 1 else ''} {', '.join(items)}"


def find_channels(root: str | Path = "/") -> list[Channel]:
    """Every labelled INA3221 channel under ``root``, in discovery order."""
    base = Path(root)
    seen: set[Path] = set()
    channels: list[Channel] = []
    for pattern in HWMON_GLOBS:
        for folder in sorted(base.glob(pattern), key=lambda p: (str(p.parent), _number(p))):
            real = folder.resolve()
            name_file = folder / "name"
            if real in seen or (name_file.is_file() and name_file.read_text().strip() != CHIP_NAME):
                continue
            if not name_file.is_file() and "/drivers/ina3221/" not in folder.as_posix():
                continue
            seen.add(real)
            for label_file in sorted(folder.glob("in*_label"), key=_number):
                match = re.fullmatch(r"in(\d+)_label", label_file.name)
                if match is None:
                    continue
                volts, amps = folder / f"in{match[1]}_input", folder / f"curr{match[1]}_input"
                if volts.is_file() and amps.is_file():
                    channels.append(Channel(label_file.read_text().strip(), volts, amps))
    return channels


class Ina3221Meter(PowerMeter):
    """Voltage, current and their product for each configured INA3221 rail."""

    def __init__(self, rails: list[str] | None = None, root: str | Path = "/") -> None:
        channels = find_channels(root)
        if not channels:
            raise MeterUnavailable(f"no INA3221 hwmon device under {Path(root) / 'sys'} "
                                   "(not a Jetson, or the ina3221 driver is not loaded)")
        by_label: dict[str, list[Channel]] = {}
        for channel in channels:
            by_label.setdefault(channel.label, []).append(channel)
        unused = [label for label in by_label if not_connected(label)]
        connected = [label for label in by_label if not not_connected(label)]
        shared = [label for label in connected if len(by_label[label]) > 1]
        unique = [label for label in connected if label not in shared]
        if rails:
            named_unused = [str(r) for r in rails if not_connected(str(r))]
            if named_unused:
                raise BadInput(f"INA3221 {_plural(named_unused, 'label')}: a label containing 'NC' marks a "
                               f"channel that is not connected, not a rail; rails: {', '.join(unique) or '(none)'}")
            self.rails = check_rails("INA3221", rails, connected)
        elif not unique:
            raise MeterUnavailable(f"INA3221 has no connected channel with a label of its own "
                                   f"(found: {', '.join(by_label)})")
        else:
            self.rails = unique
        ambiguous = [r for r in self.rails if r in shared]
        if ambiguous:
            raise MeterUnavailable(f"INA3221 {_plural(ambiguous, 'label')} found on more than one channel; "
                                   "cannot tell which rail is meant")
        left_out = [f"{label} x{len(by_label[label])} (not connected)" for label in unused]
        left_out += [f"{label} x{len(by_label[label])} (label not unique)" for label in shared]
        if not rails and left_out:
            self.source = f"channels left out: {', '.join(left_out)}"
        self._channels = [by_label[r][0] for r in self.rails]
        try:
            self.read()
        except (OSError, ValueError) as exc:
            raise MeterUnavailable(f"INA3221 rails found but not readable: {exc}") from None

    def read(self) -> list[Row]:
        """V = in_input / 1000, I = curr_input / 1000, W = V * I; stamped between the two reads."""
        rows = []
        for channel in self._channels:
            before = clock.now_ns()
            volts = read_sysfs_int(channel.volts_path) / 1000.0
            amps = read_sysfs_int(channel.amps_path) / 1000.0
            after = clock.now_ns()
            rows.append(power_row((before + after) // 2, channel.label, volts, amps, volts * amps))
        return rows
