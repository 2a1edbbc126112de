"""The device side of a run (host adapter, measure, finalize) on a tiny ONNX graph, and that it needs no torch."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from support import paths
from support.tiny_model import write_mvtec_tree, write_tiny_onnx

from bench.data.loader import InputLoader
from bench.data.mvtec import MVTecDataset
from bench.data.preprocess import Recipe
from bench.data.samples import Sample
from bench.devices.base import DeviceProfile, DeviceTiming, ExportedModel, InferenceResult, Session
from bench.devices.cache import compiled_artifact
from bench.devices.host.adapter import HostDevice
from bench.devices.profiles import load_profile
from bench.errors import BadInput
from bench.records import load_run
from bench.run.benchmark import run_plan
from bench.run.measure import DeviceFailure, Job, Measurement
from bench.run.plan import Plan
from bench.util import file_sha256

RECIPE = Recipe(resize=(16, 16), crop=(16, 16))
POST = {"map_size": [16, 16], "map_sigma": 1}


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    onnx_path = write_tiny_onnx(tmp_path / "tiny.onnx")
    exported = ExportedModel(onnx_path, file_sha256(onnx_path), "image", (1, 3, 16, 16), ("score", "patch_scores"))
    data = write_mvtec_tree(tmp_path / "data", good=4, bad=4)
    samples = MVTecDataset(data).samples("widget", "test")
    return {"tmp": tmp_path, "exported": exported, "samples": samples}


def plan(setup: dict, measurement: Measurement, device: HostDevice | None = None,
         samples: list[Sample] | None = None, skip_bad: bool = False) -> Plan:
    """A plan as ``plan_run`` would make it for the tiny model, without torch."""
    device = device or HostDevice(load_profile("host"))
    artifact, cached = compiled_artifact(setup["exported"], device, setup["tmp"] / "artifacts")
    job = Job("widget", samples or setup["samples"], setup["exported"], artifact, cached)
    manifest = {"command": "test", "model": {"name": "tiny"}, "device": device.describe()}
    return Plan(device, False, [job], RECIPE, InputLoader(RECIPE, skip_bad), POST, measurement, None, manifest)


def run(setup: dict, measurement: Measurement, device: HostDevice | None = None) -> Path:
    return run_plan(plan(setup, measurement, device), setup["tmp"] / "results")


def only_run(setup: dict) -> Path:
    """The one run folder of a run that raised."""
    (run_dir,) = (setup["tmp"] / "results").iterdir()
    return run_dir


def test_host_settings_are_explicit() -> None:
    device = HostDevice(load_profile("host"))
    settings = device.environment()["settings"]
    assert settings["providers"] == ["CPUExecutionProvider"]
    assert isinstance(settings["intra_op_num_threads"], int) and settings["intra_op_num_threads"] >= 1
    assert settings["inter_op_num_threads"] == 1 and settings["execution_mode"] == "sequential"


def test_run_records_every_image_and_a_timed_window(setup: dict) -> None:
    run_dir = run(setup, Measurement(warmup=3, min_count=20, min_duration_s=0.2))
    record = load_run(run_dir)
    assert record.status == "complete"
    assert len(record.images) == 8 and record.images["error"].isna().all()
    phases = record.latency["phase"].value_counts().to_dict()
    assert phases["warmup"] == 3 and phases["timed"] >= 20
    timed = record.latency[record.latency["phase"] == "timed"]
    assert (timed["t_end_ns"] - timed["t_start_ns"]).min() > 0
    assert (timed["t_end_ns"].max() - timed["t_start_ns"].min()) >= 0.2e9
    cat = record.metrics["categories"]["widget"]
    # bright defects make the tiny model's score separate the classes perfectly
    assert cat["image_auroc"] == 1.0 and cat["pixel_auroc"] > 0.9
    assert cat["timed_inferences"] == phases["timed"]
    assert cat["energy_mj_per_inference"] is None and "no power meter" in cat["energy_note"]
    assert set(record.maps("widget")) == set(record.images["image_id"])
    assert record.manifest["progress"]["widget"]["timed_attempt"] == 0
    assert record.manifest["progress"]["widget"]["timing_source"] == "host_clock"
    assert set(record.latency["timing_source"]) == {"host_clock"}
    assert cat["timing_source"] == "host_clock"
    # host clock: p50 of the host's own timings, FPS over the timed window
    assert cat["p50_ms"] == pytest.approx(float(np.median(timed["latency_ms"])))
    assert cat["fps"] == pytest.approx(len(timed) / ((timed["t_end_ns"].max() - timed["t_start_ns"].min()) / 1e9))


def test_accuracy_pass_is_never_timed(setup: dict) -> None:
    """Timed rows come only from the separate pass over in-memory inputs, however large the dataset."""
    record = load_run(run(setup, Measurement(warmup=1, min_count=3, min_duration_s=0)))
    assert record.latency["phase"].value_counts().to_dict() == {"warmup": 1, "timed": 3}
    assert len(record.images) == 8


class RecordingSession(Session):
    """Keeps a copy of every batch the device is fed."""

    def __init__(self, inner: Session, fed: list[np.ndarray]) -> None:
        self.inner, self.fed = inner, fed

    def infer(self, batch: np.ndarray) -> InferenceResult:
        self.fed.append(np.array(batch, copy=True))
        return self.inner.infer(batch)

    def _close(self) -> None:
        self.inner.close()


class RecordingDevice(HostDevice):
    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        self.fed: list[np.ndarray] = []

    def _open(self, artifact):  # type: ignore[no-untyped-def]
        return RecordingSession(super()._open(artifact), self.fed)


def test_input_sha256_is_of_the_exact_tensor(setup: dict) -> None:
    device = RecordingDevice(load_profile("host"))
    record = load_run(run(setup, Measurement(warmup=0, min_count=1, min_duration_s=0), device))
    # without warm-up the accuracy pass is fed first, one image per row in the order of the rows
    accuracy_pass = device.fed[:len(record.images)]
    assert all(batch.dtype == np.float32 and batch.shape == (1, 3, 16, 16) for batch in accuracy_pass)
    expected = [hashlib.sha256(batch.tobytes()).hexdigest() for batch in accuracy_pass]
    assert record.images["input_sha256"].tolist() == expected
    assert len(set(expected)) == len(expected) == 8


class DroppingSession(Session):
    """Fails like a device whose link drops after a few inferences."""

    def __init__(self, inner: Session, fail_after: int) -> None:
        self.inner, self.left = inner, fail_after

    def infer(self, batch: np.ndarray) -> InferenceResult:
        self.left -= 1
        if self.left < 0:
            raise ConnectionError("link to the device lost")
        return self.inner.infer(batch)

    def _close(self) -> None:
        self.inner.close()


class DroppingDevice(HostDevice):
    def _open(self, artifact):  # type: ignore[no-untyped-def]
        return DroppingSession(super()._open(artifact), fail_after=5)


def test_device_dropping_mid_run_keeps_the_rows(setup: dict) -> None:
    with pytest.raises(DeviceFailure, match=r"link to the device lost.*resume with --resume") as failure:
        run(setup, Measurement(warmup=1, min_count=50, min_duration_s=0), DroppingDevice(load_profile("host")))
    assert failure.value.exit_code == 5  # DESIGN.md: 5 a device failed, distinct from bad input (2) and a crash (1)
    record = load_run(only_run(setup))
    assert f"--resume {record.run_id} --out {record.path.parent}" in str(failure.value)  # works as printed
    assert record.status == "failed" and "link to the device lost" in record.manifest["error"]
    assert len(record.images) == 5  # the accuracy pass comes first: 5 images before the drop
    assert record.images["score"].notna().all()


class AuditFailingSession(DroppingSession):
    """A dropped link fails the audit too (a cloud session cannot list its jobs)."""

    def audit(self) -> dict:
        raise ConnectionError("cannot list the device's jobs")


class AuditFailingDevice(HostDevice):
    def _open(self, artifact):  # type: ignore[no-untyped-def]
        return AuditFailingSession(super()._open(artifact), fail_after=5)


def test_a_failing_audit_does_not_hide_why_the_device_failed(setup: dict, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(DeviceFailure, match="link to the device lost"):
        run(setup, Measurement(warmup=1, min_count=50, min_duration_s=0), AuditFailingDevice(load_profile("host")))
    assert "link to the device lost" in load_run(only_run(setup)).manifest["error"]
    assert "recording the session audit of widget failed after an earlier error: cannot list the device's jobs" \
        in capsys.readouterr().err


def test_broken_image_fails_the_run_naming_the_file(setup: dict) -> None:
    broken = setup["samples"][2].path
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(BadInput, match=str(broken.name)):
        run(setup, Measurement(warmup=0, min_count=1, min_duration_s=0))
    record = load_run(only_run(setup))
    assert record.status == "failed" and broken.name in record.manifest["error"]


def test_corrupt_cached_artifact_is_rebuilt(setup: dict) -> None:
    device = HostDevice(load_profile("host"))
    root = setup["tmp"] / "artifacts"
    first, cached = compiled_artifact(setup["exported"], device, root)
    assert not cached
    again, cached = compiled_artifact(setup["exported"], device, root)
    assert cached and again.sha256 == first.sha256
    first.path.write_bytes(b"truncated")
    rebuilt, cached = compiled_artifact(setup["exported"], device, root)
    assert not cached and file_sha256(rebuilt.path) == first.sha256


NO_TORCH = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class NoTorch(importlib.abc.MetaPathFinder):  # as if these packages were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision", "timm", "onnx"):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoTorch())
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from support.tiny_model import write_mvtec_tree
    from bench.data.mvtec import MVTecDataset
    from bench.data.loader import InputLoader
    from bench.data.preprocess import Recipe
    from bench.devices.base import ExportedModel
    from bench.devices.profiles import load_profile
    from bench.devices.registry import create_device
    from bench.records import load_run
    from bench.run.benchmark import run_plan
    from bench.run.measure import Job, Measurement
    from bench.devices.cache import artifact_for
    from bench.run.plan import Plan
    from bench.util import file_sha256
    tmp = Path(sys.argv[1])
    onnx_path = tmp / "tiny.onnx"
    data = write_mvtec_tree(tmp / "data")
    samples = MVTecDataset(data).samples("widget", "test")
    exported = ExportedModel(onnx_path, file_sha256(onnx_path), "image", (1, 3, 16, 16), ("score", "patch_scores"))
    device = create_device(load_profile("host"))
    recipe = Recipe((16, 16), (16, 16))
    job = Job("widget", samples, exported, *artifact_for(device, exported))
    manifest = {"command": "no-torch", "model": {"name": "tiny"}, "device": device.describe()}
    plan = Plan(device, False, [job], recipe, InputLoader(recipe), {"map_size": [16, 16], "map_sigma": 1},
                Measurement(1, 5, 0.0), None, manifest)
    record = load_run(run_plan(plan, tmp / "results"))
    assert record.status == "complete", record.manifest
    assert not any(name in sys.modules for name in ("torch", "torchvision", "onnx"))
    print("ok", len(record.images))
    """
)


