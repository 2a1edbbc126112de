"""What a Jetson's figures depend on besides the engine: L4T/JetPack, power mode, clocks.

A Jetson's latency and energy change several-fold with its nvpmodel power mode and with
whether ``jetson_clocks`` has pinned the clocks, so both are captured into every run's
manifest. Everything is read from files and commands that need no root where possible:
``/etc/nv_tegra_release``, ``nvpmodel -q``, ``dpkg-query`` and the devfreq/cpufreq sysfs
nodes. The EMC rate lives in debugfs (root only); when it cannot be read the field is None
with the reason, never a guess. ``jetson_state`` is the part that can change from one timed window to the
next (power mode, EMC clock), recorded around each. ``root`` and ``run`` are injectable so tests use fake trees.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.sysfs import read_int, read_text

Run = Callable[[Sequence[str]], str | None]

RELEASE_FILE = "etc/nv_tegra_release"
MODEL_FILE = "proc/device-tree/model"
# Orin on JetPack 6 names the GPU's devfreq node 17000000.gpu, JetPack 5 17000000.ga10b, Xavier 17000000.gv11b.
GPU_DEVFREQ_GLOBS = ("sys/class/devfreq/*.gpu", "sys/class/devfreq/*.ga10b", "sys/class/devfreq/*.gv11b",
                     "sys/class/devfreq/*gpu*")
CPUFREQ_GLOB = "sys/devices/system/cpu/cpu[0-9]*/cpufreq"
EMC_RATE_FILES = ("sys/kernel/debug/bpmp/debug/clk/emc/rate", "sys/kernel/debug/clk/emc/clk_rate")

# L4T release -> JetPack, for boards without the nvidia-jetpack meta package (NVIDIA's release notes).
L4T_TO_JETPACK = {
    "38.4.0": "7.1", "38.2.0": "7.0", "36.5.0": "6.2.2", "36.4.7": "6.2.1", "36.4.4": "6.2.1",
    "36.4.3": "6.2", "36.4.0": "6.1", "36.3.0": "6.0", "36.2.0": "6.0 DP",
    "35.6.0": "5.1.4", "35.5.0": "5.1.3", "35.4.1": "5.1.2", "35.3.1": "5.1.1", "35.2.1": "5.1",
}


def run_command(argv: Sequence[str]) -> str | None:
    """stdout of a short system command, or None when it is missing or fails."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def parse_tegra_release(text: str) -> str | None:
    """``# R36 (release), REVISION: 4.3, ...`` -> ``36.4.3``."""
    match = re.search(r"#\s*R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if match is None:
        return None
    revision = match[2] if match[2].count(".") >= 1 else f"{match[2]}.0"
    return f"{match[1]}.{revision}"


def parse_nvpmodel(text: str) -> tuple[str | None, int | None]:
    """``nvpmodel -q`` prints ``NV Power Mode: MAXN_SUPER`` and, on the next line, the mode's id."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    ident = re.search(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return (name[1] if name else None), (int(ident[1]) if ident else None)


def jetpack_version(l4t: str | None, run: Run = run_command) -> tuple[str | None, str]:
    """JetPack from the nvidia-jetpack package when installed, else from the L4T release table."""
    package = run(["dpkg-query", "--showformat=${Version}", "--show", "nvidia-jetpack"])
    if package and package.strip():
        return package.strip().split("+")[0].split("-")[0], "dpkg nvidia-jetpack"
    if l4t is not None and l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t], "L4T release table"
    return None, "unknown (no nvidia-jetpack package, L4T release not in the table)"


def _devfreq(root: Path) -> Path | None:
    for pattern in GPU_DEVFREQ_GLOBS:
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def gpu_clocks(root: Path) -> dict[str, int | None]:
    folder = _devfreq(root)
    if folder is None:
        return {"cur_hz": None, "min_hz": None, "max_hz": None}
    return {key: read_int(folder / f"{key.split('_')[0]}_freq") for key in ("cur_hz", "min_hz", "max_hz")}


def cpus_pinned(root: Path) -> bool | None:
    """True when every online CPU's minimum frequency equals its maximum (what jetson_clocks does)."""
    pinned = []
    for folder in sorted(root.glob(CPUFREQ_GLOB)):
        low, high = read_int(folder / "scaling_min_freq"), read_int(folder / "scaling_max_freq")
        if low is not None and high is not None:
            pinned.append(low == high)
    return all(pinned) if pinned else None


def emc_rate(root: Path) -> tuple[int | None, str]:
    for name in EMC_RATE_FILES:
        value = read_int(root / name)
        if value is not None:
            return value, name
    return None, "EMC rate not readable (debugfs needs root)"


def is_jetson(root: str | Path = "/") -> bool:
    return (Path(root) / RELEASE_FILE).is_file()


def jetson_environment(expected_mode: str | None = None, root: str | Path = "/",
                       run: Run = run_command) -> dict[str, Any]:
    """The Jetson section of the manifest, with ``warnings`` for settings that differ from the profile."""
    base = Path(root)
    release = read_text(base / RELEASE_FILE)
    l4t = parse_tegra_release(release) if release else None
    jetpack, jetpack_source = jetpack_version(l4t, run)
    query = run(["nvpmodel", "-q"])
    mode, mode_id = parse_nvpmodel(query) if query else (None, None)
    gpu = gpu_clocks(base)
    cpus = cpus_pinned(base)
    gpu_pinned = None if gpu["min_hz"] is None or gpu["max_hz"] is None else gpu["min_hz"] == gpu["max_hz"]
    clocks_on = None if cpus is None or gpu_pinned is None else (cpus and gpu_pinned)
    emc_hz, emc_source = emc_rate(base)
    warnings = []
    if expected_mode and mode is None:
        warnings.append(f"power mode unknown (nvpmodel -q failed); the profile expects {expected_mode}")
    elif expected_mode and mode != expected_mode:
        warnings.append(f"power mode is {mode}, the profile expects {expected_mode}: figures are not comparable "
                        f"(sudo nvpmodel -m <id of {expected_mode}>)")
    if clocks_on is False:
        warnings.append("jetson_clocks is off: clocks scale with load, latency varies more (sudo jetson_clocks)")
    return {
        "board": read_text(base / MODEL_FILE),
        "l4t": l4t,
        "jetpack": jetpack,
        "jetpack_source": jetpack_source,
        "power_mode": mode,
        "power_mode_id": mode_id,
        "expected_power_mode": expected_mode,
        "jetson_clocks": clocks_on,
        "gpu_clock_hz": gpu,
        "emc_clock_hz": emc_hz,
        "emc_clock_source": emc_source,
        "warnings": warnings,
    }


def jetson_state(root: str | Path = "/", run: Run = run_command) -> dict[str, Any]:
    """What can change between two timed windows on a Jetson besides the clocks and temperatures every Linux
    machine shows (``bench.host_state``): the nvpmodel power mode and the EMC (memory) clock; unreadable
    fields are left out."""
    out: dict[str, Any] = {}
    query = run(["nvpmodel", "-q"])
    mode, mode_id = parse_nvpmodel(query) if query else (None, None)
    if mode is not None:
        out["power_mode"] = mode
    if mode_id is not None:
        out["power_mode_id"] = mode_id
    emc_hz, _ = emc_rate(Path(root))
    if emc_hz is not None:
        out["emc_clock_hz"] = emc_hz
    return out
