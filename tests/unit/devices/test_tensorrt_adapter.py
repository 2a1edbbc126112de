"""The TensorRT/Jetson adapter against FAKE TensorRT and cuda-python modules (tests/fakes/trt_site).

The fakes follow the real APIs' signatures and failure modes (see their docstrings); these tests
check what the adapter does at that boundary: FP16 by builder flag on TensorRT 10 and by an FP16
ONNX on 11, parser/builder errors with TensorRT's words, timing cache reuse, engine cache keys per
TensorRT version and GPU, buffers, CUDA-event timing, CUDA graphs, and a whole `bench run` on a
fake Jetson with a device that drops mid-run. The same paths on a real GPU are in
test_tensorrt_gpu.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from support import paths
from support.cli import run_cli
from support.extras import need
from support.fake_boards import NVPMODEL, fake_command, fake_ina3221, fake_jetson
from support.tiny_model import write_tiny_onnx

onnx = need("export", "onnx")
from onnx import TensorProto, helper  # noqa: E402
from support.onnx_graphs import conv_onnx, exported  # noqa: E402

from bench.devices.base import DeviceProfile  # noqa: E402
from bench.devices.cache import cache_key, compiled_artifact  # noqa: E402
from bench.devices.tensorrt.adapter import TensorRTDevice  # noqa: E402
from bench.devices.tensorrt.build import EngineBuildFailed, fp16_mode, parse_version  # noqa: E402
from bench.devices.tensorrt.cuda_runtime import CudaError  # noqa: E402
from bench.devices.tensorrt.session import EngineLoadFailed  # noqa: E402
from bench.errors import BadInput  # noqa: E402
from bench.records import load_run  # noqa: E402

FAKES = paths.FAKES / "trt_site"


def forget_runtime_modules() -> None:
    for name in list(sys.modules):
        if name == "tensorrt" or name == "cuda" or name.startswith("cuda."):
            del sys.modules[name]


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """Import the fakes under the real names; ``use(version, gpu=...)`` switches TensorRT version or GPU."""
    monkeypatch.syspath_prepend(str(FAKES))

    def use(version: str = "10.3.0", **env: str) -> None:
        monkeypatch.setenv("FAKE_TRT_VERSION", version)
        for key in ("FAKE_CUDA_GPU", "FAKE_CUDA_CC", "FAKE_CUDA_DEVICES", "FAKE_CUDA_FAIL_AFTER_COPIES",
                    "FAKE_CUDA_FAIL_SYNC"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        forget_runtime_modules()

    use()
    yield use
    forget_runtime_modules()


def device(tmp_path: Path, **runtime: object) -> TensorRTDevice:
    profile = DeviceProfile(name="jetson", kind="tensorrt", precision="fp16", source=tmp_path / "jetson.yaml",
                            runtime={"system_root": str(tmp_path / "no-board"), "timing_cache":
                                     str(tmp_path / "timing.cache"), **runtime})
    return TensorRTDevice(profile)


def host_outputs(path: Path, batch: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(["score", "patch_scores"], session.run(["score", "patch_scores"], {"image": batch}), strict=True))


def test_version_handling() -> None:
    assert parse_version("10.3.0.30") == (10, 3, 0) and parse_version("11.4") == (11, 4, 0)
    assert fp16_mode("10.3.0") == "builder_flag" and fp16_mode("10.16.1.11") == "builder_flag"
    assert fp16_mode("11.4.0.106") == "strongly_typed"
    with pytest.raises(BadInput, match=r"TensorRT 8\.6\.1 is too old.*10 or newer"):
        fp16_mode("8.6.1")
    with pytest.raises(BadInput, match="cannot read the TensorRT version"):
        parse_version("unknown")


def test_tensorrt_10_builds_fp16_with_the_builder_flag_and_reuses_the_timing_cache(fake_trt, tmp_path: Path) -> None:
    import tensorrt

    dev = device(tmp_path, workspace_mib=256)
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    artifact = dev.compile(model, tmp_path / "a")
    header = tensorrt.engine_header(str(artifact.path))
    assert header["builder_flags"] == 1 << int(tensorrt.BuilderFlag.FP16) and header["network_flags"] == 0
    assert header["workspace"] == 256 << 20
    build = artifact.details["build"]
    assert build["fp16_mode"] == "builder_flag" and build["timing_cache_loaded_bytes"] == 0
    assert artifact.toolchain == {"tensorrt": "10.3.0", "cuda_runtime": "12.6", "gpu": "Orin (sm 8.7)"}
    assert (tmp_path / "timing.cache").is_file()
    again = dev.compile(model, tmp_path / "b")
    assert again.details["build"]["timing_cache_loaded_bytes"] > 0


def test_tensorrt_11_builds_a_strongly_typed_network_from_an_fp16_onnx(fake_trt, tmp_path: Path) -> None:
    need("emulate", "onnxconverter_common")  # makes the FP16 ONNX (also in the jetson and tensorrt extras)
    fake_trt("11.4.0.106")
    import tensorrt

    assert not hasattr(tensorrt.BuilderFlag, "FP16")
    artifact = device(tmp_path).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    header = tensorrt.engine_header(str(artifact.path))
    assert header["network_flags"] == 1 << int(tensorrt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    assert header["builder_flags"] == 0
    assert artifact.details["build"]["fp16_mode"] == "strongly_typed"
    conversion = artifact.details["fp16_conversion"]
    assert conversion["fp16_initializers"] >= 1 and "device compiler" in conversion["numerics"]
    fp16_graph = onnx.load(str(tmp_path / "a" / "model_fp16.onnx"))
    assert any(init.data_type == TensorProto.FLOAT16 for init in fp16_graph.graph.initializer)
    assert fp16_graph.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # IO stays FP32


def test_parser_errors_name_the_node(fake_trt, tmp_path: Path) -> None:
    path = conv_onnx(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    model.graph.node[1].domain, model.graph.node[1].op_type = "com.example", "FancyAbs"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    onnx.save(model, str(path))
    with pytest.raises(EngineBuildFailed) as err:
        device(tmp_path).compile(exported(path), tmp_path / "a")
    message = str(err.value)
    assert "ONNX parser failed" in message and "FancyAbs" in message and "at node abs" in message
    assert "\n" not in message


def test_builder_errors_carry_the_logger_messages(fake_trt, tmp_path: Path) -> None:
    with pytest.raises(EngineBuildFailed, match="increasing the workspace size"):
        device(tmp_path, workspace_mib=0).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")


def test_no_cuda_device_is_reported_not_crashed(fake_trt, tmp_path: Path) -> None:
    fake_trt(FAKE_CUDA_DEVICES="0")
    dev = device(tmp_path)
    ok, reason = dev.availability()
    assert not ok and "cudaErrorNoDevice (no CUDA-capable device is detected)" in reason
    with pytest.raises(BadInput, match="cannot run here"):
        dev.compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    import tensorrt

    from bench.devices.tensorrt.build import BuildSettings, build_engine

    with pytest.raises(EngineBuildFailed, match="CUDA initialization failure with error: 35"):
        build_engine(tensorrt, tmp_path / "m.onnx", tmp_path / "e.engine", BuildSettings())
    env = dev.environment()
    assert env["gpu"] is None and any("not usable" in w for w in env["warnings"])


def test_missing_tensorrt_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    ok, reason = device(tmp_path).availability()
    assert not ok and "tensorrt: not installed" in reason and "python3-libnvinfer" in reason


def test_engine_cache_keys_on_tensorrt_version_and_gpu(fake_trt, tmp_path: Path) -> None:
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    keys = {}
    for label, version, env in [("10.3/orin", "10.3.0", {}), ("10.16/orin", "10.16.1.11", {}),
                                ("10.3/h100", "10.3.0", {"FAKE_CUDA_GPU": "NVIDIA H100", "FAKE_CUDA_CC": "9.0"})]:
        fake_trt(version, **env)
        keys[label] = cache_key(model, device(tmp_path))
    assert len(set(keys.values())) == 3
    fake_trt("10.3.0")
    assert cache_key(model, device(tmp_path)) == keys["10.3/orin"]
    first, cached = compiled_artifact(model, device(tmp_path), tmp_path / "cache")
    again, cached_again = compiled_artifact(model, device(tmp_path), tmp_path / "cache")
    assert (cached, cached_again) == (False, True) and again.sha256 == first.sha256


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_session_matches_the_onnx_and_times_with_events(fake_trt, tmp_path: Path, cuda_graph: bool) -> None:
    fake_trt("10.3.0")
    from cuda.bindings import runtime

    path = write_tiny_onnx(tmp_path / "tiny.onnx")
    dev = device(tmp_path, cuda_graph=cuda_graph)
    artifact = dev.compile(exported(path), tmp_path / "a")
    batch = np.random.default_rng(1).normal(size=(1, 3, 16, 16)).astype(np.float32)
    session = dev.open(artifact)
    pointers = [b.device for b in session.inputs + session.outputs]
    assert all(runtime.is_device_pointer(p) for p in pointers)
    results = [session.infer(batch) for _ in range(3)]
    session.close()
    expected = host_outputs(path, batch)
    for result in results:
        assert set(result.outputs) == {"score", "patch_scores"}
        np.testing.assert_allclose(result.outputs["patch_scores"], expected["patch_scores"], rtol=1e-6)
        assert result.device_ms is not None and result.device_ms > 0
    assert not any(runtime.is_device_pointer(p) for p in pointers)
    other = np.random.default_rng(2).normal(size=(1, 3, 16, 16)).astype(np.float32)
    with dev.open(artifact) as again:  # a fresh input must flow through (a stale buffer would repeat the last)
        np.testing.assert_allclose(again.infer(other).outputs["score"], host_outputs(path, other)["score"], rtol=1e-6)
        with pytest.raises(BadInput, match=r"input shape \(1, 3, 8, 8\) does not match the engine's"):
            again.infer(np.zeros((1, 3, 8, 8), np.float32))


def test_close_releases_everything_when_the_device_has_faulted(fake_trt, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from cuda.bindings import runtime

    dev = device(tmp_path)
    session = dev.open(dev.compile(exported(write_tiny_onnx(tmp_path / "t.onnx")), tmp_path / "a"))
    pointers = [b.device for b in session.inputs + session.outputs]
    monkeypatch.setenv("FAKE_CUDA_FAIL_SYNC", "1")
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed: cudaErrorLaunchFailure"):
        session.close()
    assert pointers and not any(runtime.is_device_pointer(p) for p in pointers)


def test_a_failing_close_does_not_hide_why_the_session_failed_to_open(
        fake_trt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    dev = device(tmp_path, cuda_graph=True)
    artifact = dev.compile(exported(write_tiny_onnx(tmp_path / "t.onnx")), tmp_path / "a")
    monkeypatch.setenv("FAKE_CUDA_FAIL_SYNC", "1")  # the capture's synchronise fails, and so does close's
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed") as failure:
        dev.open(artifact)
    assert failure.value.__context__ is None  # the capture's own error, not close's raised while handling it
    assert "warning: closing the TensorRT session failed after an earlier error" in capsys.readouterr().err


def test_engine_from_another_tensorrt_is_refused(fake_trt, tmp_path: Path) -> None:
    artifact = device(tmp_path).compile(exported(write_tiny_onnx(tmp_path / "t.onnx")), tmp_path / "a")
    fake_trt("10.16.1.11")
    with pytest.raises(EngineLoadFailed, match="cannot deserialize this engine"):
        device(tmp_path).open(artifact)


def test_environment_on_a_jetson_records_power_mode_and_warns(fake_trt, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    board = fake_jetson(tmp_path / "board", cpu_pinned=False)
    fake_command(tmp_path / "bin", "nvpmodel", "NV Power Mode: 15W\n0\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    env = device(tmp_path, system_root=str(board), expected_power_mode="MAXN_SUPER").environment()
    assert env["power_mode"] == "15W" and env["jetson"]["l4t"] == "36.4.3" and env["jetson"]["jetpack"] == "6.2"
    assert env["runtime"]["tensorrt"] == "10.3.0" and env["gpu"]["name"] == "Orin"
    assert env["settings"]["fp16_mode"] == "builder_flag"
    assert any("the profile expects MAXN_SUPER" in w for w in env["warnings"])
    assert any("jetson_clocks is off" in w for w in env["warnings"])
    off_board = device(tmp_path, expected_power_mode="MAXN_SUPER").environment()
    assert off_board["jetson"] is None and any("not a Jetson" in w for w in off_board["warnings"])
    assert device(tmp_path).environment()["warnings"] == []  # a desktop GPU's profile expects no power mode


# ------------------------------------------------------------------ a whole run on a fake Jetson


def jetson_lab(tmp_path: Path, **runtime: object) -> dict[str, str]:
    """A profile folder with a Jetson whose board files, INA3221 rails and nvpmodel are fakes."""
    board = fake_jetson(tmp_path / "board")
    fake_ina3221(board)
    fake_command(tmp_path / "bin", "nvpmodel", NVPMODEL)
    profiles = tmp_path / "devices"
    profiles.mkdir()
    profile = yaml.safe_load((paths.REPO / "devices" / "jetson.yaml").read_text())
    profile["runtime"].update(system_root=str(board), **runtime)
    profile["power"]["root"] = str(board)
    (profiles / "jetson.yaml").write_text(yaml.safe_dump(profile))
    return {"BENCH_DEVICES_DIR": str(profiles), "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")]),
            "FAKE_TRT_VERSION": "10.3.0"}


def jetson_run(small_demo: dict, tmp_path: Path, env: dict[str, str]):
    args = ["run", "--device", "jetson", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]),
            "--checkpoint", str(small_demo["checkpoint"]), "--backbone-weights", str(small_demo["backbone"]),
            "--categories", "washer", "--limit", "6", "--warmup", "2", "--min-count", "20", "--min-duration", "0.3",
            "--out", str(tmp_path / "results")]
    return run_cli(args, cwd=tmp_path, env={"BENCH_CACHE_DIR": str(small_demo["cache"]), **env})


@pytest.mark.slow
def test_bench_run_on_a_fake_jetson(small_demo: dict, tmp_path: Path) -> None:
    done = jetson_run(small_demo, tmp_path, jetson_lab(tmp_path, cuda_graph=True))
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(next((tmp_path / "results").iterdir()))
    manifest = record.manifest
    assert manifest["status"] == "complete"
    env = manifest["device"]["environment"]
    assert env["power_mode"] == "MAXN_SUPER" and env["jetson"]["jetson_clocks"] is True and env["warnings"] == []
    assert env["settings"]["cuda_graph"] is True
    timed = record.latency[record.latency["phase"] == "timed"]
    assert len(timed) >= 20 and timed["device_ms"].notna().all() and (timed["device_ms"] > 0).all()
    assert (timed["device_ms"] <= timed["latency_ms"]).all()
    assert set(record.power["rail"]) == {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"}
    washer = record.metrics["categories"]["washer"]
    assert washer["avg_power_w"] == pytest.approx(5.072 * 1.484)  # VDD_IN alone: its parts are not added again
    assert washer["energy_mj_per_inference"] == pytest.approx(
        washer["avg_power_w"] * washer["window_s"] / washer["timed_inferences"] * 1e3)
    assert washer["device_mean_ms"] <= washer["mean_ms"]
    entry = manifest["model"]["categories"]["washer"]
    assert entry["artifact_toolchain"]["tensorrt"] == "10.3.0" and entry["artifact_cached"] is False
    assert entry["artifact_details"]["build"]["fp16_mode"] == "builder_flag"


@pytest.mark.slow
def test_a_device_that_drops_mid_run_keeps_the_record(small_demo: dict, tmp_path: Path) -> None:
    env = {**jetson_lab(tmp_path), "FAKE_CUDA_FAIL_AFTER_COPIES": "30"}
    done = jetson_run(small_demo, tmp_path, env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "cudaMemcpyAsync failed: cudaErrorLaunchFailure" in last
    record = load_run(next((tmp_path / "results").iterdir()))
    assert record.manifest["status"] == "failed" and "cudaErrorLaunchFailure" in record.manifest["error"]
    assert len(record.latency) > 0
