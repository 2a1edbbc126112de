"""Power meters and the background sampler, against fake sysfs trees and fake vendor modules.

Everything here runs on any host: the INA3221 and RAPL meters read fake sysfs trees under
``tmp_path``, and ``pynvml`` and ``jtop`` are replaced by clearly marked fakes that follow the
real modules' call signatures and error types.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.fake_boards import fake_ina3221

from bench import clock
from bench.errors import BadInput
from bench.metrics.energy import energy_over_window
from bench.power import (
    METERS,
    NO_METER_REASON,
    MeterUnavailable,
    Sampler,
    check_meter,
    max_failures,
    meter_name,
    open_meter,
    open_trace,
    rate_hz,
)
from bench.power.base import PowerMeter, Row, power_row
from bench.power.csv_trace import CsvTrace, TraceFormat
from bench.power.hwmon import Ina3221Meter, find_channels
from bench.power.jtop_meter import JtopMeter
from bench.power.nvml import NvmlMeter
from bench.power.rapl import RaplMeter, find_domains


def wait_until(condition: Any, timeout_s: float = 3.0) -> None:
    """Poll instead of sleeping a fixed time, so a loaded machine does not fail the test."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


# ---------------------------------------------------------------- profile keys


def test_meter_names_known_and_unknown() -> None:
    assert meter_name({}) == "none"
    for name in METERS:
        assert meter_name({"meter": name}) == name
    with pytest.raises(BadInput) as err:
        meter_name({"meter": "ina219"})
    message = str(err.value)
    assert "'ina219'" in message and "ina3221" in message and "rapl" in message and "\n" not in message


def test_rate_and_profile_validation() -> None:
    assert rate_hz({}) == 20.0
    assert rate_hz({"rate_hz": 100}) == 100.0
    for bad in (0, -5, "fast", True):
        with pytest.raises(BadInput):
            rate_hz({"rate_hz": bad})
    assert max_failures({}) == 5
    assert max_failures({"max_failures": 2}) == 2
    for bad in (0, 1.5, "3", True):
        with pytest.raises(BadInput, match="max_failures"):
            max_failures({"max_failures": bad})
    with pytest.raises(BadInput, match="list of names"):
        open_meter({"meter": "rapl", "rails": "package-0"})


def test_no_live_meter_for_none_and_csv(tmp_path: Path) -> None:
    assert open_meter({}) is None
    assert open_meter({"meter": "csv"}) is None
    assert check_meter({"meter": "none"}) == (True, NO_METER_REASON)


# ---------------------------------------------------------------- INA3221 (fake sysfs)

def test_ina3221_finds_rails_by_label(tmp_path: Path) -> None:
    fake_ina3221(tmp_path)
    assert [c.label for c in find_channels(tmp_path)] == ["VDD_CPU_GPU_CV", "VDD_SOC", "VDD_IN"]
    meter = Ina3221Meter(["VDD_IN", "VDD_SOC"], root=tmp_path)
    assert meter.rails == ["VDD_IN", "VDD_SOC"]
    before = clock.now_ns()
    rows = meter.read()
    after = clock.now_ns()
    assert [r["rail"] for r in rows] == ["VDD_IN", "VDD_SOC"]
    vdd_in = rows[0]
    assert vdd_in["volts"] == pytest.approx(5.072)
    assert vdd_in["amps"] == pytest.approx(1.484)
    assert vdd_in["watts"] == pytest.approx(5.072 * 1.484)
    assert rows[1]["watts"] == pytest.approx(4.992 * 0.410)
    assert all(before <= r["t_ns"] <= after and isinstance(r["t_ns"], int) for r in rows)
    assert Ina3221Meter(root=tmp_path).rails == ["VDD_CPU_GPU_CV", "VDD_SOC", "VDD_IN"]


def test_ina3221_reads_fresh_values(tmp_path: Path) -> None:
    dev = fake_ina3221(tmp_path)
    meter = Ina3221Meter(["VDD_IN"], root=tmp_path)
    (dev / "curr3_input").write_text("2000\n")
    assert meter.read()[0]["watts"] == pytest.approx(5.072 * 2.0)


def test_ina3221_missing_rail_lists_found_labels(tmp_path: Path) -> None:
    fake_ina3221(tmp_path)
    with pytest.raises(BadInput) as err:
        Ina3221Meter(["VDD_GPU"], root=tmp_path)
    message = str(err.value)
    assert "VDD_GPU" in message and "VDD_IN" in message and "VDD_CPU_GPU_CV" in message and "\n" not in message


def test_ina3221_absent_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no INA3221"):
        Ina3221Meter(["VDD_IN"], root=tmp_path)
    with pytest.raises(MeterUnavailable, match="no INA3221"):
        open_meter({"meter": "ina3221", "root": str(tmp_path), "rails": ["VDD_IN"]})


