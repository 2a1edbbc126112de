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
import onnxruntime as ort
import pytest
import yaml
from support import paths
from support.cli import run_cli
from support.onnx_graphs import conv_onnx, exported
from support.tiny_model import write_tiny_onnx

from bench.devices.base import DeviceProfile
from bench.devices.rb5 import HubSettings
from bench.devices.rb5.adapter import RB5Device, hub_config_path
from bench.devices.rb5.aihub import AIHubError, classify, profile_times_ms, submitted
from bench.devices.rb5.qnn_adb import netrun_us
from bench.errors import BadInput
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
    assert classify("Job quota exceeded: too many jobs") == "quota"
    assert classify("Waiting for device timed out") == "transient"
    assert profile_times_ms({"execution_summary": {"estimated_inference_time": 4200}}) == \
        ([4.2], "estimated_inference_time")
    assert netrun_us("Execute Stats (Overall):\n NetRun: 999 us\nExecute Stats (Average):\n NetRun: 3150 us\n") == 3150


def test_transient_failures_are_retried_with_backoff(hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AIHUB_TRANSIENT", "2")
    waits: list[float] = []
    settings = HubSettings(retries=3, backoff_s=1.0)
    job = submitted(lambda: hub.submit_profile_job("x", hub.Device("QCS8550 (Proxy)")), "profile", settings,
                    sleep=waits.append)
    assert job.job_id and waits == [1.0, 2.0]
    monkeypatch.setenv("FAKE_AIHUB_TRANSIENT", "10")
    with pytest.raises(AIHubError, match="Could not connect to Qualcomm AI Hub"):
        submitted(lambda: hub.submit_profile_job("x", hub.Device("QCS8550 (Proxy)")), "profile", settings,
                  sleep=waits.append)


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


@pytest.mark.parametrize("setup, aihub, words", [
    ({"FAKE_AIHUB_UNSUPPORTED": "Conv"}, {}, ["compile job", "failed", "op Conv is not supported", "/jobs/"]),
    ({}, {"device": "RB5 Gen 2"}, ["RB5 Gen 2", "is not available"]),
    ({"FAKE_AIHUB_QUOTA": "1"}, {}, ["quota", "too many jobs"]),
    ({"FAKE_AIHUB_WAIT_TIMEOUT": "1"}, {"timeout_s": 7}, ["did not finish within 7 s"]),
    ({"token": "bad"}, {}, ["authentication failed", "qai-hub configure"]),
])
def test_failures_are_one_clear_line(hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setup: dict,
                                     aihub: dict, words: list[str]) -> None:
    for key, value in setup.items():
        if key == "token":
            Path(os.environ["QAIHUB_CLIENT_INI"]).write_text(f"[api]\napi_token = {value}\n")
        else:
            monkeypatch.setenv(key, value)
    with pytest.raises(AIHubError) as err:
        rb5(aihub=aihub).compile(exported(conv_onnx(tmp_path / "m.onnx")), tmp_path / "a")
    message = str(err.value)
    assert all(word in message for word in words), message
    assert "\n" not in message.split("┌")[0]


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
        assert result.outputs["patch_scores"].shape == (1, 1, 4, 4)  # channel-last from AI Hub, transposed back
        np.testing.assert_allclose(result.outputs["patch_scores"], patches, rtol=1e-6)
        np.testing.assert_allclose(result.outputs["score"], score, rtol=1e-6)
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
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations through sys.modules
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
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
        assert hasattr(real, error)
    assert set(_params(fake.InferenceJob.wait)) == set(_params(real.InferenceJob.wait))


@pytest.mark.skipif(importlib.util.find_spec("adbutils") is None, reason="the real adbutils is not installed")
def test_fake_adbutils_keeps_the_real_signatures() -> None:
    import adbutils as real

    fake = _load_fake("fake_adbutils", FAKES / "adb_site" / "adbutils" / "__init__.py")
    assert _params(fake.AdbClient.device) == _params(real.AdbClient.device)
    assert _params(fake.AdbDevice.shell2) == _params(real.AdbDevice.shell2)
    assert _params(fake._Sync.push) == _params(real.Sync.push)
    assert _params(fake._Sync.pull) == _params(real.Sync.pull)
    assert issubclass(real.AdbTimeout, real.AdbError)