def test_device_side_runs_without_torch(tmp_path: Path) -> None:
    write_tiny_onnx(tmp_path / "tiny.onnx")
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path), str(paths.TESTS)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "8"]


def test_skip_bad_records_errors_and_evaluates_the_rest(setup: dict) -> None:
    from bench.data.datasets import checked

    data = setup["tmp"] / "data"
    (data / "widget" / "ground_truth" / "dent" / "001_mask.png").unlink()
    broken = data / "widget" / "test" / "good" / "002.png"
    broken.write_bytes(b"\x89PNG broken")
    samples = checked(MVTecDataset(data).samples("widget", "test"), skip_bad=True)
    record = load_run(run_plan(plan(setup, Measurement(0, 1, 0.0), samples=samples, skip_bad=True),
                               setup["tmp"] / "results"))
    errors = record.images.set_index("image_id")["error"].dropna()
    assert set(errors.index) == {"widget/test/dent/001.png", "widget/test/good/002.png"}
    assert "without its mask" in errors["widget/test/dent/001.png"]
    assert "unreadable image" in errors["widget/test/good/002.png"]
    figures = record.metrics["categories"]["widget"]
    assert figures["errors"] == 2 and figures["image_auroc"] == 1.0
    assert figures["pixel_auroc"] is not None  # the masked defective images that remain still count


