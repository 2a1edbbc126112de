"""The device side (host adapter, runner, execution) on a tiny ONNX graph, and that it needs no torch."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from tiny_model import write_mvtec_tree, write_tiny_onnx

from bench.data.mvtec import MVTecDataset
from bench.data.preprocess import Recipe, preprocess_mask
from bench.devices.base import ExportedModel, InferenceResult, Session
from bench.devices.cache import compiled_artifact
from bench.devices.host import HostDevice
from bench.devices.profiles import load_profile
from bench.errors import BadInput
from bench.execution import execute_jobs
from bench.records import RunWriter, load_run
from bench.runner import CategoryJob, DeviceFailure, Measurement
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


def run(setup: dict, measurement: Measurement, device: HostDevice | None = None) -> Path:
    tmp = setup["tmp"]
    device = device or HostDevice(load_profile("host"))
    writer = RunWriter.create(tmp / "results", {"command": "test"}, "run")

    def masks() -> dict:
        return {"widget": {s.image_id: preprocess_mask(s.mask_path, RECIPE, s.path) for s in setup["samples"]}}

    return execute_jobs(device, writer, [CategoryJob("widget", setup["exported"], setup["samples"])], RECIPE, POST,
                        measurement, tmp / "artifacts", masks)


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


def test_large_category_is_timed_during_the_accuracy_pass(setup: dict) -> None:
    record = load_run(run(setup, Measurement(warmup=1, min_count=8, min_duration_s=0)))
    assert (record.latency["phase"] == "timed").sum() == 8


def test_input_sha256_is_of_the_exact_tensor(setup: dict) -> None:
    from bench.data.preprocess import preprocess_image, tensor_sha256

    record = load_run(run(setup, Measurement(warmup=0, min_count=1, min_duration_s=0)))
    first = setup["samples"][0]
    expected = tensor_sha256(preprocess_image(first.path, RECIPE))
    assert record.images.set_index("image_id").loc[first.image_id, "input_sha256"] == expected


class DroppingSession(Session):
    """Fails like a device whose link drops after a few inferences."""

    def __init__(self, inner: Session, fail_after: int) -> None:
        self.inner, self.left = inner, fail_after

    def infer(self, batch: np.ndarray) -> InferenceResult:
        self.left -= 1
        if self.left < 0:
            raise ConnectionError("link to the device lost")
        return self.inner.infer(batch)

    def close(self) -> None:
        self.inner.close()


class DroppingDevice(HostDevice):
    def open(self, artifact):  # type: ignore[no-untyped-def]
        return DroppingSession(super().open(artifact), fail_after=5)


def test_device_dropping_mid_run_keeps_the_rows(setup: dict) -> None:
    with pytest.raises(DeviceFailure, match="link to the device lost"):
        run(setup, Measurement(warmup=1, min_count=50, min_duration_s=0), DroppingDevice(load_profile("host")))
    record = load_run(setup["tmp"] / "results" / "run")
    assert record.status == "failed" and "link to the device lost" in record.manifest["error"]
    assert len(record.images) == 4  # 1 warm-up + 4 images before the drop
    assert record.images["score"].notna().all()


def test_broken_image_fails_the_run_naming_the_file(setup: dict) -> None:
    broken = setup["samples"][2].path
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(BadInput, match=str(broken.name)):
        run(setup, Measurement(warmup=0, min_count=1, min_duration_s=0))
    record = load_run(setup["tmp"] / "results" / "run")
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
    import sys
    for name in ("torch", "torchvision", "timm", "onnx"):
        sys.modules[name] = None  # any import of them now raises ImportError
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tiny_model import write_mvtec_tree
    from bench.data.mvtec import MVTecDataset
    from bench.data.preprocess import Recipe
    from bench.devices.base import ExportedModel
    from bench.devices.profiles import load_profile
    from bench.devices.registry import create_device
    from bench.execution import execute_jobs
    from bench.records import RunWriter, load_run
    from bench.runner import CategoryJob, Measurement
    from bench.util import file_sha256
    tmp = Path(sys.argv[1])
    onnx_path = tmp / "tiny.onnx"
    data = write_mvtec_tree(tmp / "data")
    samples = MVTecDataset(data).samples("widget", "test")
    exported = ExportedModel(onnx_path, file_sha256(onnx_path), "image", (1, 3, 16, 16), ("score", "patch_scores"))
    writer = RunWriter.create(tmp / "results", {"command": "no-torch"}, "nt")
    recipe = Recipe((16, 16), (16, 16))
    execute_jobs(create_device(load_profile("host")), writer, [CategoryJob("widget", exported, samples)], recipe,
                 {"map_size": [16, 16], "map_sigma": 1}, Measurement(1, 5, 0.0), tmp / "art", lambda: {"widget": None})
    record = load_run(tmp / "results" / "nt")
    assert record.status == "complete", record.manifest
    assert not any(name in sys.modules and sys.modules[name] is not None for name in ("torch", "torchvision"))
    print("ok", len(record.images))
    """
)


def test_device_side_runs_without_torch(tmp_path: Path) -> None:
    write_tiny_onnx(tmp_path / "tiny.onnx")
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(tmp_path), str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "8"]
