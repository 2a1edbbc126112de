"""GPU integration: a real TensorRT engine built, run and compared with the host (FP16 tolerance).

Runs where TensorRT and a CUDA device are present (a Jetson, a lab desktop, a lent GPU) and is
skipped with the reason elsewhere. Uses the ``tensorrt-gpu`` profile (kind tensorrt), which is the
Jetson adapter off the board.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from support.cli import run_cli
from support.onnx_graphs import conv_onnx, exported

from bench.devices.emulation.fp16 import FP16_TOLERANCE
from bench.devices.profiles import load_profile
from bench.devices.registry import create_device
from bench.records import load_run


def _gpu_reason() -> str | None:
    ok, reason = create_device(load_profile("tensorrt-gpu")).availability()
    return None if ok else reason


SKIP = _gpu_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=f"needs TensorRT and a CUDA GPU: {SKIP}")


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_engine_matches_the_host_within_fp16_tolerance(tmp_path: Path, cuda_graph: bool) -> None:
    profile = load_profile("tensorrt-gpu")
    profile.runtime["cuda_graph"] = cuda_graph
    device = create_device(profile)
    path = conv_onnx(tmp_path / "m.onnx")
    artifact = device.compile(exported(path), tmp_path / "a")
    host = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with device.open(artifact) as session:
        for _ in range(8):
            batch = rng.normal(size=(1, 3, 16, 16)).astype(np.float32)
            result = session.infer(batch)
            expected = dict(zip(["score", "patch_scores"], host.run(["score", "patch_scores"], {"image": batch}),
                                strict=True))
            for name, tolerance in FP16_TOLERANCE.items():
                scale = max(1.0, float(np.abs(expected[name]).max()))
                np.testing.assert_allclose(result.outputs[name], expected[name], atol=tolerance * scale)
            assert result.device_ms is not None and result.device_ms > 0


def test_fp32_engine_has_tf32_cleared_and_the_timing_cache_is_reused(tmp_path: Path) -> None:
    """TF32 is on by default in TensorRT: the fp32 engine must clear it; the second build loads the first's cache."""
    base = load_profile("tensorrt-gpu")
    profile = replace(base, precision="fp32", runtime={**base.runtime, "timing_cache": str(tmp_path / "timing.cache")})
    device = create_device(profile)
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    first = device.compile(model, tmp_path / "a").details["build"]
    assert first["build_mode"] == "fp32" and first["tf32"] is False and "TF32" not in first["builder_flags"]
    assert first["timing_cache_loaded_bytes"] == 0
    second = device.compile(model, tmp_path / "b").details["build"]
    assert second["timing_cache_rejected"] is False and second["timing_cache_loaded_bytes"] > 0


@pytest.mark.slow
def test_bench_run_on_the_gpu_keeps_the_host_scores(small_demo: dict, tmp_path: Path) -> None:
    args = ["run", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]),
            "--checkpoint", str(small_demo["checkpoint"]), "--backbone-weights", str(small_demo["backbone"]),
            "--categories", "washer", "--limit", "8", "--min-count", "50", "--min-duration", "1",
            "--out", str(tmp_path / "results")]
    env = {"BENCH_CACHE_DIR": str(small_demo["cache"])}
    runs = {}
    for dev in ("host", "tensorrt-gpu"):
        done = run_cli([*args, "--device", dev], cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[dev] = load_run(Path(done.stdout.strip().split("run record: ")[-1]))
    host = runs["host"].images.set_index("image_id")["score"]
    gpu = runs["tensorrt-gpu"].images.set_index("image_id")["score"]
    np.testing.assert_allclose(gpu.loc[host.index].to_numpy(), host.to_numpy(), atol=FP16_TOLERANCE["score"])
    timed = runs["tensorrt-gpu"].latency.query("phase == 'timed'")
    assert len(timed) >= 50 and (timed["device_ms"] > 0).all()