def test_pixel_metrics_not_available_without_masks(setup: dict) -> None:
    from bench.run.plan import category_masks

    samples = [s if s.label == 0 else s.__class__(**{**s.__dict__, "mask_path": None}) for s in setup["samples"]]
    assert category_masks(RECIPE, samples, {s.image_id for s in samples}) is None
    run_dir = run_plan(plan(setup, Measurement(0, 1, 0.0), samples=samples), setup["tmp"] / "results")
    figures = load_run(run_dir).metrics["categories"]["widget"]
    assert figures["pixel_auroc"] is None and figures["aupro"] is None
    assert figures["pixel_note"] == "not every defective image has a mask"
    assert figures["image_auroc"] == 1.0


def test_power_is_sampled_over_the_timed_window(setup: dict) -> None:
    """A (fake sysfs) INA3221 at 5 V x 0.8 A: energy per inference equals 4 W over the timed window."""
    from support.fake_boards import fake_ina3221

    root = setup["tmp"] / "sysroot"
    fake_ina3221(root, {1: ("VDD_IN", 5000, 800), 2: ("VDD_SOC", 1000, 500)})
    profile = DeviceProfile("board", "host", "fp32", power={"meter": "ina3221", "rails": ["VDD_IN"],
                                                            "rate_hz": 200, "root": str(root)})
    record = load_run(run(setup, Measurement(warmup=1, min_count=20, min_duration_s=0.3), HostDevice(profile)))
    power = record.power
    timed = record.latency[record.latency["phase"] == "timed"]
    assert set(power["rail"]) == {"VDD_IN"} and len(power) >= 10
    assert power["t_ns"].min() <= timed["t_start_ns"].min() and power["t_ns"].max() >= timed["t_end_ns"].max()
    figures = record.metrics["categories"]["widget"]
    assert figures["avg_power_w"] == pytest.approx(4.0, rel=1e-6) and figures["energy_complete"] is True
    window_s = (timed["t_end_ns"].max() - timed["t_start_ns"].min()) / 1e9
    assert figures["energy_mj_per_inference"] == pytest.approx(4.0 * window_s * 1000 / len(timed), rel=1e-6)
    assert record.manifest["progress"]["widget"]["power"]["status"] == "ok"


