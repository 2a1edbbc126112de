"""Whether this NVIDIA driver can run the installed CUDA runtime and TensorRT wheel (for ``bench doctor``).

A CUDA major version needs a driver of its own branch or newer: CUDA 12.x needs 525 or newer and
CUDA 13.x needs 580 or newer (NVIDIA's CUDA minor version compatibility table). Unpinned,
``cuda-python`` and ``tensorrt`` now resolve to CUDA 13 builds, which fail on a 525-570 class driver
or on JetPack 6 (CUDA 12.x) with an opaque error at the first CUDA call, so the doctor compares
what the driver supports (``cudaDriverGetVersion``) with the runtime cuda-python carries
(``cudaRuntimeGetVersion``) and the CUDA major of the TensorRT wheel, read from its distribution
name (``tensorrt-cu12`` / ``tensorrt-cu13``; JetPack's apt TensorRT has none, so it is not checked).
Both calls encode versions as ``1000 * major + 10 * minor``; a machine without a driver reports 0.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from bench.devices.tensorrt.jetson_env import is_jetson

MIN_DRIVER_BRANCH = {12: 525, 13: 580}
# Distributions that name the CUDA major of a pip TensorRT: the frontend package and the wheels it pulls in.
TENSORRT_DISTRIBUTIONS = {f"tensorrt-cu{major}{part}": major for major in (12, 13)
                          for part in ("", "-bindings", "-libs")}


def dotted(version: int) -> str:
    """``12060`` -> ``12.6`` (CUDA's version encoding)."""
    return f"{version // 1000}.{(version % 1000) // 10}"


def tensorrt_wheel() -> tuple[str, int] | None:
    """(distribution and version, CUDA major) of the pip TensorRT installed here, or None."""
    for name, major in TENSORRT_DISTRIBUTIONS.items():
        try:
            return f"{name} {importlib.metadata.version(name)}", major
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def install_hint(driver_major: int, root: str | Path = "/") -> str:
    """What to install for this driver: the jetson extra on a Jetson, else the desktop variant of its CUDA major."""
    if is_jetson(root):
        return "install the jetson extra: pip install -e '.[jetson]'"
    if driver_major not in MIN_DRIVER_BRANCH:
        return f"upgrade the driver to {min(MIN_DRIVER_BRANCH.values())} or newer"
    return f"install the cu{driver_major} extra: pip install -e '.[tensorrt-cu{driver_major}]'"


def _value(cudart: Any, call: str) -> int:
    """The version a cudart call returns; every binding answers ``(cudaError_t, value)``."""
    status, value = getattr(cudart, call)()
    if status != cudart.cudaError_t.cudaSuccess:
        raise RuntimeError(f"{call} failed: {getattr(status, 'name', status)}")
    return int(value)


def cuda_compatibility(cudart: Any, wheel: tuple[str, int] | None = None,
                       root: str | Path = "/") -> tuple[bool, str]:
    """Whether the driver can run ``cudart``'s CUDA runtime (and ``wheel``'s TensorRT), as one line."""
    try:
        driver = _value(cudart, "cudaDriverGetVersion")
        runtime = _value(cudart, "cudaRuntimeGetVersion")
    except RuntimeError as exc:
        return False, f"cuda-python cannot read the CUDA versions: {exc}"
    if driver == 0:
        return False, f"CUDA runtime {dotted(runtime)} installed, but no NVIDIA driver was found"
    needs = [(f"CUDA runtime {dotted(runtime)}", runtime // 1000)]
    if wheel is not None:
        needs.append((f"TensorRT ({wheel[0]})", wheel[1]))
    for what, major in needs:
        if major > driver // 1000:
            branch = MIN_DRIVER_BRANCH.get(major)
            floor = f" (driver {branch} or newer)" if branch else ""
            return False, (f"{what} needs a driver for CUDA {major}.0 or newer{floor}; this driver supports "
                           f"{dotted(driver)} ({install_hint(driver // 1000, root)})")
    found = ", ".join(what for what, _ in needs)
    if runtime > driver:
        return True, (f"{found} on a driver for CUDA {dotted(driver)}: runs through minor version compatibility "
                      "(no PTX JIT of newer code)")
    return True, f"{found} on a driver for CUDA {dotted(driver)}"
