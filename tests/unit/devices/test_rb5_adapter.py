"""The RB5 adapter against FAKE qai_hub and adbutils modules (tests/fakes), which follow the real clients'
signatures, job states and failure modes; plus a real AI Hub integration test where a token is configured."""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper
from support import paths
from support.cli import run_cli
from support.onnx_graphs import conv_onnx, exported
from support.tiny_model import write_tiny_onnx

from bench.devices.base import DeviceProfile
from bench.devices.rb5 import BoardSettings, HubSettings
from bench.devices.rb5.adapter import RB5Device, hub_config_path
from bench.devices.rb5.aihub import (
    AIHubError,
    AIHubRefused,
    channel_last_names,
    classify,
    profile_times_ms,
    submitted,
)
from bench.devices.rb5.qnn_adb import BoardError, netrun_us
from bench.errors import BadInput, DeviceFailure
from bench.records import load_run

FAKES = paths.FAKES
TOKEN = "secret-token-123"
VIEWER = "#!/bin/sh\necho 'Execute Stats (Average):'\necho '    NetRun: 3150 us'\necho '    Backend (GPU): 3012 us'\n"


def forget(*prefixes: str) -> None:
    for name in [n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in prefixes)]:
        del sys.modules[name]


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The FAKE qai_hub imported as qai_hub, with a client configuration holding a token."""
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {TOKEN}\napi_url = https://workbench.aihub.qualcomm.com\n")
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(ini))
    for key in [k for k in os.environ if k.startswith("FAKE_AIHUB_")]:
        monkeypatch.delenv(key)
    monkeypatch.syspath_prepend(str(FAKES / "qai_hub_site"))
    forget("qai_hub")
    import qai_hub

    yield qai_hub
    forget("qai_hub")


def rb5(**runtime: object) -> RB5Device:
    aihub = {"backoff_s": 0.0, **runtime.pop("aihub", {})}  # type: ignore[dict-item]
    return RB5Device(DeviceProfile(name="rb5", kind="rb5", precision="fp16", source=Path("rb5.yaml"),
                                   runtime={"transport": "aihub", "aihub": aihub, **runtime}))


def test_settings_and_error_classes() -> None:
    with pytest.raises(BadInput, match=r"rb5\.yaml: runtime: aihub: unknown key\(s\) devic; valid: backoff_s"):
        rb5(aihub={"devic": "x"})
    with pytest.raises(BadInput, match=r"rb5\.yaml: runtime: transport: unknown 'usb' \(one of aihub, adb\)"):
        rb5(transport="usb")
    assert rb5(aihub={"device_attributes": "chipset:a"}).settings.aihub.device_attributes == ("chipset:a",)
    assert rb5(adb=None).settings.adb.chunk_images == 32
    assert classify("Failed to authenticate.") == "auth"
    assert classify("QAIRT converter failed with exit code 1") == "unsupported"
    assert classify("Too Many Requests: please slow down and try again soon.") == "quota"
    assert classify("Waiting for device timed out") == "other"
    assert profile_times_ms({"execution_summary": {"estimated_inference_time": 4200}}) == \
        ([4.2], "estimated_inference_time")
    assert netrun_us("Execute Stats (Overall):\n NetRun: 999 us\nExecute Stats (Average):\n NetRun: 3150 us\n") == 3150


@pytest.fixture
def client_waits(hub, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The fake client's own rate-limit waits (qai-hub 0.56.0 Client._api_call_with_retry), recorded, not slept."""
    waits: list[float] = []
    monkeypatch.setattr(hub.client, "_sleep", waits.append)
    return waits


