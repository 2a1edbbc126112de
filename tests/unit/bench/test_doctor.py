"""``bench doctor``'s CUDA driver/runtime row, against a stub cudart module and fake distribution metadata."""

from __future__ import annotations

import enum
import sys
import types
from pathlib import Path

import pytest

from bench import doctor
from bench.devices.tensorrt.versions import cuda_compatibility, tensorrt_wheel


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInsufficientDriver = 35


def stub_cudart(driver: int, runtime: int) -> types.ModuleType:
    """STUB of cuda.bindings.runtime (cuda-bindings 13.5.0 and 12.9.10, runtime.pyx): both version calls
    return ``(cudaError_t, int)`` as 1000 * major + 10 * minor. Without a driver the real modules answer
    ``(cudaSuccess, 0)`` for the driver (seen on both versions, on a machine with no NVIDIA driver) and
    their own build's runtime, 13050 and 12090."""
    mod = types.ModuleType("cuda.bindings.runtime")
    mod.cudaError_t = cudaError_t
    mod.cudaDriverGetVersion = lambda: (cudaError_t.cudaSuccess, driver)
    mod.cudaRuntimeGetVersion = lambda: (cudaError_t.cudaSuccess, runtime)
    return mod


def test_cuda_13_runtime_on_a_cuda_12_driver_names_the_cu12_extra(tmp_path: Path) -> None:
    ok, reason = cuda_compatibility(stub_cudart(12060, 13050), root=tmp_path)
    assert not ok
    assert reason == ("CUDA runtime 13.5 needs a driver for CUDA 13.0 or newer (driver 580 or newer); this driver "
                      "supports 12.6 (install the cu12 extra: pip install -e '.[tensorrt-cu12]')")


def test_on_a_jetson_the_hint_is_the_jetson_extra(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    ok, reason = cuda_compatibility(stub_cudart(12060, 13050), root=tmp_path)
    assert not ok and reason.endswith("(install the jetson extra: pip install -e '.[jetson]')")


def test_the_tensorrt_wheel_is_checked_too(tmp_path: Path) -> None:
    ok, reason = cuda_compatibility(stub_cudart(12080, 12090), ("tensorrt-cu13 11.4.0.106", 13), root=tmp_path)
    assert not ok and reason.startswith("TensorRT (tensorrt-cu13 11.4.0.106) needs a driver for CUDA 13.0 or newer")


def test_matching_and_minor_version_compatible_pairs_pass(tmp_path: Path) -> None:
    assert cuda_compatibility(stub_cudart(13000, 12090), ("tensorrt-cu12 10.16.1.11", 12), root=tmp_path) == (
        True, "CUDA runtime 12.9, TensorRT (tensorrt-cu12 10.16.1.11) on a driver for CUDA 13.0")
    ok, reason = cuda_compatibility(stub_cudart(12020, 12090), root=tmp_path)
    assert ok and "minor version compatibility" in reason


def test_no_driver_and_a_failed_call(tmp_path: Path) -> None:
    assert cuda_compatibility(stub_cudart(0, 13050), root=tmp_path) == (
        False, "CUDA runtime 13.5 installed, but no NVIDIA driver was found")
    broken = stub_cudart(12060, 12090)
    broken.cudaDriverGetVersion = lambda: (cudaError_t.cudaErrorInsufficientDriver, 0)
    assert cuda_compatibility(broken, root=tmp_path) == (
        False, "cuda-python cannot read the CUDA versions: cudaDriverGetVersion failed: cudaErrorInsufficientDriver")


def test_tensorrt_wheel_from_distribution_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tensorrt_wheel() is None
    info = tmp_path / "tensorrt_cu13-11.4.0.106.dist-info"  # the name the tensorrt-cu13 sdist installs under
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tensorrt_cu13\nVersion: 11.4.0.106\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert tensorrt_wheel() == ("tensorrt-cu13 11.4.0.106", 13)


def test_doctor_has_the_cuda_row_only_where_cuda_python_imports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", stub_cudart(12060, 13050))
    monkeypatch.setattr(doctor, "tensorrt_wheel", lambda: None)
    rows = doctor.cuda_rows()
    assert [(r["check"], r["ok"]) for r in rows] == [("cuda driver/runtime", False)]
    assert "this driver supports 12.6" in rows[0]["reason"]

    def missing() -> None:
        raise ImportError("cuda-python is not installed")

    monkeypatch.setattr(doctor, "load_cudart", missing)
    assert doctor.cuda_rows() == []
