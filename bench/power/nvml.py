"""NVIDIA GPU power through NVML (the ``pynvml`` module of the ``nvidia-ml-py`` package).

Rails are ``gpu<index>`` in NVML's device order. ``nvmlDeviceGetPowerUsage`` is, on Ampere and
newer except GA100, an average over the last second, which smears a short timed window into
whatever ran before it. So each GPU is read, in this order of preference, from:

- ``energy``: ``nvmlDeviceGetTotalEnergyConsumption``, the millijoules used since the driver
  loaded (Volta and newer). Each row is the average power since the previous reading, delta mJ /
  delta t, stamped at its end like the RAPL meter and listed in ``interval_rails``, so the energy
  integral takes it as a step over its interval and adds up the counter's own energy over a window.
  The counter's update rate bounds how fine that split is in time.
- ``instant``: the field ``NVML_FI_DEV_POWER_INSTANT`` (GPU scope) through ``nvmlDeviceGetFieldValues``.
- ``average``: ``nvmlDeviceGetPowerUsage`` itself, stated as the 1-s average it is.

The first that the GPU supports at open is used for the whole run; ``source`` says which, per GPU,
and travels into the run record. pynvml is imported only when this meter is opened: hosts without
it, or without a driver, get a one-line reason instead.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import Any

from bench import clock
from bench.power.base import MeterUnavailable, PowerMeter, Row, check_rails, one_line, power_row

ENERGY, INSTANT, AVERAGE = "energy", "instant", "average"
DESCRIPTIONS = {
    ENERGY: "energy counter deltas (nvmlDeviceGetTotalEnergyConsumption)",
    INSTANT: "instantaneous GPU power field (NVML_FI_DEV_POWER_INSTANT)",
    AVERAGE: "nvmlDeviceGetPowerUsage, averaged over 1 s on Ampere and newer (energy counter not supported)",
}
# pynvml's c_nvmlValue_t member for each NVML_VALUE_TYPE_* (nvidia-ml-py pynvml.py, c_nvmlValue_t).
VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}


def _import_pynvml() -> Any:
    try:
        return importlib.import_module("pynvml")
    except ImportError:
        raise MeterUnavailable("NVML unavailable: the pynvml module is missing (pip install nvidia-ml-py)") from None


@dataclass
class _Gpu:
    rail: str
    handle: Any
    method: str
    last_mj: int = 0
    last_ns: int = 0


class NvmlMeter(PowerMeter):
    """Power of each configured GPU in watts (NVML exposes no voltage or current)."""

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
            self._gpus = [self._choose(rail, nvml.nvmlDeviceGetHandleByIndex(int(rail[3:]))) for rail in self.rails]
        except nvml.NVMLError as exc:
            self.close()
            raise MeterUnavailable(f"NVML power reading unavailable: {one_line(exc)}") from None
        except BaseException:
            self.close()
            raise
        methods = {gpu.method for gpu in self._gpus}
        self.interval_rails = frozenset(gpu.rail for gpu in self._gpus if gpu.method == ENERGY)
        self.source = "; ".join(
            f"{', '.join(g.rail for g in self._gpus if g.method == m)}: {DESCRIPTIONS[m]}"
            for m in (ENERGY, INSTANT, AVERAGE) if m in methods)

    def _choose(self, rail: str, handle: Any) -> _Gpu:
        """The best reading this GPU supports, tried once at open; other NVML errors propagate."""
        nvml = self._nvml
        try:
            before = clock.now_ns()
            energy = nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            return _Gpu(rail, handle, ENERGY, int(energy), (before + clock.now_ns()) // 2)
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
            pass
        field = self._instant_field(handle)
        if field is not None and field.nvmlReturn == nvml.NVML_SUCCESS:
            return _Gpu(rail, handle, INSTANT)
        nvml.nvmlDeviceGetPowerUsage(handle)
        return _Gpu(rail, handle, AVERAGE)

    def _instant_field(self, handle: Any) -> Any:
        """The instantaneous-power field value (its own ``nvmlReturn`` says whether it was read), or None
        where this pynvml or driver has no such field or no nvmlDeviceGetFieldValues."""
        nvml = self._nvml
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None:
            return None
        try:
            return nvml.nvmlDeviceGetFieldValues(handle, [field])[0]
        except (nvml.NVMLError_NotSupported, nvml.NVMLError_FunctionNotFound):
            return None

    def read(self) -> list[Row]:
        """Watts per GPU: energy delta / time delta, the instantaneous field, or the averaged power."""
        return [self._read(gpu) for gpu in self._gpus]

    def _read(self, gpu: _Gpu) -> Row:
        nvml = self._nvml
        before = clock.now_ns()
        if gpu.method == ENERGY:
            energy = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
            now = (before + clock.now_ns()) // 2
            delta_mj, delta_ns = energy - gpu.last_mj, now - gpu.last_ns
            gpu.last_mj, gpu.last_ns = energy, now
            if delta_mj < 0:
                raise MeterUnavailable(f"NVML energy counter of {gpu.rail} went back by {-delta_mj} mJ "
                                       "(driver reloaded)")
            return power_row(now, gpu.rail, None, None, delta_mj * 1e6 / delta_ns if delta_ns > 0 else None)
        if gpu.method == INSTANT:
            field = nvml.nvmlDeviceGetFieldValues(gpu.handle, [nvml.NVML_FI_DEV_POWER_INSTANT])[0]
            if field.nvmlReturn != nvml.NVML_SUCCESS:
                raise nvml.NVMLError(field.nvmlReturn)
            milliwatts = float(getattr(field.value, VALUE_MEMBERS[field.valueType]))
        else:
            milliwatts = nvml.nvmlDeviceGetPowerUsage(gpu.handle)
        return power_row((before + clock.now_ns()) // 2, gpu.rail, None, None, milliwatts / 1000.0)

    def close(self) -> None:
        """Shut NVML down once; a failure to shut down changes nothing already measured."""
        if self._open:
            self._open = False
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