def test_the_fake_client_retries_rate_limits_itself_unless_retry_is_false(hub, client_waits: list[float],
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    model, qcs = hub.Model(b"x", "m"), hub.Device("QCS8550 (Proxy)")
    monkeypatch.setenv("FAKE_AIHUB_RATE_LIMITED", "2")
    assert hub.submit_inference_job(model, qcs, profile=True).job_id and client_waits == [20, 40]
    monkeypatch.setenv("FAKE_AIHUB_RATE_LIMITED", "99")
    with pytest.raises(hub.client.RateLimitedError, match="Too Many Requests"):
        hub.submit_inference_job(model, qcs, profile=True, retry=False)
    assert client_waits == [20, 40]
    with pytest.raises(hub.client.RateLimitedError, match="after retrying for 10 minutes"):
        hub.submit_inference_job(model, qcs, profile=True)
    assert client_waits[2:] == [20, 40] + [60] * 10  # stops once more than 600 s were spent waiting
    assert not hasattr(hub, "RateLimitedError")  # 0.56.0 keeps it out of qai_hub's names


def _creates_from_now(hub, count: int) -> str:
    return str(hub._state["creates"] + count)


def test_the_adapter_owns_the_retries_and_the_client_does_not_retry_underneath(
        hub, client_waits: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr("bench.devices.rb5.aihub.time.sleep", waits.append)
    device = rb5(aihub={"backoff_s": 1.0, "retries": 3})
    monkeypatch.setenv("FAKE_AIHUB_RATE_LIMITED", _creates_from_now(hub, 2))
    artifact = device.compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    session = device.open(artifact)
    monkeypatch.setenv("FAKE_AIHUB_RATE_LIMITED", _creates_from_now(hub, 2))
    session.device_timing([np.zeros((1, 3, 16, 16), np.float32)], 5)
    assert waits == [1.0, 2.0, 1.0, 2.0] and client_waits == []  # retry=False: no 20-second waits underneath
    monkeypatch.setenv("FAKE_AIHUB_RATE_LIMITED", _creates_from_now(hub, 99))
    with pytest.raises(AIHubError, match=r"profile failed after 4 attempts: .*HTTP 429.*Too Many Requests") as err:
        session.device_timing([np.zeros((1, 3, 16, 16), np.float32)], 5)
    assert err.value.exit_code == 5 and client_waits == [] and waits[4:] == [1.0, 2.0, 4.0]


def test_only_transient_failures_are_retried(hub, client_waits: list[float], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    settings = HubSettings(retries=3, backoff_s=1.0)
    model, qcs = hub.Model(b"x", "m"), hub.Device("QCS8550 (Proxy)")
    for variable in ("FAKE_AIHUB_UNAVAILABLE", "FAKE_AIHUB_TRANSIENT"):  # hub 503, a lost connection
        monkeypatch.setenv(variable, _creates_from_now(hub, 2))
        assert submitted(hub.submit_inference_job, "profile", settings, sleep=waits.append, model=model, device=qcs)
        assert waits == [1.0, 2.0]
        waits.clear()
    monkeypatch.setenv("FAKE_AIHUB_STORAGE_STATUS", "403")  # a 4xx from the storage service: the client's InternalError
    uploads = hub._state["uploads"]
    with pytest.raises(AIHubError, match=r"compile failed: Internal API failure\. .*status code 403") as err:
        rb5(aihub={"backoff_s": 1.0}).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    assert hub._state["uploads"] == uploads + 1 and err.value.exit_code == 5  # not retried


def test_compile_downloads_a_dlc_and_records_the_job(hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.devices.rb5.adapter.installed_version", {"qai-hub": "0.56.0"}.get)
    artifact = rb5().compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    assert artifact.path.name == "model.dlc" and artifact.path.is_file()
    details = artifact.details
    assert details["compile_job_id"].startswith("j") and details["aihub_device"] == "QCS8550 (Proxy)"
    assert details["compile_job_url"].endswith(f"/jobs/{details['compile_job_id']}/")
    assert details["output_shapes"] == {"score": [], "patch_scores": [1, 1, 4, 4]}
    assert artifact.toolchain["qai-hub"] == "0.56.0"
    by_chipset = rb5(aihub={"device_attributes": ["chipset:qualcomm-qcs8550-proxy"]})
    assert by_chipset.compile(exported(tmp_path / "m.onnx"), tmp_path / "b").details["aihub_device"] == \
        "QCS8550 (Proxy)"


@pytest.mark.parametrize("setup, aihub, error, words", [
    ({"FAKE_AIHUB_UNSUPPORTED": "Conv"}, {}, AIHubError, ["compile job", "op Conv is not supported", "/jobs/"]),
    ({}, {"device": "RB5 Gen 2"}, AIHubRefused, ["RB5 Gen 2", "is not available"]),
    ({"FAKE_AIHUB_RATE_LIMITED": "99"}, {}, AIHubError, ["quota or rate limits (HTTP 429)", "Too Many Requests"]),
    ({"FAKE_AIHUB_WAIT_TIMEOUT": "1"}, {"timeout_s": 7}, AIHubError, ["did not finish within 7 s"]),
    ({"token": "bad"}, {}, AIHubRefused, ["authentication failed", "qai-hub configure"]),
    ({"token": "missing"}, {}, AIHubRefused, ["Failed to load client configuration file"]),
])
def test_failures_are_one_clear_line(hub, client_waits: list[float], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                     setup: dict, aihub: dict, error: type, words: list[str]) -> None:
    for key, value in setup.items():
        if key == "token" and value == "missing":
            monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
        elif key == "token":
            Path(os.environ["QAIHUB_CLIENT_INI"]).write_text(f"[api]\napi_token = {value}\n")
        else:
            monkeypatch.setenv(key, value)
    monkeypatch.setattr("bench.devices.rb5.adapter.RB5Device._hub_status", lambda self: (True, "checked by the client"))
    with pytest.raises(error) as err:
        rb5(aihub=aihub).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    message = str(err.value)
    assert all(word in message for word in words), message
    assert "\n" not in message.split("┌")[0]
    assert err.value.exit_code == (2 if error is AIHubRefused else 5) and client_waits == []


def test_missing_client_is_reported_before_any_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bench.devices.rb5.adapter.installed_version", {}.get)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    assert rb5().availability() == (False, "qai-hub is not installed: pip install -e '.[rb5]'")
    assert rb5().toolchain()["qai-hub"] == "not installed"


def test_missing_token_is_reported_before_any_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("bench.devices.rb5.adapter.installed_version", {"qai-hub": "0.56.0"}.get)
    monkeypatch.setenv("QAIHUB_CLIENT_INI", str(tmp_path / "none.ini"))
    ok, reason = rb5().availability()
    assert not ok and reason.startswith(f"no AI Hub token: {tmp_path / 'none.ini'} not found")


def test_session_chunks_caches_and_times_with_a_profile(hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = conv_onnx(tmp_path / "m.onnx")
    device = rb5(aihub={"chunk_images": 3, "max_profiler_iterations": 50})
    artifact = device.compile(exported(path), tmp_path / "a")
    session = device.open(artifact)
    assert session.chunk == 3 and session.timing_source == "device_profiler"
    batches = [np.random.default_rng(i).normal(size=(1, 3, 16, 16)).astype(np.float32) for i in range(3)]
    results = session.infer_many(batches)
    host = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, result in zip(batches, results, strict=True):
        score, patches = host.run(["score", "patch_scores"], {"image": batch})
        assert result.outputs["patch_scores"].shape == (1, 1, 4, 4)  # no channel-last option: the model's layout
        np.testing.assert_allclose(result.outputs["patch_scores"], patches, rtol=1e-6)
        np.testing.assert_allclose(result.outputs["score"], score, rtol=1e-6)
    assert hub.get_model(artifact.details["target_model_id"]).producer.options == "--target_runtime qnn_dlc"
    jobs_before = hub._state["inference_jobs"]
    again = device.open(artifact).infer_many(batches)  # a resumed run: the finished chunk is not submitted again
    assert hub._state["inference_jobs"] == jobs_before
    np.testing.assert_array_equal(again[0].outputs["score"], results[0].outputs["score"])
    timing = session.device_timing(batches, 20)
    assert len(timing.latencies_ms) == 50 and min(timing.latencies_ms) == pytest.approx(4.1)
    assert "all_inference_times" in timing.source and timing.details["peak_memory_bytes"] == 52_428_800
    audit = session.audit()
    assert [j["kind"] for j in audit["aihub_jobs"]] == ["inference", "profile"]
    monkeypatch.setenv("FAKE_AIHUB_PARTIAL", "1")
    with pytest.raises(AIHubError, match="partial result"):
        session.infer_many(batches[:2])


def square_onnx(path: Path) -> Path:
    """A model whose 4-D output is (1, 4, 4, 4): channels equal height and width, so its shape cannot tell
    channel-first from channel-last."""
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["image", "w"], ["conv"]),
             helper.make_node("AveragePool", ["conv"], ["patch_scores"], kernel_shape=[4, 4], strides=[4, 4]),
             helper.make_node("ReduceMax", ["patch_scores"], ["score"], keepdims=0)]
    graph = helper.make_graph(
        nodes, "square", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("patch_scores", TensorProto.FLOAT, [1, 4, 4, 4])],
        initializer=[numpy_helper.from_array(rng.normal(size=(4, 3, 1, 1)).astype(np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), path)
    return path


CHANNEL_LAST = "--target_runtime qnn_dlc --force_channel_last_input image --force_channel_last_output patch_scores"


def _host(path: Path, batch: np.ndarray) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(["score", "patch_scores"],
                                                                                    {"image": batch})


def test_channel_last_tensors_follow_the_compile_options(hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = square_onnx(tmp_path / "sq.onnx")
    batch = np.random.default_rng(2).normal(size=(1, 3, 16, 16)).astype(np.float32)
    score, patches = _host(path, batch)
    for options in ("--target_runtime qnn_dlc", CHANNEL_LAST):
        device = rb5(aihub={"compile_options": options})
        result = device.open(device.compile(exported(path), tmp_path / options[-5:])).infer(batch)
        np.testing.assert_allclose(result.outputs["patch_scores"], patches, rtol=1e-6, err_msg=options)
        np.testing.assert_allclose(result.outputs["score"], score, rtol=1e-6)


# ------------------------------------------------------------------ a board over adb


@pytest.fixture
def board(hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """The FAKE adbutils with one board, rb5-lab-01, and a host QNN SDK for its target."""
    sdk = tmp_path / "qairt"
    for rel in ("bin/aarch64-oe-linux-gcc11.2/qnn-net-run", "lib/aarch64-oe-linux-gcc11.2/libQnnGpu.so",
                "lib/aarch64-oe-linux-gcc11.2/libQnnSystem.so", "lib/aarch64-oe-linux-gcc11.2/libQnnModelDlc.so"):
        (sdk / rel).parent.mkdir(parents=True, exist_ok=True)
        (sdk / rel).write_bytes(b"\x7fELF fake")
    (tmp_path / "board").mkdir()
    for key in [k for k in os.environ if k.startswith("FAKE_ADB_") or k == "ANDROID_SERIAL"]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("FAKE_ADB_ROOT", str(tmp_path / "board"))
    monkeypatch.setenv("FAKE_ADB_SERIAL", "rb5-lab-01")
    monkeypatch.syspath_prepend(str(FAKES / "adb_site"))
    forget("adbutils")
    yield BoardSettings(qnn_sdk=str(sdk), timeout_s=9)
    forget("adbutils")


def _board_session(hub, tmp_path: Path, settings: BoardSettings, options: str = "--target_runtime qnn_dlc"):
    from bench.devices.rb5.qnn_adb import QnnBoardSession

    artifact = rb5(aihub={"compile_options": options}).compile(exported(square_onnx(tmp_path / "sq.onnx")),
                                                                tmp_path / "a")
    return QnnBoardSession(artifact.path, "image", (1, 3, 16, 16), {"score": (), "patch_scores": (1, 4, 4, 4)},
                           settings, options)


def test_board_runs_channel_last_dlcs_and_pushes_into_folders(board: BoardSettings, hub, tmp_path: Path) -> None:
    batch = np.random.default_rng(3).normal(size=(1, 3, 16, 16)).astype(np.float32)
    score, patches = _host(square_onnx(tmp_path / "host.onnx"), batch)
    for options in ("--target_runtime qnn_dlc", CHANNEL_LAST):
        session = _board_session(hub, tmp_path, board, options)
        remote = tmp_path / "board" / board.remote_dir.lstrip("/")
        assert sorted(p.name for p in remote.iterdir()) == ["libQnnGpu.so", "libQnnModelDlc.so", "libQnnSystem.so",
                                                              "model.dlc", "qnn-net-run"]
        result = session.infer(batch)
        np.testing.assert_allclose(result.outputs["patch_scores"], patches, rtol=1e-6, err_msg=options)
        np.testing.assert_allclose(result.outputs["score"], score, rtol=1e-6)
        session.close()


def test_a_pull_that_brings_back_nothing_is_detected(board: BoardSettings, hub, tmp_path: Path) -> None:
    import dataclasses

    settings = dataclasses.replace(board, extra_args="--output_dir /data/local/tmp/elsewhere")
    session = _board_session(hub, tmp_path, settings)
    with pytest.raises(BoardError, match=r"adb pull .*/run1/out brought back nothing \(0 bytes\)"):
        session.infer(np.zeros((1, 3, 16, 16), np.float32))


def test_several_boards_and_a_silent_board_are_one_line(board: BoardSettings, hub, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.devices.rb5.qnn_adb import connect

    monkeypatch.setenv("FAKE_ADB_SERIAL", "rb5-lab-02,rb5-lab-01")
    with pytest.raises(BadInput, match=r"several boards are connected over adb \(rb5-lab-01, rb5-lab-02\) and none "
                                       r"is named: set runtime\.adb\.serial"):
        connect(None)
    assert connect("rb5-lab-02").serial == "rb5-lab-02"
    monkeypatch.setenv("ANDROID_SERIAL", "rb5-lab-01")  # adbutils' own fallback, before it lists the boards
    assert connect(None).serial == "rb5-lab-01"
    monkeypatch.setenv("FAKE_ADB_SILENT", "1")
    session = _board_session(hub, tmp_path, board)
    with pytest.raises(BoardError, match=r"'LD_LIBRARY_PATH=.*' gave no output for 9 s \(adb read timeout\)") as err:
        session.infer(np.zeros((1, 3, 16, 16), np.float32))
    assert isinstance(err.value, DeviceFailure) and err.value.exit_code == 5


# ------------------------------------------------------------------ whole runs


def lab(tmp_path: Path, transport: str, **aihub: object) -> dict[str, str]:
    profiles = tmp_path / "devices"
    profiles.mkdir()
    profile = yaml.safe_load((paths.REPO / "devices" / "rb5.yaml").read_text())
    profile["runtime"]["transport"] = transport
    profile["runtime"]["aihub"].update(backoff_s=0.0, **aihub)
    sdk = tmp_path / "qairt"
    for rel in ("bin/aarch64-oe-linux-gcc11.2/qnn-net-run", "lib/aarch64-oe-linux-gcc11.2/libQnnGpu.so",
                "lib/aarch64-oe-linux-gcc11.2/libQnnSystem.so", "lib/aarch64-oe-linux-gcc11.2/libQnnModelDlc.so"):
        (sdk / rel).parent.mkdir(parents=True, exist_ok=True)
        (sdk / rel).write_bytes(b"\x7fELF fake")
    viewer = sdk / "bin/x86_64-linux-clang/qnn-profile-viewer"
    viewer.parent.mkdir(parents=True)
    viewer.write_text(VIEWER)
    viewer.chmod(0o755)
    profile["runtime"]["adb"].update(qnn_sdk=str(sdk), serial="rb5-lab-01")
    (profiles / "rb5.yaml").write_text(yaml.safe_dump(profile))
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {TOKEN}\n")
    (tmp_path / "board").mkdir()
    return {"BENCH_DEVICES_DIR": str(profiles), "QAIHUB_CLIENT_INI": str(ini), "FAKE_ADB_ROOT": str(tmp_path / "board"),
            "FAKE_ADB_SERIAL": "rb5-lab-01", "PYTHONPATH": os.pathsep.join(
                [str(FAKES / "qai_hub_site"), str(FAKES / "adb_site"), os.environ.get("PYTHONPATH", "")])}


def rb5_run(small_demo: dict, tmp_path: Path, env: dict[str, str], *extra: str):
    args = ["run", "--device", "rb5", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]),
            "--checkpoint", str(small_demo["checkpoint"]), "--backbone-weights", str(small_demo["backbone"]),
            "--categories", "washer", "--limit", "6", "--warmup", "1", "--min-count", "3", "--min-duration", "0",
            "--out", str(tmp_path / "results"), *extra]
    return run_cli(args, cwd=tmp_path, env={"BENCH_CACHE_DIR": str(tmp_path / "cache"), **env})


@pytest.mark.slow
def test_bench_run_through_aihub(small_demo: dict, tmp_path: Path) -> None:
    done = rb5_run(small_demo, tmp_path, lab(tmp_path, "aihub", chunk_images=4, max_profiler_iterations=40))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next((tmp_path / "results").iterdir())
    record = load_run(run_dir)
    progress = record.manifest["progress"]["washer"]
    assert progress["timing_source"] == "device_profiler" and progress["timing"]["count"] == 40
    assert [j["kind"] for j in progress["session"]["aihub_jobs"]] == ["inference", "inference", "profile"]
    timed = record.latency.query("phase == 'timed'")
    assert len(timed) == 40 and (timed["latency_ms"] == timed["device_ms"]).all()
    assert timed["t_start_ns"].isna().all() and set(timed["timing_source"]) == {"device_profiler"}
    washer = record.metrics["categories"]["washer"]
    assert washer["timing_source"] == "device_profiler" and washer["window_s"] is None
    assert washer["p50_ms"] == pytest.approx(float(np.median(timed["device_ms"])))
    assert washer["energy_mj_per_inference"] is None and washer["gmac_per_j"] is None
    assert washer["energy_note"].startswith("Qualcomm AI Hub reports no power")
    details = record.manifest["model"]["categories"]["washer"]["artifact_details"]
    assert details["compile_job_id"] and details["aihub_device"] == "QCS8550 (Proxy)"
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"the API token leaked into {path}"


@pytest.mark.slow
def test_bench_run_on_a_board_over_adb_and_a_board_that_drops(small_demo: dict, tmp_path: Path) -> None:
    env = lab(tmp_path, "adb")
    done = rb5_run(small_demo, tmp_path, {**env, "BENCH_RESULTS_DIR": str(tmp_path / "results")})
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(next((tmp_path / "results").iterdir()))
    timed = record.latency.query("phase == 'timed'")
    assert len(timed) >= 3 and np.allclose(timed["device_ms"], 3.15)
    board = record.metrics["categories"]["washer"]  # qnn-net-run's execute time, not the adb round trips
    assert board["timing_source"] == "device_clock" and board["p50_ms"] == pytest.approx(3.15)
    assert record.manifest["progress"]["washer"]["session"]["board"] == "rb5-lab-01"
    assert record.images["score"].notna().all()
    dropped = tmp_path / "dropped"
    dropped.mkdir()
    done = rb5_run(small_demo, dropped, {**env, "FAKE_ADB_DROP_AFTER": "3"})  # warm-up, accuracy, then gone
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "the board may have dropped" in last and "rb5-lab-01" in last
    failed = load_run(next((dropped / "results").iterdir()))
    assert failed.manifest["status"] == "failed" and len(failed.images) > 0


def _real_aihub() -> str | None:
    if importlib.util.find_spec("qai_hub") is None:
        return "qai-hub is not installed (pip install -e '.[rb5]')"
    if not hub_config_path().is_file():
        return f"no AI Hub token configured ({hub_config_path()} missing; qai-hub configure --api_token <token>)"
    return None


@pytest.mark.skipif(_real_aihub() is not None, reason=str(_real_aihub()))
def test_real_aihub_compiles_and_profiles_a_tiny_model(tmp_path: Path) -> None:
    device = rb5(aihub={"max_profiler_iterations": 10})
    artifact = device.compile(exported(write_tiny_onnx(tmp_path / "t.onnx")), tmp_path / "a")
    session = device.open(artifact)
    timing = session.device_timing([np.zeros((1, 3, 16, 16), np.float32)], 10)
    assert timing.latencies_ms and all(t > 0 for t in timing.latencies_ms)
    print(json.dumps({"compile_job": artifact.details["compile_job_id"], "timing": timing.source}))


def _load_fake(name: str, path: Path):
    """The fake package under another name, beside the real one (its submodules load relative to it)."""
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=[str(path.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        forget(name)
    return module


def _params(fn: object) -> list[str]:
    return [p for p in inspect.signature(fn).parameters if p != "self"]


@pytest.mark.skipif(importlib.util.find_spec("qai_hub") is None, reason="the real qai-hub is not installed")
def test_fake_qai_hub_keeps_the_real_signatures() -> None:
    import qai_hub as real

    fake = _load_fake("fake_qai_hub", FAKES / "qai_hub_site" / "qai_hub" / "__init__.py")
    for name in ("submit_compile_job", "submit_inference_job", "submit_profile_job", "get_model", "upload_model",
                 "upload_dataset"):
        assert _params(getattr(fake, name)) == _params(getattr(real, name)), name
    assert _params(fake.Device) == _params(real.Device)
    assert set(real.JobStatus.State.__members__) >= set(fake.JobStatus.State.__members__)
    for error in ("Error", "UserError", "InternalError"):
        assert hasattr(real, error) and hasattr(fake, error)
    assert hasattr(real, "RateLimitedError") == hasattr(fake, "RateLimitedError")
    assert issubclass(real.client.RateLimitedError, real.Error) and issubclass(fake.client.RateLimitedError, fake.Error)
    assert real.client.RATE_LIMIT_RETRY_TIMEOUT == fake.client.RATE_LIMIT_RETRY_TIMEOUT
    assert set(_params(fake.InferenceJob.wait)) == set(_params(real.InferenceJob.wait))
    assert _params(fake.public_rest_api.APIException) == _params(real.public_rest_api.APIException)


@pytest.mark.skipif(importlib.util.find_spec("adbutils") is None, reason="the real adbutils is not installed")
def test_fake_adbutils_keeps_the_real_signatures() -> None:
    import adbutils as real

    fake = _load_fake("fake_adbutils", FAKES / "adb_site" / "adbutils" / "__init__.py")
    assert _params(fake.AdbClient.device) == _params(real.AdbClient.device)
    assert _params(fake.AdbDevice.shell2) == _params(real.AdbDevice.shell2)
    assert _params(fake.AdbClient.device_list) == _params(real.AdbClient.device_list)
    assert _params(fake.Sync.push) == _params(real.Sync.push)
    assert _params(fake.Sync.pull) == _params(real.Sync.pull)
    assert issubclass(real.AdbTimeout, real.AdbError) and issubclass(fake.AdbTimeout, fake.AdbError)


def test_channel_last_options_are_read_in_both_spellings() -> None:
    flag = "--force_channel_last_output"
    assert channel_last_names(f"--target_runtime qnn_dlc {flag} score,map", flag) == {"score", "map"}
    assert channel_last_names(f"{flag}=score,map --quantize_io", flag) == {"score", "map"}
    assert channel_last_names("--force_channel_last_input image", flag) == frozenset()


def test_an_exported_model_users_bring_compiles_and_runs_on_ai_hub_and_the_board(
        hub, board: BoardSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An anomalib-style graph: its input name ('input') and outputs (pred_score, anomaly_map) travel through the
    AI Hub compile and inference jobs, and qnn-net-run on a board over adb, as the exported model states them."""
    from support.exported_models import anomaly_onnx, exported_card

    from bench.devices.rb5.qnn_adb import QnnBoardSession
    from bench.models.cards import card_from_file
    from bench.models.prepare import prepare_exported

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    source = anomaly_onnx(tmp_path / "model.onnx", normalise_inside=True, dynamic=True)
    card = card_from_file(exported_card(tmp_path / "byo.yaml", source))
    batch = np.random.default_rng(0).uniform(0, 1, (1, 3, 32, 32)).astype(np.float32)
    model = prepare_exported(card, source, "widget", [batch], tmp_path / "exports").export.exported
    device = rb5()
    artifact = device.compile(model, tmp_path / "a")
    assert artifact.details["output_shapes"] == {"pred_score": [], "anomaly_map": [1, 1, 32, 32]}
    (result,) = device.open(artifact).infer_many([batch])
    reference = ort.InferenceSession(str(model.onnx_path), providers=["CPUExecutionProvider"]).run(None,
                                                                                                 {"input": batch})
    np.testing.assert_allclose(result.outputs["pred_score"], reference[0], rtol=1e-6)
    np.testing.assert_allclose(result.outputs["anomaly_map"], reference[1], rtol=1e-6)
    shapes = {"pred_score": (), "anomaly_map": (1, 1, 32, 32)}
    board_session = QnnBoardSession(artifact.path, "input", (1, 3, 32, 32), shapes, board, "--target_runtime qnn_dlc")
    on_board = board_session.infer(batch)
    board_session.close()
    np.testing.assert_allclose(on_board.outputs["pred_score"], reference[0], rtol=1e-6)
    np.testing.assert_allclose(on_board.outputs["anomaly_map"], reference[1], rtol=1e-6)