def test_open_meter_builds_ina3221(tmp_path: Path) -> None:
    fake_ina3221(tmp_path)
    meter = open_meter({"meter": "ina3221", "root": str(tmp_path), "rails": ["VDD_IN"], "rate_hz": 100})
    assert isinstance(meter, Ina3221Meter) and meter.rails == ["VDD_IN"]
    assert check_meter({"meter": "ina3221", "root": str(tmp_path), "rails": ["VDD_IN"]}) == (True, "ina3221: VDD_IN")


def fake_ina3221_chips(root: Path, chips: list[dict[int, str]]) -> None:
    """FAKE Jetson AGX Orin-style tree (Linux hwmon ABI, ina3221 driver): several INA3221 chips under the I2C
    driver, each linked from /sys/class/hwmon, unused channels labelled "NC" as the board's device tree does."""
    (root / "sys/class/hwmon").mkdir(parents=True)
    for index, channels in enumerate(chips):
        dev = root / f"sys/bus/i2c/drivers/ina3221/1-004{index}/hwmon/hwmon{index + 1}"
        dev.mkdir(parents=True)
        (dev / "name").write_text("ina3221\n")
        for n, label in channels.items():
            (dev / f"in{n}_label").write_text(label + "\n")
            (dev / f"in{n}_input").write_text(f"{5000 + n}\n")
            (dev / f"curr{n}_input").write_text(f"{100 * n}\n")
        (root / f"sys/class/hwmon/hwmon{index + 1}").symlink_to(dev)


AGX_ORIN = [{1: "VDD_GPU_SOC", 2: "VDD_CPU_CV", 3: "VIN_SYS_5V0"}, {1: "NC", 2: "VDDQ_VDD2_1V8AO", 3: "NC"}]


def test_ina3221_default_rails_leave_out_nc_channels(tmp_path: Path) -> None:
    fake_ina3221_chips(tmp_path, AGX_ORIN)
    meter = Ina3221Meter(root=tmp_path)
    assert meter.rails == ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]
    assert meter.source == "channels left out: NC x2 (not connected)"
    assert [r["watts"] for r in meter.read()] == pytest.approx([5.001 * 0.1, 5.002 * 0.2, 5.003 * 0.3, 5.002 * 0.2])
    ok, reason = check_meter({"meter": "ina3221", "root": str(tmp_path)})
    assert ok and reason.endswith("VDDQ_VDD2_1V8AO (channels left out: NC x2 (not connected))")


def test_ina3221_profile_naming_nc_is_a_one_line_error(tmp_path: Path) -> None:
    fake_ina3221_chips(tmp_path, AGX_ORIN)
    with pytest.raises(BadInput) as err:
        Ina3221Meter(["VIN_SYS_5V0", "NC"], root=tmp_path)
    message = str(err.value)
    assert message.startswith("INA3221 label NC: a label containing 'NC' marks a channel that is not connected")
    assert "VIN_SYS_5V0" in message and "\n" not in message
    assert Ina3221Meter(["VIN_SYS_5V0"], root=tmp_path).source == ""


def test_ina3221_label_on_two_channels_is_left_out_or_refused(tmp_path: Path) -> None:
    fake_ina3221_chips(tmp_path, [{1: "VDD_IN", 2: "VDD_SOC"}, {1: "VDD_SOC", 2: "NC"}])
    meter = Ina3221Meter(root=tmp_path)
    assert meter.rails == ["VDD_IN"]
    assert meter.source == "channels left out: NC x1 (not connected), VDD_SOC x2 (label not unique)"
    with pytest.raises(MeterUnavailable, match=r"^INA3221 label VDD_SOC found on more than one channel"):
        Ina3221Meter(["VDD_SOC"], root=tmp_path)


def test_ina3221_with_only_nc_channels_is_unavailable(tmp_path: Path) -> None:
    fake_ina3221_chips(tmp_path, [{1: "NC", 2: "NC"}])
    with pytest.raises(MeterUnavailable, match=r"no connected channel with a label of its own \(found: NC\)"):
        Ina3221Meter(root=tmp_path)


# ---------------------------------------------------------------- RAPL (fake powercap)

MAX_RANGE_UJ = 262_143_328_850


