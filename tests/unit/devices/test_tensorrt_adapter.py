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
from bench.devices.tensorrt.build import EngineBuildFailed, build_mode, fp16_tensors, parse_version  # noqa: E402
from bench.devices.tensorrt.cuda_runtime import Cuda, CudaError  # noqa: E402
from bench.devices.tensorrt.session import EngineLoadFailed  # noqa: E402
from bench.errors import BadInput, DeviceFailure  # noqa: E402
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
        for key in ("FAKE_CUDA_GPU", "FAKE_CUDA_CC", "FAKE_CUDA_DEVICES", "FAKE_CUDA_DRIVER",
                    "FAKE_CUDA_FAIL_AFTER_COPIES", "FAKE_CUDA_FAIL_SYNC"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        forget_runtime_modules()

    use()
    yield use
    forget_runtime_modules()


def device(tmp_path: Path, precision: str = "fp16", **runtime: object) -> TensorRTDevice:
    profile = DeviceProfile(name="jetson", kind="tensorrt", precision=precision, source=tmp_path / "jetson.yaml",
                            runtime={"system_root": str(tmp_path / "no-board"), "timing_cache":
                                     str(tmp_path / "timing.cache"), **runtime})
    return TensorRTDevice(profile)


def host_outputs(path: Path, batch: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip(["score", "patch_scores"], session.run(["score", "patch_scores"], {"image": batch}), strict=True))


def test_version_handling() -> None:
    assert parse_version("10.3.0.30") == (10, 3, 0) and parse_version("11.4") == (11, 4, 0)
    assert build_mode("10.3.0", "fp16") == "builder_flag" and build_mode("10.16.1.11", "fp16") == "builder_flag"
    assert build_mode("11.4.0.106", "fp16") == "strongly_typed"
    assert build_mode("10.3.0", "fp32") == build_mode("11.4.0.106", "fp32") == "fp32"
    assert build_mode("10.3.0", "fp16", jetson=True) == "builder_flag"
    for precision in ("fp16", "fp32"):
        with pytest.raises(BadInput, match=r"11\.1\.0 on a Jetson: TensorRT 11 does not support JetPack.*10\.3"):
            build_mode("11.1.0", precision, jetson=True)
    with pytest.raises(BadInput, match=r"TensorRT 8\.6\.1 is too old.*10 or newer"):
        build_mode("8.6.1", "fp16")
    with pytest.raises(BadInput, match="cannot read the TensorRT version"):
        parse_version("unknown")


def test_tensorrt_10_builds_fp16_with_the_builder_flag_and_reuses_the_timing_cache(fake_trt, tmp_path: Path) -> None:
    import tensorrt

    dev = device(tmp_path, workspace_mib=256)
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    artifact = dev.compile(model, tmp_path / "a")
    header = tensorrt.engine_header(str(artifact.path))
    flag = tensorrt.BuilderFlag
    assert header["builder_flags"] == 1 << int(flag.FP16) | 1 << int(flag.TF32) and header["network_flags"] == 0
    assert header["workspace"] == 256 << 20
    build = artifact.details["build"]
    assert build["fp16_mode"] == "builder_flag" and build["timing_cache_loaded_bytes"] == 0
    assert build["builder_flags"] == ["FP16", "TF32"] and build["tf32"] is True  # TF32 is TensorRT's default
    assert artifact.toolchain == {"tensorrt": "10.3.0", "cuda_runtime": "13.5", "gpu": "Orin (sm 8.7)"}
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
    assert header["builder_flags"] == 1 << int(tensorrt.BuilderFlag.TF32)
    assert artifact.details["build"]["fp16_mode"] == "strongly_typed"
    assert artifact.details["build"]["builder_flags"] == ["TF32"]
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
    fake_trt(FAKE_CUDA_DEVICES="0")  # a driver, but no GPU
    dev = device(tmp_path)
    ok, reason = dev.availability()
    assert not ok and "cudaErrorNoDevice (no CUDA-capable device is detected)" in reason
    with pytest.raises(BadInput, match="cannot run here"):
        dev.compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    import tensorrt

    from bench.devices.tensorrt.build import BuildSettings, build_engine

    with pytest.raises(EngineBuildFailed, match="CUDA initialization failure with error: 100"):
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
    assert env["settings"]["build_mode"] == "builder_flag"
    assert any("the profile expects MAXN_SUPER" in w for w in env["warnings"])
    assert any("jetson_clocks is off" in w for w in env["warnings"])
    off_board = device(tmp_path, expected_power_mode="MAXN_SUPER").environment()
    assert off_board["jetson"] is None and any("not a Jetson" in w for w in off_board["warnings"])
    assert device(tmp_path).environment()["warnings"] == []  # a desktop GPU's profile expects no power mode


def test_fp32_engines_clear_tf32_and_record_the_flags(fake_trt, tmp_path: Path) -> None:
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    for version in ("10.3.0", "11.1.0"):
        fake_trt(version)
        import tensorrt

        artifact = device(tmp_path, precision="fp32").compile(model, tmp_path / version)
        assert tensorrt.engine_header(str(artifact.path))["builder_flags"] == 0  # TF32 was on by default
        build = artifact.details["build"]
        assert build["build_mode"] == "fp32" and build["fp16_mode"] is None
        assert build["builder_flags"] == [] and build["tf32"] is False
        assert artifact.precision == "fp32" and "fp16_conversion" not in artifact.details


def test_tensorrt_11_refuses_an_fp16_label_on_an_onnx_the_conversion_left_fp32(
        fake_trt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from bench.devices.emulation import fp16

    def converted_nothing(src: Path, dst: Path, policy: str, explicit_storage: bool = True) -> dict:
        shutil.copyfile(src, dst)  # what a conversion that kept every op in FP32 hands over
        return {"fp16_initializers": 0}

    monkeypatch.setattr(fp16, "to_fp16", converted_nothing)
    fake_trt("11.1.0")
    with pytest.raises(BadInput, match=r"model_fp16\.onnx: holds no FLOAT16 tensor.*FP32 engine labelled fp16"):
        device(tmp_path).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    assert not (tmp_path / "a" / "model.engine").exists()


def test_fp16_tensors_counts_what_a_strongly_typed_build_would_run_in_fp16(tmp_path: Path) -> None:
    path = conv_onnx(tmp_path / "m.onnx")
    assert fp16_tensors(path) == 0
    model = onnx.load(str(path))
    first = model.graph.node[0]
    cast = helper.make_node("Cast", [first.input[0]], ["image_fp16"], to=TensorProto.FLOAT16, name="to_half")
    back = helper.make_node("Cast", ["image_fp16"], ["image_back"], to=TensorProto.FLOAT, name="to_float")
    first.input[0] = "image_back"
    model.graph.node.insert(0, back)
    model.graph.node.insert(0, cast)
    onnx.save(model, str(path))
    assert fp16_tensors(path) == 1


def test_tensorrt_11_on_a_jetson_is_one_clear_error(fake_trt, tmp_path: Path) -> None:
    fake_trt("11.1.0")
    dev = device(tmp_path, precision="fp32", expected_power_mode="MAXN_SUPER")  # a Jetson profile
    ok, reason = dev.availability()
    assert not ok and "TensorRT 11 does not support JetPack" in reason and "TensorRT 10.3" in reason
    with pytest.raises(BadInput, match="cannot run here"):
        dev.compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    assert device(tmp_path, precision="fp32").availability()[0]  # a desktop GPU may run TensorRT 11


def test_a_timing_cache_tensorrt_rejects_is_recorded_and_not_counted(fake_trt, tmp_path: Path) -> None:
    model = exported(conv_onnx(tmp_path / "m.onnx"))
    cache = tmp_path / "timing.cache"
    device(tmp_path).compile(model, tmp_path / "orin")
    fake_trt(FAKE_CUDA_GPU="NVIDIA H200", FAKE_CUDA_CC="9.0")  # the same configured cache file, another GPU
    moved = device(tmp_path).compile(model, tmp_path / "h200").details["build"]
    assert moved["timing_cache_rejected"] is True and moved["timing_cache_loaded_bytes"] == 0
    assert any("timing cache" in w and "rejected" in w for w in moved["warnings"])
    size = cache.stat().st_size  # rewritten by the H200 build, for the H200
    again = device(tmp_path).compile(model, tmp_path / "h200-again").details["build"]
    assert again["timing_cache_rejected"] is False and again["timing_cache_loaded_bytes"] == size > 0
    cache.write_bytes(b"not a timing cache")
    damaged = device(tmp_path).compile(model, tmp_path / "damaged").details["build"]
    assert damaged["timing_cache_rejected"] is True and damaged["timing_cache_loaded_bytes"] == 0


def test_fake_timing_cache_follows_set_timing_cache(fake_trt) -> None:
    import tensorrt

    config = tensorrt.Builder(tensorrt.Logger()).create_builder_config()
    assert config.get_flag(tensorrt.BuilderFlag.TF32)  # NvInfer.h: kTF32 "Enabled by default"
    own = config.create_timing_cache(b"")
    assert config.set_timing_cache(own, False) is True
    with pytest.raises(TypeError, match="incompatible function arguments"):
        config.set_timing_cache(None, False)
    with pytest.raises(TypeError, match="incompatible function arguments"):
        config.get_flag(6)
    blob = bytes(own.serialize())
    fake_trt("10.16.1.11")
    import tensorrt

    config = tensorrt.Builder(tensorrt.Logger()).create_builder_config()
    foreign = config.create_timing_cache(blob)
    assert config.set_timing_cache(foreign, False) is False and config.get_timing_cache() is None
    assert config.set_timing_cache(foreign, True) is True


def test_execution_is_asynchronous_so_a_missing_sync_reads_stale_outputs(
        fake_trt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tiny_onnx(tmp_path / "tiny.onnx")
    dev = device(tmp_path)
    artifact = dev.compile(exported(path), tmp_path / "a")
    batch = np.random.default_rng(3).normal(size=(1, 3, 16, 16)).astype(np.float32)
    expected = host_outputs(path, batch)["score"]
    with dev.open(artifact) as session:
        np.testing.assert_allclose(session.infer(batch).outputs["score"], expected, rtol=1e-6)
        monkeypatch.setattr(Cuda, "synchronize", lambda self, stream: None)  # a session that forgot to sync
        with pytest.raises(CudaError, match="cudaEventElapsedTime failed: cudaErrorNotReady"):
            session.infer(batch * 2)
        score = next(out for out in session.outputs if out.name == "score")
        np.testing.assert_allclose(score.host, expected, rtol=1e-6)  # still the previous inference's result
        monkeypatch.undo()
        np.testing.assert_allclose(session.infer(batch * 3).outputs["score"], host_outputs(path, batch * 3)["score"],
                                   rtol=1e-6)


def test_fake_cuda_captures_copies_and_events_and_refuses_a_sync_inside(fake_trt) -> None:
    from cuda.bindings import runtime

    cuda = Cuda(runtime)
    pointer, stream, event = cuda.malloc(4), cuda.stream(), cuda.event()
    source, result = np.array([7], np.int32), np.zeros(1, np.int32)
    cuda.begin_capture(stream)
    cuda.to_device(pointer, source, stream)
    cuda.record(event, stream)
    _, executable = cuda.end_capture(stream)
    cuda.to_host(result, pointer, stream)
    cuda.synchronize(stream)
    assert result[0] == 0  # captured, not run
    cuda.launch(executable, stream)
    cuda.to_host(result, pointer, stream)
    assert result[0] == 0  # queued, not run before the stream is synchronised
    cuda.synchronize(stream)
    assert result[0] == 7 and event.t_ns is not None
    cuda.begin_capture(stream)
    with pytest.raises(CudaError, match="cudaStreamSynchronize failed: cudaErrorStreamCaptureUnsupported"):
        cuda.synchronize(stream)
    with pytest.raises(CudaError, match="cudaStreamEndCapture failed: cudaErrorStreamCaptureInvalidated"):
        cuda.end_capture(stream)
    assert runtime.cudaRuntimeGetVersion() == (runtime.cudaError_t.cudaSuccess, 13050)  # cuda-bindings 13.5.0


def test_a_failed_captured_enqueue_is_the_error_reported(fake_trt, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dev = device(tmp_path, cuda_graph=True)
    artifact = dev.compile(exported(write_tiny_onnx(tmp_path / "t.onnx")), tmp_path / "a")
    import tensorrt
    from cuda.bindings import runtime

    calls = []

    def failing_in_capture(self, stream_handle: int) -> bool:
        calls.append(stream_handle)
        if len(calls) == 1:
            return runtime.submit(stream_handle, self._run)
        runtime.cudaStreamSynchronize(runtime._streams[stream_handle])  # prohibited: invalidates the capture
        return False

    monkeypatch.setattr(tensorrt.IExecutionContext, "execute_async_v3", failing_in_capture)
    with pytest.raises(DeviceFailure, match="execute_async_v3 returned False") as failure:
        dev.open(artifact)
    assert not isinstance(failure.value, CudaError)


@pytest.mark.parametrize(("driver", "said"), [("12060", "the driver supports CUDA 12.6"), ("0", "no NVIDIA driver")])
def test_an_old_or_missing_driver_is_insufficient_driver(fake_trt, tmp_path: Path, driver: str, said: str) -> None:
    fake_trt(FAKE_CUDA_DRIVER=driver)
    ok, reason = device(tmp_path).availability()
    assert not ok and "cudaGetDeviceCount failed: cudaErrorInsufficientDriver" in reason
    assert f"{said}, this cuda-python is built for CUDA 13.5" in reason
    import tensorrt

    from bench.devices.tensorrt.build import BuildSettings, build_engine

    with pytest.raises(EngineBuildFailed, match="CUDA initialization failure with error: 35"):
        build_engine(tensorrt, conv_onnx(tmp_path / "m.onnx"), tmp_path / "e.engine", BuildSettings())


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


# ------------------------------------------------------------------ benchmarks/gpu_check.sh without a GPU

GPU_CHECK = paths.REPO / "benchmarks" / "gpu_check.sh"


def gpu_check(tmp_path: Path, *args: str, fakes: bool = True, **env: str):
    import subprocess

    base = {key: value for key, value in os.environ.items() if not key.startswith(("FAKE_", "GPU_CHECK_"))}
    extra = env.pop("PYTHONPATH", "")
    pythonpath = os.pathsep.join(p for p in [extra, str(FAKES) if fakes else "", base.get("PYTHONPATH", "")] if p)
    base.update(PYTHONPATH=pythonpath, PYTHON=sys.executable, OUT=str(tmp_path / "out"),
                GPU_CHECK_WORK=str(tmp_path / "work"), **env)
    return subprocess.run(["bash", str(GPU_CHECK), *args], capture_output=True, text=True, env=base, timeout=1500)


def test_gpu_check_dry_run_writes_the_profiles_and_plans(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensorrt-gpu-fp16" in done.stdout and "tensorrt-gpu-fp32" in done.stdout
    assert "edgezsad: bench run --device tensorrt-gpu-fp32, cold then warm" in done.stdout
    fp32 = yaml.safe_load((tmp_path / "work" / "devices" / "tensorrt-gpu-fp32.yaml").read_text())
    assert fp32["precision"] == "fp32" and fp32["runtime"]["timing_cache"] == str(tmp_path / "work" /
                                                                                  "timing-fp32.cache")
    assert gpu_check(tmp_path, "--bogus").returncode == 2


def test_gpu_check_says_what_is_missing_and_where_wheels_go(tmp_path: Path) -> None:
    shadow = tmp_path / "no-trt"
    (shadow / "tensorrt").mkdir(parents=True)
    (shadow / "tensorrt" / "__init__.py").write_text("raise ImportError('no TensorRT here')\n")
    done = gpu_check(tmp_path, "--dry-run", fakes=False, PYTHONPATH=str(shadow))
    assert done.returncode == 2
    assert "missing: tensorrt" in done.stderr and "GPU_CHECK_WHEELS" in done.stderr
    empty = tmp_path / "wheels"
    empty.mkdir()
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    for driver, variant in (("570.124.06", "tensorrt-cu12"), ("580.65.06", "tensorrt-cu13")):
        smi.write_text(f"#!/bin/sh\necho {driver}\n")
        smi.chmod(0o755)
        done = gpu_check(tmp_path, fakes=False, PYTHONPATH=str(shadow), GPU_CHECK_WHEELS=str(empty),
                         PATH=f"{smi.parent}{os.pathsep}{os.environ['PATH']}")
        assert done.returncode == 2 and "missing: tensorrt" in done.stderr  # nothing to install from: one clear stop
        # the CUDA build that fits the driver, and pip's own reason when it cannot install it
        assert f".[{variant}] from {empty} (no index; driver {driver})" in done.stderr
        assert f"pip could not install .[{variant}]" in done.stderr


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_the_fakes(tmp_path: Path) -> None:
    done = gpu_check(tmp_path, GPU_CHECK_MODELS="tinyglass", GPU_CHECK_PYTEST="0", GPU_CHECK_BUDGET_S="1400",
                     GPU_CHECK_LIMIT="4")
    summary = (tmp_path / "out" / "gpu_check.md").read_text()
    assert done.returncode == 0, summary + done.stderr[-2000:]
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in summary.splitlines() if line.startswith("| tinyglass")}
    assert set(rows) == {"fp16", "fp32"}
    for precision, row in rows.items():
        cold, warm, loaded, rejected, flags, tf32 = row[2:8]
        assert float(cold) > 0 and float(warm) > 0 and int(loaded) > 0 and rejected == "False"
        assert (flags, tf32) == (("FP16,TF32", "True") if precision == "fp16" else ("none", "False"))
        assert all(len(row[i].split("/")) == 3 for i in (8, 9)) and row[10] != "n/a"
    assert "FAILED" not in summary and "not run" not in summary


@pytest.mark.parametrize("version", ["10.3.0", "11.4.0.106"])
def test_an_exported_model_users_bring_builds_and_runs(fake_trt, tmp_path: Path, version: str) -> None:
    """An anomalib-style graph (dynamic batch, ImageNet normalisation inside, pred_score/anomaly_map): the
    prepared, pinned copy builds on TensorRT 10 (FP16 flag) and 11 (strongly typed) and reads back its outputs."""
    need("emulate", "onnxconverter_common")
    from support.exported_models import anomaly_onnx, exported_card

    from bench.models.cards import card_from_file
    from bench.models.prepare import prepare_exported

    fake_trt(version)
    source = anomaly_onnx(tmp_path / "model.onnx", normalise_inside=True, dynamic=True)
    card = card_from_file(exported_card(tmp_path / "byo.yaml", source))
    batch = np.random.default_rng(0).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    prepared = prepare_exported(card, source, "widget", [batch], tmp_path / "exports")
    model = prepared.export.exported
    assert model.input_shape == (1, 3, 32, 32) and model.onnx_path != source  # pinned copy
    dev = device(tmp_path)
    artifact = dev.compile(model, tmp_path / "a")
    with dev.open(artifact) as session:
        result = session.infer(batch)
    reference = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"]).run(None,
                                                                                                 {"input": batch})
    np.testing.assert_allclose(result.outputs["pred_score"].reshape(-1), reference[0].reshape(-1), atol=2e-2)
    np.testing.assert_allclose(result.outputs["anomaly_map"], reference[1], atol=2e-2)
