"""Clocks, governors, temperatures and the Jetson power mode from generated sysfs trees: what is readable is
recorded, what is not is left out without an error."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from support.fake_boards import NVPMODEL, fake_jetson

from bench.devices.tensorrt.jetson_env import jetson_state
from bench.host_state import machine_state


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def x86_host(root: Path) -> Path:
    """Twelve CPUs (so cpu10 must sort after cpu9), two zones of one type, one zone that reads an error."""
    for cpu in range(12):
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", f"{2_000_000 + cpu * 100_000}\n")
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "performance\n")
    write(root, "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq", "1\n")  # not a cpuN folder
    for zone, kind, temp in ((0, "acpitz", "27800"), (1, "x86_pkg_temp", "45000"), (2, "acpitz", "-5000"),
                             (3, "iwlwifi_1", "")):
        write(root, f"sys/class/thermal/thermal_zone{zone}/type", f"{kind}\n")
        write(root, f"sys/class/thermal/thermal_zone{zone}/temp", f"{temp}\n")
    write(root, "sys/class/thermal/cooling_device0/type", "Processor\n")
    return root


def no_commands(argv: Sequence[str]) -> str | None:
    return None


def test_host_clocks_governors_and_zones(tmp_path: Path) -> None:
    state = machine_state(x86_host(tmp_path), no_commands)
    assert list(state["cpu_freq_khz"]) == [f"cpu{i}" for i in range(12)]
    assert state["cpu_freq_khz"]["cpu11"] == 3_100_000
    assert set(state["cpu_governor"].values()) == {"performance"} and len(state["cpu_governor"]) == 12
    assert state["thermal_c"] == {"acpitz": 27.8, "x86_pkg_temp": 45.0, "acpitz/thermal_zone2": -5.0}
    assert "devfreq_hz" not in state and "jetson" not in state


def test_nothing_readable_gives_an_empty_state(tmp_path: Path) -> None:
    assert machine_state(tmp_path, no_commands) == {}


def unreadable(path: Path) -> None:
    """A node whose read fails with an OSError even for root (a directory in its place)."""
    path.unlink()
    path.mkdir()


def test_unreadable_nodes_are_left_out(tmp_path: Path) -> None:
    root = x86_host(tmp_path)
    unreadable(root / "sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq")
    unreadable(root / "sys/class/thermal/thermal_zone1/temp")
    state = machine_state(root, no_commands)
    assert "cpu3" not in state["cpu_freq_khz"] and "cpu3" in state["cpu_governor"]
    assert "x86_pkg_temp" not in state["thermal_c"] and "acpitz" in state["thermal_c"]


def test_jetson_power_mode_clocks_and_zones(tmp_path: Path) -> None:
    root = fake_jetson(tmp_path, gpu=(612000000, 306000000, 1020000000))
    for cpu in range(6):
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq", "1728000\n")
        write(root, f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor", "schedutil\n")
    for zone, kind, temp in ((0, "cpu-thermal", "48500"), (1, "gpu-thermal", "47250"), (2, "tj-thermal", "49000")):
        write(root, f"sys/class/thermal/thermal_zone{zone}/type", f"{kind}\n")
        write(root, f"sys/class/thermal/thermal_zone{zone}/temp", f"{temp}\n")
    state = machine_state(root, lambda argv: NVPMODEL if argv[0] == "nvpmodel" else None)
    assert state["jetson"] == {"power_mode": "MAXN_SUPER", "power_mode_id": 2, "emc_clock_hz": 3199000000}
    assert state["devfreq_hz"] == {"17000000.gpu": 612000000}
    assert state["thermal_c"] == {"cpu-thermal": 48.5, "gpu-thermal": 47.25, "tj-thermal": 49.0}
    assert state["cpu_governor"]["cpu5"] == "schedutil" and state["cpu_freq_khz"]["cpu0"] == 1728000


def test_jetson_without_nvpmodel_or_debugfs(tmp_path: Path) -> None:
    root = fake_jetson(tmp_path, emc=None)
    assert jetson_state(root, no_commands) == {}
    assert "jetson" not in machine_state(root, no_commands)