def fake_rapl(root: Path, zones: dict[str, tuple[str, int]]) -> Path:
    """A fake /sys/class/powercap with the control type, MSR zones and a duplicate MMIO zone."""
    base = root / "sys/class/powercap"
    (base / "intel-rapl").mkdir(parents=True)
    (base / "intel-rapl/enabled").write_text("1\n")
    for zone_id, (name, energy) in {**zones, "intel-rapl-mmio:0": ("package-0", 5)}.items():
        (base / zone_id).mkdir()
        (base / zone_id / "name").write_text(name + "\n")
        (base / zone_id / "energy_uj").write_text(f"{energy}\n")
        (base / zone_id / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
    return base


def test_rapl_names_zones_and_qualifies_repeats(tmp_path: Path) -> None:
    fake_rapl(tmp_path, {"intel-rapl:0": ("package-0", 1), "intel-rapl:0:0": ("core", 1),
                         "intel-rapl:0:1": ("dram", 1), "intel-rapl:1": ("package-1", 1),
                         "intel-rapl:1:0": ("core", 1)})
    rails = [d.rail for d in find_domains(tmp_path)]
    assert sorted(rails) == ["dram", "package-0", "package-0/core", "package-1", "package-1/core"]
    with pytest.raises(BadInput, match="package-1/core"):
        RaplMeter(["core"], root=tmp_path)


def test_rapl_power_from_energy_with_wraparound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = fake_rapl(tmp_path, {"intel-rapl:0": ("package-0", MAX_RANGE_UJ - 2_000_000),
                                "intel-rapl:0:0": ("dram", 1_000_000)})
    now = {"t": 1_000_000_000}
    monkeypatch.setattr(clock, "now_ns", lambda: now["t"])
    meter = RaplMeter(["package-0", "dram"], root=tmp_path)
    (base / "intel-rapl:0/energy_uj").write_text("3000000\n")
    (base / "intel-rapl:0:0/energy_uj").write_text("1500000\n")
    now["t"] = 1_500_000_000
    first = {r["rail"]: r for r in meter.read()}
    assert first["package-0"]["watts"] == pytest.approx(10.0)
    assert first["dram"]["watts"] == pytest.approx(1.0)
    assert first["package-0"]["t_ns"] == 1_500_000_000
    assert first["package-0"]["volts"] is None and first["package-0"]["amps"] is None
    (base / "intel-rapl:0/energy_uj").write_text("8000000\n")
    now["t"] = 2_000_000_000
    assert meter.read()[0]["watts"] == pytest.approx(10.0)


def test_rapl_absent_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no RAPL zones"):
        RaplMeter(root=tmp_path)
    ok, reason = check_meter({"meter": "rapl", "root": str(tmp_path)})
    assert not ok and "no RAPL zones" in reason


# ---------------------------------------------------------------- NVML (fake pynvml)

# nvidia-ml-py 13.615.71 pynvml.py: NVML_SUCCESS, NVML_ERROR_* and NVMLError._errcode_to_string.
NVML_SUCCESS = 0
NVML_ERRORS = {1: ("Uninitialized", "Uninitialized"), 2: ("InvalidArgument", "Invalid Argument"),
               3: ("NotSupported", "Not Supported"), 12: ("LibraryNotFound", "NVML Shared Library Not Found"),
               13: ("FunctionNotFound", "Function Not Found"), 15: ("GpuIsLost", "GPU is lost")}
NVML_ERROR_UNINITIALIZED, NVML_ERROR_INVALID_ARGUMENT, NVML_ERROR_NOT_SUPPORTED = 1, 2, 3
NVML_ERROR_LIBRARY_NOT_FOUND, NVML_ERROR_GPU_IS_LOST = 12, 15
NVML_FI_DEV_POWER_INSTANT = 186
NVML_VALUE_TYPE_UNSIGNED_INT = 1


def fake_pynvml(power_mw: dict[int, int], init_error: int | None = None, energy_mj: dict[int, int] | None = None,
                instant_mw: dict[int, int] | None = None, field_ids: bool = True) -> types.ModuleType:
    """FAKE pynvml following nvidia-ml-py 13.615.71 (pynvml.py) for the calls NvmlMeter makes.

    ``power_mw`` is what nvmlDeviceGetPowerUsage answers (the 1-s average on Ampere+); ``energy_mj`` the
    energy counters (None: a pre-Volta GPU, NotSupported); ``instant_mw`` the NVML_FI_DEV_POWER_INSTANT
    field (None: the field's own nvmlReturn is NotSupported); ``field_ids=False`` an older pynvml without
    that constant. ``state`` lets a test advance counters, count init/shutdown and mark GPUs as lost."""
    mod = types.ModuleType("pynvml")

    class NVMLError(Exception):  # pynvml.py NVMLError: __new__ maps the code to its generated subclass
        _valClassMapping: dict[int, type] = {}  # noqa: RUF012 - mirrors pynvml

        def __new__(cls, value: int) -> NVMLError:
            if cls is NVMLError:
                cls = NVMLError._valClassMapping.get(value, cls)
            obj = Exception.__new__(cls)
            obj.value = value
            return obj

        def __str__(self) -> str:
            return NVML_ERRORS[self.value][1] if self.value in NVML_ERRORS else f"NVML Error with code {self.value}"

    for code, (name, _) in NVML_ERRORS.items():  # pynvml.py _extractNVMLErrorsAsClasses
        new = lambda typ, *args, _c=code: NVMLError.__new__(typ, _c)  # noqa: E731
        cls = type(f"NVMLError_{name}", (NVMLError,), {"__new__": new})
        NVMLError._valClassMapping[code] = cls
        setattr(mod, cls.__name__, cls)
    state = types.SimpleNamespace(inits=0, shutdowns=0, lost=set(), power_mw=dict(power_mw),
                                  energy_mj=None if energy_mj is None else dict(energy_mj),
                                  instant_mw=None if instant_mw is None else dict(instant_mw))

    def check_init() -> None:  # pynvml.py _nvmlGetFunctionPointer: no library loaded -> Uninitialized
        if state.inits <= state.shutdowns:
            raise NVMLError(NVML_ERROR_UNINITIALIZED)

    def check_gpu(handle: Any) -> None:
        check_init()
        if handle.index in state.lost:
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)

    def nvmlInit() -> None:  # pynvml.py nvmlInit -> nvmlInitWithFlags(0)
        if init_error is not None:
            raise NVMLError(init_error)
        state.inits += 1

    def nvmlShutdown() -> None:  # pynvml.py nvmlShutdown
        check_init()
        state.shutdowns += 1

    def nvmlDeviceGetCount() -> int:  # pynvml.py nvmlDeviceGetCount
        check_init()
        return len(state.power_mw)

    def nvmlDeviceGetHandleByIndex(index: int) -> Any:  # pynvml.py nvmlDeviceGetHandleByIndex
        check_init()
        if index not in state.power_mw:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        return types.SimpleNamespace(index=index)

    def nvmlDeviceGetPowerUsage(handle: Any) -> int:  # pynvml.py nvmlDeviceGetPowerUsage: c_uint milliwatts
        check_gpu(handle)
        return state.power_mw[handle.index]

    def nvmlDeviceGetTotalEnergyConsumption(handle: Any) -> int:  # pynvml.py: c_uint64 millijoules, Volta+
        check_gpu(handle)
        if state.energy_mj is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return state.energy_mj[handle.index]

    def nvmlDeviceGetFieldValues(handle: Any, fieldIds: list[int]) -> list[Any]:
        # pynvml.py nvmlDeviceGetFieldValues: an array of c_nvmlFieldValue_t, each with its own nvmlReturn
        # and a c_nvmlValue_t union read through the member its valueType names.
        check_gpu(handle)
        values = []
        for field in fieldIds:
            supported = field == NVML_FI_DEV_POWER_INSTANT and state.instant_mw is not None
            value = types.SimpleNamespace(dVal=0.0, uiVal=state.instant_mw[handle.index] if supported else 0,
                                          ulVal=0, ullVal=0, sllVal=0, siVal=0, usVal=0)
            values.append(types.SimpleNamespace(
                fieldId=field, scopeId=0, timestamp=0, latencyUsec=0, valueType=NVML_VALUE_TYPE_UNSIGNED_INT,
                nvmlReturn=NVML_SUCCESS if supported else NVML_ERROR_NOT_SUPPORTED, value=value))
        return values

    mod.NVMLError = NVMLError
    mod.NVML_SUCCESS = NVML_SUCCESS
    if field_ids:
        mod.NVML_FI_DEV_POWER_INSTANT = NVML_FI_DEV_POWER_INSTANT
    mod.state = state
    for fn in (nvmlInit, nvmlShutdown, nvmlDeviceGetCount, nvmlDeviceGetHandleByIndex, nvmlDeviceGetPowerUsage,
               nvmlDeviceGetTotalEnergyConsumption, nvmlDeviceGetFieldValues):
        setattr(mod, fn.__name__, fn)
    return mod


