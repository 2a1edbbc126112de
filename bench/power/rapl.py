"""Intel/AMD RAPL energy counters through the powercap sysfs ABI (host CPU package and DRAM power).

Each zone (``/sys/class/powercap/intel-rapl:<pkg>[:<sub>]``) has a ``name`` (package-0, core,
uncore, dram, psys), a cumulative ``energy_uj`` and its ``max_energy_range_uj``, after which
the counter wraps to zero. Power is the energy difference between consecutive readings over
their time difference; a counter that went down wrapped once. Each row is the average power
over the interval ending at its timestamp (``interval_rails``: the energy integral takes it as a
step over that interval), so the sample ``Sampler.stop()`` takes covers the window's end. Zones
are found by name; a name used twice (``core`` under two packages) is qualified by its parent,
e.g. ``package-1/core``. ``intel-rapl-mmio`` zones duplicate the MSR
ones and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench import clock
from bench.power.base import MeterUnavailable, PowerMeter, Row, check_rails, power_row, read_sysfs_int

ZONE_GLOB = "sys/class/powercap/intel-rapl:*"


@dataclass(frozen=True)
class Domain:
    """One RAPL zone: the rail name it is known by, its counter and the counter's range."""

    rail: str
    energy_path: Path
    max_range_uj: int


def find_domains(root: str | Path = "/") -> list[Domain]:
    """Every RAPL zone with an energy counter under ``root``, named by ``name`` (qualified if repeated)."""
    zones: dict[str, tuple[str, Path]] = {}
    for folder in sorted(Path(root).glob(ZONE_GLOB)):
        if (folder / "name").is_file() and (folder / "energy_uj").exists():
            zones[folder.name] = ((folder / "name").read_text().strip(), folder)
    names = [name for name, _ in zones.values()]
    domains = []
    for zone_id, (name, folder) in zones.items():
        rail = name
        if names.count(name) > 1:
            parent = zone_id.rsplit(":", 1)[0]
            rail = f"{zones[parent][0]}/{name}" if parent in zones and zone_id.count(":") > 1 else zone_id
        max_file = folder / "max_energy_range_uj"
        max_range = read_sysfs_int(max_file) if max_file.is_file() else 0
        domains.append(Domain(rail, folder / "energy_uj", max_range))
    return domains


class RaplMeter(PowerMeter):
    """Average power per RAPL zone between consecutive readings (volts and amps are not measured)."""

    def __init__(self, rails: list[str] | None = None, root: str | Path = "/") -> None:
        domains = find_domains(root)
        if not domains:
            raise MeterUnavailable(f"no RAPL zones under {Path(root) / 'sys/class/powercap'} "
                                   "(not an x86 host, or the intel_rapl driver is not loaded)")
        by_rail = {d.rail: d for d in domains}
        self.rails = check_rails("RAPL", rails, list(by_rail))
        self._domains = [by_rail[r] for r in self.rails]
        self.interval_rails = frozenset(self.rails)
        self._last: dict[str, tuple[int, int]] = {}
        try:
            for domain in self._domains:
                self._last[domain.rail] = (read_sysfs_int(domain.energy_path), clock.now_ns())
        except PermissionError as exc:
            raise MeterUnavailable(f"cannot read {exc.filename}: RAPL counters are root-only on most systems "
                                   "since CVE-2020-8694 (grant read access to energy_uj)") from None
        except (OSError, ValueError) as exc:
            raise MeterUnavailable(f"RAPL zones found but not readable: {exc}") from None

    def read(self) -> list[Row]:
        """Watts = energy since the previous reading / time since it, adding the range once if it wrapped."""
        rows = []
        for domain in self._domains:
            energy = read_sysfs_int(domain.energy_path)
            now = clock.now_ns()
            last_energy, last_ns = self._last[domain.rail]
            self._last[domain.rail] = (energy, now)
            delta_uj = energy - last_energy
            if delta_uj < 0:
                delta_uj += domain.max_range_uj
            watts = delta_uj * 1e3 / (now - last_ns) if now > last_ns and delta_uj >= 0 else None
            rows.append(power_row(now, domain.rail, None, None, watts))
        return rows