def test_energy_counter_rails_reach_the_energy_integral_as_steps(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """A RAPL meter's rows are interval averages: the record says so per category, and finalize hands those
    rails to the energy integral as steps (not points to interpolate between)."""
    import bench.run.finalize as finalize_module

    zone = setup["tmp"] / "sysroot/sys/class/powercap/intel-rapl:0"
    zone.mkdir(parents=True)
    for name, value in (("name", "package-0"), ("energy_uj", "1000"), ("max_energy_range_uj", "262143328850")):
        (zone / name).write_text(value + "\n")
    seen: list[set[str]] = []
    real = finalize_module.summarize

    def summarize(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(set(args[-1]))
        return real(*args, **kwargs)

    monkeypatch.setattr(finalize_module, "summarize", summarize)
    profile = DeviceProfile("pc", "host", "fp32", power={"meter": "rapl", "rails": ["package-0"], "rate_hz": 100,
                                                         "root": str(setup["tmp"] / "sysroot")})
    record = load_run(run(setup, Measurement(warmup=0, min_count=3, min_duration_s=0), HostDevice(profile)))
    assert record.manifest["progress"]["widget"]["power"]["interval_rails"] == ["package-0"]
    assert seen == [{"package-0"}]


def test_unavailable_meter_is_recorded_and_the_run_goes_on(setup: dict) -> None:
    profile = DeviceProfile("board", "host", "fp32", power={"meter": "ina3221", "rails": ["VDD_IN"],
                                                            "root": str(setup["tmp"] / "no-sysfs")})
    record = load_run(run(setup, Measurement(warmup=0, min_count=3, min_duration_s=0), HostDevice(profile)))
    assert record.status == "complete" and record.power.empty
    assert record.manifest["measurement"]["power_status"] == "unavailable"
    figures = record.metrics["categories"]["widget"]
    assert figures["energy_mj_per_inference"] is None
    assert figures["energy_note"].startswith("power meter unavailable: ") and "INA3221" in figures["energy_note"]


def test_external_meter_csv_trace_is_imported_over_the_timed_window(setup: dict) -> None:
    """meter: csv - an external meter logged on the run's clock (offset 0) at 1 kHz, 2.5 W: imported after the run."""
    from bench.clock import now_ns

    start = now_ns() - 1_000_000_000
    times = start + np.arange(0, 120_000) * 1_000_000  # 1 kHz for two minutes
    trace = setup["tmp"] / "joulescope.csv"
    trace.write_text("time_ns,power\n" + "".join(f"{t},2.5\n" for t in times))
    power = {"meter": "csv", "rails": ["board"], "csv": {"path": str(trace), "time": "time_ns", "time_unit": "ns",
                                                        "watts": "power", "rail": "board"}}
    profile = DeviceProfile("pi", "host", "fp32", power=power)
    record = load_run(run(setup, Measurement(warmup=0, min_count=10, min_duration_s=0.2), HostDevice(profile)))
    assert set(record.power["rail"]) == {"board"} and len(record.power) >= 100
    figures = record.metrics["categories"]["widget"]
    assert figures["avg_power_w"] == pytest.approx(2.5) and figures["energy_complete"] is True


# ---------------------------------------------------------------- timing sources

LINK_S = 0.004  # what the host clock adds per call over a slow link (adb, frame pacing)
DEVICE_MS = 1.25  # what the device's own clock says each inference took


class DeviceClockedSession(Session):
    """A device that times each inference itself, behind a link the host clock also counts."""

    timing_source = "device_clock"

    def __init__(self, inner: Session) -> None:
        self.inner = inner

    def infer(self, batch: np.ndarray) -> InferenceResult:
        time.sleep(LINK_S)
        return InferenceResult(self.inner.infer(batch).outputs, device_ms=DEVICE_MS)

    def _close(self) -> None:
        self.inner.close()


class DeviceClockedDevice(HostDevice):
    def _open(self, artifact):  # type: ignore[no-untyped-def]
        return DeviceClockedSession(super()._open(artifact))


PROFILED_MS = [2.0, 4.0, 3.0, 7.0]


class ProfiledSession(DeviceClockedSession):
    """A device the host cannot time at all (a cloud device): its profiler gives the latencies."""

    timing_source = "device_profiler"

    def device_timing(self, pool: list[np.ndarray], count: int) -> DeviceTiming:
        return DeviceTiming(PROFILED_MS * count, "fake profiler job p1", {"peak_memory_bytes": 1024})


class ProfiledDevice(HostDevice):
    def _open(self, artifact):  # type: ignore[no-untyped-def]
        return ProfiledSession(super()._open(artifact))


def metered_profile(setup: dict) -> DeviceProfile:
    from support.fake_boards import fake_ina3221

    root = setup["tmp"] / "sysroot"
    fake_ina3221(root, {1: ("VDD_IN", 5000, 800)})
    return DeviceProfile("board", "host", "fp32", power={"meter": "ina3221", "rails": ["VDD_IN"], "rate_hz": 200,
                                                         "root": str(root)})


def test_device_clock_is_authoritative_over_the_host_clock(setup: dict) -> None:
    """adb and the IMX500: the headline p50 and FPS are the device's own, not the host's round trips."""
    record = load_run(run(setup, Measurement(warmup=1, min_count=10, min_duration_s=0),
                          DeviceClockedDevice(metered_profile(setup))))
    timed = record.latency[record.latency["phase"] == "timed"]
    assert set(record.latency["timing_source"]) == {"device_clock"}
    assert timed["t_start_ns"].notna().all() and (timed["latency_ms"] >= LINK_S * 1000).all()
    assert record.manifest["progress"]["widget"]["timing_source"] == "device_clock"
    figures = record.metrics["categories"]["widget"]
    assert figures["timing_source"] == "device_clock" and record.metrics["mean"]["timing_source"] == "device_clock"
    assert figures["p50_ms"] == figures["p99_ms"] == figures["mean_ms"] == DEVICE_MS
    assert figures["fps"] == pytest.approx(1000 / DEVICE_MS) and "single stream" in figures["fps_basis"]
    assert figures["host_p50_ms"] >= LINK_S * 1000
    # energy still needs the host's window: the meter samples on the host clock
    window_s = (timed["t_end_ns"].max() - timed["t_start_ns"].min()) / 1e9
    assert figures["window_s"] == pytest.approx(window_s)
    assert figures["energy_mj_per_inference"] == pytest.approx(4.0 * window_s * 1000 / len(timed), rel=1e-6)


def test_profiler_rows_carry_no_invented_timestamps(setup: dict) -> None:
    """AI Hub: the profiler's latencies are the timed rows, stated as such, with no host window or energy."""
    record = load_run(run(setup, Measurement(warmup=3, min_count=2, min_duration_s=0),
                          ProfiledDevice(metered_profile(setup))))
    latency = record.latency
    assert set(latency["phase"]) == {"timed"}  # the profiler warms up inside its own job
    assert set(latency["timing_source"]) == {"device_profiler"}
    assert latency["t_start_ns"].isna().all() and latency["t_end_ns"].isna().all()
    assert latency["device_ms"].tolist() == PROFILED_MS * 2
    progress = record.manifest["progress"]["widget"]
    assert progress["timing_source"] == "device_profiler"
    assert progress["timing"] == {"source": "fake profiler job p1", "count": 8, "peak_memory_bytes": 1024}
    figures = record.metrics["categories"]["widget"]
    assert figures["timing_source"] == "device_profiler" and figures["timed_inferences"] == 8
    assert figures["p50_ms"] == 3.5 and figures["mean_ms"] == 4.0
    assert figures["fps"] == 250.0 and figures["window_s"] is None
    assert figures["energy_mj_per_inference"] is None and "profiler" in figures["energy_note"]