def fixed_clock(monkeypatch: pytest.MonkeyPatch, t_ns: int) -> dict[str, int]:
    """``clock.now_ns`` answering ``now["t"]``, which the test moves."""
    now = {"t": t_ns}
    monkeypatch.setattr(clock, "now_ns", lambda: now["t"])
    return now


def test_nvml_integrates_the_energy_counter_not_the_averaged_power(monkeypatch: pytest.MonkeyPatch) -> None:
    # The 1-s averaged nvmlDeviceGetPowerUsage still says 50 W while the counter shows 300 W since the last read.
    fake = fake_pynvml({0: 50_000}, energy_mj={0: 7_000_000}, instant_mw={0: 290_000})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    now = fixed_clock(monkeypatch, 1_000_000_000)
    with NvmlMeter() as meter:
        fake.state.energy_mj[0] += 30_000
        now["t"] = 1_100_000_000
        row = meter.read()[0]
        assert row["watts"] == pytest.approx(300.0)
        assert (row["rail"], row["t_ns"], row["volts"], row["amps"]) == ("gpu0", 1_100_000_000, None, None)
        fake.state.energy_mj[0] += 5_000
        now["t"] = 1_150_000_000
        assert meter.read()[0]["watts"] == pytest.approx(100.0)
        assert "nvmlDeviceGetTotalEnergyConsumption" in meter.source


