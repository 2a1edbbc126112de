"""NVIDIA GPU board power through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

Rails are ``gpu<index>`` in NVML's device order. ``nvmlDeviceGetPowerUsage`` gives milliwatts
for the board (GPU and memory); on Ampere and newer, except GA100, NVML documents it as an
average over the last second, so short windows are smoothed. pynvml is imported only when this
meter is opened: hosts without it, or without a driver, get a one-line reason instead.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any

from bench import clock
from bench.power.base import MeterUnavailable, PowerMeter, Row, check_rails, one_line, power_row


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise MeterUnavailable("NVML unavailable: the pynvml module is missing (pip install nvidia-ml-py)") from None


class NvmlMeter(PowerMeter):
    """Board power of each configured GPU, in watts (voltage and current are not exposed by NVML)."""

    def __init__(self, rails: list[str] | None = None) -> None:
        nvml = _import_pynvml()
        self._nvml = nvml
        self._open = False
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML unavailable: {one_line(exc)}") from None
        self._open = True
        try:
            count = nvml.nvmlDeviceGetCount()
            self.rails = check_rails("NVML", rails, [f"gpu{i}" for i in range(count)])
            self._handles = [(rail, nvml.nvmlDeviceGetHandleByIndex(int(rail[3:]))) for rail in self.rails]
            for _, handle in self._handles:
                nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as exc:
            self.close()
            raise MeterUnavailable(f"NVML power reading unavailable: {one_line(exc)}") from None
        except BaseException:
            self.close()
            raise

    def read(self) -> list[Row]:
        """Watts = nvmlDeviceGetPowerUsage (mW) / 1000 for each GPU."""
        rows = []
        for rail, handle in self._handles:
            milliwatts = self._nvml.nvmlDeviceGetPowerUsage(handle)
            rows.append(power_row(clock.now_ns(), rail, None, None, milliwatts / 1000.0))
        return rows

    def close(self) -> None:
        """Shut NVML down once; a failure to shut down changes nothing already measured."""
        if self._open:
            self._open = False
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