def test_nvml_energy_over_a_short_window_is_the_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows feed energy_over_window as they do in a run: 0.5 s at 300 W is the counter's 150 J, where the
    1-s average (175 W after idle) would give 87.5 J."""
    fake = fake_pynvml({0: 175_000}, energy_mj={0: 0})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    now = fixed_clock(monkeypatch, 900_000_000)
    rows = []
    with NvmlMeter() as meter:
        for step in range(6):  # 300 W from the warm-up on: reads at 1.0 s, then every 0.1 s to the window's end
            fake.state.energy_mj[0] += 30_000
            now["t"] = 1_000_000_000 + step * 100_000_000
            rows += meter.read()
    result = energy_over_window(pd.DataFrame(rows), 1_000_000_000, 1_500_000_000, ["gpu0"], inferences=50,
                                interval_rails=meter.interval_rails)
    assert result.energy_j == pytest.approx(150.0) and result.complete
    assert result.energy_mj_per_inference == pytest.approx(3000.0)


def test_nvml_energy_after_a_power_step_is_the_counters_not_a_blend(monkeypatch: pytest.MonkeyPatch) -> None:
    """50 W until the window opens at 1.0 s, then 300 W; reads at 10 Hz. The counter gained 150 J over the
    window. Taken as points to interpolate, the row at 1.1 s (the 1.0-1.1 s average) would be blended with the
    50 W row before it: 137.5 J. As steps over their intervals the figure is the counter's."""
    fake = fake_pynvml({0: 50_000}, energy_mj={0: 0})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    now = fixed_clock(monkeypatch, 0)
    rows = []
    with NvmlMeter() as meter:
        for step in range(1, 17):
            fake.state.energy_mj[0] += (5_000 if step <= 10 else 30_000)
            now["t"] = step * 100_000_000
            rows += meter.read()
    assert meter.interval_rails == {"gpu0"}
    window = (1_000_000_000, 1_500_000_000)
    steps = energy_over_window(pd.DataFrame(rows), *window, ["gpu0"], inferences=50, interval_rails={"gpu0"})
    assert steps.energy_j == pytest.approx(150.0) and steps.complete
    points = energy_over_window(pd.DataFrame(rows), *window, ["gpu0"], inferences=50)
    assert points.energy_j == pytest.approx(137.5)


def test_nvml_counter_going_back_is_a_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml({0: 50_000}, energy_mj={0: 9_000})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    now = fixed_clock(monkeypatch, 1_000_000_000)
    meter = NvmlMeter()
    fake.state.energy_mj[0] = 1_000
    now["t"] = 1_100_000_000
    with pytest.raises(MeterUnavailable, match=r"gpu0 went back by 8000 mJ \(driver reloaded\)"):
        meter.read()
    fake.state.energy_mj[0] = 11_000
    now["t"] = 1_200_000_000
    assert meter.read()[0]["watts"] == pytest.approx(100.0)
    meter.close()


def test_nvml_without_counter_uses_the_instantaneous_field(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml({0: 50_000, 1: 60_000}, energy_mj=None, instant_mw={0: 123_000, 1: 61_500})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with NvmlMeter() as meter:
        assert [r["watts"] for r in meter.read()] == [123.0, 61.5]
        assert meter.source == "gpu0, gpu1: instantaneous GPU power field (NVML_FI_DEV_POWER_INSTANT)"
        fake.state.lost.add(1)
        with pytest.raises(fake.NVMLError_GpuIsLost):
            meter.read()


@pytest.mark.parametrize("field_ids", [True, False])
def test_nvml_falls_back_to_the_averaged_power_and_says_so(monkeypatch: pytest.MonkeyPatch, field_ids: bool) -> None:
    fake = fake_pynvml({0: 71_250, 1: 250_000}, energy_mj=None, instant_mw=None, field_ids=field_ids)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with NvmlMeter() as meter:
        assert meter.rails == ["gpu0", "gpu1"]
        rows = meter.read()
        assert "averaged over 1 s" in meter.source and "energy counter not supported" in meter.source
    assert [(r["rail"], r["watts"], r["volts"]) for r in rows] == [("gpu0", 71.25, None), ("gpu1", 250.0, None)]
    assert fake.state.shutdowns == 1
    meter.close()
    assert fake.state.shutdowns == 1


def test_nvml_source_reaches_the_record_and_doctor(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml({0: 50_000}, energy_mj={0: 1_000})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    ok, reason = check_meter({"meter": "nvml"})
    assert ok and reason == "nvml: gpu0 (gpu0: energy counter deltas (nvmlDeviceGetTotalEnergyConsumption))"
    with Sampler(NvmlMeter(), 50) as sampler:
        sampler.start()
        sampler.stop()
        assert sampler.to_manifest()["source"] == "gpu0: energy counter deltas (nvmlDeviceGetTotalEnergyConsumption)"
        assert sampler.to_manifest()["interval_rails"] == ["gpu0"]


def test_nvml_unknown_gpu_is_bad_input_and_shuts_down(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml({0: 71_250})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with pytest.raises(BadInput, match=r"gpu3 not found; found: gpu0$"):
        NvmlMeter(["gpu3"])
    assert fake.state.inits == fake.state.shutdowns == 1


def test_nvml_missing_library_or_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml({}, init_error=NVML_ERROR_LIBRARY_NOT_FOUND))
    with pytest.raises(MeterUnavailable, match="NVMLError_LibraryNotFound: NVML Shared Library Not Found"):
        NvmlMeter()
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py"):
        NvmlMeter()


def test_nvml_gpu_lost_mid_run_is_a_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_pynvml({0: 100_000}, energy_mj=None)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    sampler = Sampler(NvmlMeter(), 200, max_failures=2)
    sampler.start()
    fake.state.lost.add(0)
    wait_until(lambda: sampler.gave_up)
    sampler.stop()
    assert sampler.status == "dropped" and sampler.gave_up
    assert [r["watts"] for r in sampler.rows] == [100.0]
    assert [d["error"] for d in sampler.dropouts] == ["NVMLError_GpuIsLost: GPU is lost"] * 2


# ---------------------------------------------------------------- jtop (fake jetson-stats)

ORIN_NANO_JTOP = {
    "rail": {
        "VDD_CPU_GPU_CV": {"online": True, "type": "INA3221", "volt": 5000, "curr": 620, "power": 3100,
                           "avg": 3000, "warn": 32760, "crit": 32760},
        "VDD_SOC": {"online": True, "type": "INA3221", "volt": 4992, "curr": 410, "power": 2046, "avg": 2000,
                    "warn": 32760, "crit": 32760},
    },
    "tot": {"online": True, "type": "INA3221", "volt": 5072, "curr": 1484, "power": 7526, "avg": 7400,
            "warn": 32760, "crit": 32760, "name": "VDD_IN"},
}


def fake_jtop_module(power: dict[str, Any], service_running: bool = True) -> types.ModuleType:
    """FAKE jtop (jetson-stats): ``jtop(interval)``, ``start()``, ``ok(spin)``, ``close()`` and ``power``
    as in jetson-stats 4.x, raising ``JtopException`` with the real messages when the service is down
    or the connection is lost. ``state.lost`` simulates losing the service mid-run."""
    mod = types.ModuleType("jtop")
    state = types.SimpleNamespace(lost=False, intervals=[], closed=0)

    class JtopException(Exception):
        def __init__(self, message: str, errors: str = "") -> None:
            super().__init__(message, errors)
            self.message = message

        def __str__(self) -> str:
            return str(self.message)

    class jtop:
        def __init__(self, interval: float = 1.0) -> None:
            state.intervals.append(interval)
            self._running = False

        def start(self) -> None:
            if not service_running:
                raise JtopException("The jtop.service is not active. Please run:\nsudo jtop --install-service")
            self._running = True

        def ok(self, spin: bool = False) -> bool:
            if state.lost:
                raise JtopException("Lost connection with jtop server")
            return self._running

        def close(self) -> None:
            state.closed += 1
            self._running = False

        @property
        def power(self) -> dict[str, Any]:
            return {"rail": {k: dict(v) for k, v in power["rail"].items()}, "tot": dict(power["tot"])}

    mod.jtop = jtop
    mod.JtopException = JtopException
    mod.state = state
    return mod


def test_jtop_reads_rails_and_total(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_jtop_module(ORIN_NANO_JTOP)
    monkeypatch.setitem(sys.modules, "jtop", fake)
    meter = open_meter({"meter": "jtop", "rails": ["VDD_IN", "VDD_CPU_GPU_CV", "tot"], "rate_hz": 4})
    assert isinstance(meter, JtopMeter) and fake.state.intervals == [0.25]
    rows = {r["rail"]: r for r in meter.read()}
    assert rows["VDD_IN"]["volts"] == pytest.approx(5.072)
    assert rows["VDD_IN"]["amps"] == pytest.approx(1.484)
    assert rows["VDD_IN"]["watts"] == pytest.approx(7.526)
    assert rows["VDD_CPU_GPU_CV"]["watts"] == pytest.approx(3.1)
    assert rows["tot"]["watts"] == pytest.approx(7.526)
    assert JtopMeter(interval_s=0.01).rails == ["VDD_CPU_GPU_CV", "VDD_SOC", "VDD_IN", "tot"]
    assert fake.state.intervals[-1] == 0.1
    meter.close()
    assert fake.state.closed >= 1


def test_jtop_unknown_rail_and_missing_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop_module(ORIN_NANO_JTOP))
    with pytest.raises(BadInput, match=r"VDD_GPU not found; found: VDD_CPU_GPU_CV, VDD_SOC, VDD_IN, tot$"):
        JtopMeter(["VDD_GPU"])
    monkeypatch.setitem(sys.modules, "jtop", fake_jtop_module(ORIN_NANO_JTOP, service_running=False))
    with pytest.raises(MeterUnavailable) as err:
        JtopMeter(["VDD_IN"])
    assert "jtop.service is not active" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setitem(sys.modules, "jtop", None)
    with pytest.raises(MeterUnavailable, match="jetson-stats"):
        JtopMeter()


def test_jtop_lost_connection_is_a_dropout(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = fake_jtop_module(ORIN_NANO_JTOP)
    monkeypatch.setitem(sys.modules, "jtop", fake)
    sampler = Sampler(JtopMeter(["VDD_IN"]), 200, max_failures=3)
    sampler.start()
    fake.state.lost = True
    wait_until(lambda: sampler.gave_up)
    sampler.stop()
    assert sampler.status == "dropped" and len(sampler.rows) == 1
    assert sampler.dropouts[0]["error"] == "JtopException: Lost connection with jtop server"


# ---------------------------------------------------------------- Sampler


class FakeMeter(PowerMeter):
    """A meter that counts its reads and fails on the reads ``failing`` says (1-based)."""

    def __init__(self, rails: tuple[str, ...] = ("VDD_IN", "VDD_SOC"), failing: Any = lambda n: False) -> None:
        self.rails = list(rails)
        self.calls = 0
        self.failing = failing
        self.closed = False

    def read(self) -> list[Row]:
        self.calls += 1
        if self.failing(self.calls):
            raise OSError(19, "No such device")
        now = clock.now_ns()
        return [power_row(now, rail, 5.0, 1.0, 5.0) for rail in self.rails]

    def close(self) -> None:
        self.closed = True


def test_sampler_at_200_hz_brackets_the_window() -> None:
    meter = FakeMeter()
    sampler = Sampler(meter, 200)
    sampler.start()
    window_start = clock.now_ns()
    time.sleep(0.3)
    window_end = clock.now_ns()
    sampler.stop()
    assert sampler.status == "ok" and sampler.dropouts == [] and sampler.reason is None
    rows = sampler.rows
    per_rail = {rail: [r["t_ns"] for r in rows if r["rail"] == rail] for rail in meter.rails}
    counts = {len(t) for t in per_rail.values()}
    assert len(counts) == 1
    count = counts.pop()
    assert 30 <= count <= 0.3 * 200 + 5
    for times in per_rail.values():
        assert all(b > a for a, b in itertools.pairwise(times))
        assert times[0] < window_start and times[-1] > window_end
        assert 2_500_000 <= statistics.median(b - a for a, b in itertools.pairwise(times)) <= 10_000_000
    assert all(b >= a for a, b in itertools.pairwise(r["t_ns"] for r in rows))
    calls = meter.calls
    time.sleep(0.03)
    assert meter.calls == calls
    sampler.stop()
    assert meter.calls == calls


def test_sampler_gives_up_after_consecutive_failures_keeping_earlier_rows() -> None:
    meter = FakeMeter(failing=lambda n: n > 10)
    sampler = Sampler(meter, 200, max_failures=3)
    sampler.start()
    wait_until(lambda: sampler.gave_up)
    time.sleep(0.02)
    sampler.stop()
    assert sampler.status == "dropped" and sampler.gave_up
    assert meter.calls == 13
    assert len(sampler.rows) == 10 * 2
    dropouts = sampler.dropouts
    assert len(dropouts) == 3 and dropouts[0]["error"] == "OSError: [Errno 19] No such device"
    assert dropouts[0]["t_ns"] > max(r["t_ns"] for r in sampler.rows)
    assert "gave up after 3 failed reads" in (sampler.reason or "")
    manifest = sampler.to_manifest()
    assert manifest["status"] == "dropped" and manifest["samples"] == 20 and manifest["gave_up"] is True


def test_sampler_records_a_transient_dropout_and_goes_on() -> None:
    meter = FakeMeter(rails=("VDD_IN",), failing=lambda n: n in (4, 5))
    sampler = Sampler(meter, 200, max_failures=3)
    sampler.start()
    wait_until(lambda: meter.calls >= 8)
    sampler.stop()
    assert sampler.status == "dropped" and not sampler.gave_up
    assert len(sampler.dropouts) == 2
    assert max(r["t_ns"] for r in sampler.rows) > sampler.dropouts[-1]["t_ns"]
    assert "recovered" in (sampler.reason or "")


def test_sampler_meter_that_never_reads_is_unavailable() -> None:
    sampler = Sampler(FakeMeter(failing=lambda n: True), 200, max_failures=2)
    sampler.start()
    wait_until(lambda: sampler.gave_up)
    sampler.stop()
    assert sampler.status == "unavailable" and sampler.rows == []
    assert "gave no sample" in (sampler.reason or "")


def test_sampler_bad_rates_and_one_window_each() -> None:
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BadInput):
            Sampler(FakeMeter(), bad)
    sampler = Sampler(FakeMeter(), 200)
    sampler.start()
    sampler.stop()
    with pytest.raises(RuntimeError):
        sampler.start()


def test_sampler_gives_up_on_a_read_that_hangs() -> None:
    release = threading.Event()
    meter = FakeMeter(rails=("VDD_IN",))
    blocking_read = meter.read

    def read() -> list[Row]:
        if meter.calls >= 2:
            release.wait(2.0)
        return blocking_read()

    meter.read = read  # type: ignore[method-assign]
    sampler = Sampler(meter, 100, stop_timeout_s=0.1)
    sampler.start()
    time.sleep(0.05)
    sampler.stop()
    assert sampler.gave_up and "still running" in sampler.dropouts[-1]["error"]
    kept = len(sampler.rows)
    release.set()
    time.sleep(0.05)
    assert len(sampler.rows) == kept
    sampler.close()
    assert meter.closed


# ---------------------------------------------------------------- CSV traces


def test_csv_ppk2_current_only_with_units_and_offset(tmp_path: Path) -> None:
    trace = tmp_path / "ppk2.csv"
    trace.write_text("Timestamp(ms),Current(uA),D0-D7\n0,100000,0\n0.1,200000,0\n0.2,150000,0\n")
    fmt = TraceFormat(time="Timestamp(ms)", time_unit="ms", amps="Current(uA)", amps_unit="uA", volts_fixed=5.0,
                      offset_ns=1_000_000_000, rail="board")
    rows = CsvTrace(trace, fmt).rows()
    assert [r["t_ns"] for r in rows] == [1_000_000_000, 1_000_100_000, 1_000_200_000]
    assert rows[1]["rail"] == "board"
    assert rows[1]["amps"] == pytest.approx(0.2) and rows[1]["volts"] == 5.0
    assert rows[1]["watts"] == pytest.approx(1.0)


def test_csv_joulescope_columns_and_unsorted_input(tmp_path: Path) -> None:
    trace = tmp_path / "js.csv"
    trace.write_text("#time,current,voltage,power,charge,energy\n"
                     "0.5,0.400691,4.74479,1.90114,0.2,0.95\n0.0,0.399422,4.74572,1.89553,0,0\n")
    rows = CsvTrace(trace, TraceFormat(watts="power", volts="voltage", amps="current")).rows()
    assert [r["t_ns"] for r in rows] == [0, 500_000_000]
    assert rows[0]["watts"] == pytest.approx(1.89553) and rows[0]["volts"] == pytest.approx(4.74572)


def test_csv_window_keeps_one_sample_either_side(tmp_path: Path) -> None:
    trace = tmp_path / "usb.csv"
    trace.write_text("t_us;mW\n" + "".join(f"{i * 1000};{1000 + i}\n" for i in range(10)))
    source = CsvTrace(trace, TraceFormat(time="t_us", time_unit="us", watts="mW", watts_unit="mW", delimiter=";"))
    rows = source.rows(2_500_000, 5_500_000)
    assert [r["t_ns"] for r in rows] == [2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000]
    assert rows[0]["watts"] == pytest.approx(1.002) and rows[0]["volts"] is None and rows[0]["amps"] is None
    assert len(source.rows(0, 0)) == 2


def test_csv_epoch_nanoseconds_stay_exact(tmp_path: Path) -> None:
    trace = tmp_path / "epoch.csv"
    trace.write_text("t,watts\n1700000000000000001,1.5\n")
    rows = CsvTrace(trace, TraceFormat(time="t", time_unit="ns", watts="watts",
                                       offset_ns=-1_699_999_000_000_000_000)).rows()
    assert rows[0]["t_ns"] == 1_000_000_000_001


def test_csv_format_errors(tmp_path: Path) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text("time,current\n0,1\n")
    with pytest.raises(BadInput, match=r"column 'power' not in bad\.csv; columns: time, current$"):
        CsvTrace(trace, TraceFormat(watts="power"))
    with pytest.raises(BadInput, match="time_unit 'min'"):
        TraceFormat(time_unit="min", watts="power")
    with pytest.raises(BadInput, match="volts_fixed"):
        TraceFormat(amps="current")
    with pytest.raises(BadInput, match=r"unknown power\.csv key amp_col;"):
        TraceFormat.from_profile({"amp_col": "current"})
    with pytest.raises(BadInput, match="does not exist"):
        CsvTrace(tmp_path / "missing.csv", TraceFormat(watts="power"))


def test_open_trace_from_profile(tmp_path: Path) -> None:
    trace = tmp_path / "otii.csv"
    trace.write_text("Time (s), Main current (mA), Main voltage (V)\n0.0, 250, 5.1\n0.001, 260, 5.1\n")
    power = {"meter": "csv", "rails": ["pi_5v"],
             "csv": {"path": str(trace), "time": "Time (s)", "amps": "Main current (mA)", "amps_unit": "mA",
                     "volts": "Main voltage (V)", "offset_ns": 42}}
    rows = open_trace(power).rows()
    assert [(r["t_ns"], r["rail"]) for r in rows] == [(42, "pi_5v"), (1_000_042, "pi_5v")]
    assert rows[1]["watts"] == pytest.approx(0.26 * 5.1)
    with pytest.raises(BadInput, match="not csv"):
        open_trace({"meter": "none"})
