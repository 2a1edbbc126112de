"""The IMX500 adapter: real MCT + real imxconv-pt on the host; the Pi side against FAKE picamera2 and a
FAKE imx500-package (tests/fakes/picamera2_site), which follow the real API and its failure modes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from support import paths
from support.cli import run_cli
from support.extras import need, requires
from support.fake_boards import fake_command
from support.paths import REPO

from bench.devices.base import Artifact, DeviceProfile
from bench.devices.imx500.adapter import IMX500Device
from bench.devices.imx500.session import InjectionFailed, fit_output, frame_offset
from bench.errors import BadInput
from bench.records import load_run

PICAMERA_FAKES = paths.FAKES / "picamera2_site"
PACKAGER = ('#!/bin/sh\n# FAKE imx500-package: -i packerOut.zip -o OUTDIR -> OUTDIR/network.rpk\n'
            'cp "$2" "$4/network.rpk"\n')


def profile(**runtime: object) -> DeviceProfile:
    return DeviceProfile(name="imx500", kind="imx500", precision="int8", source=Path("imx500.yaml"),
                         runtime={"representative_images": 4, **runtime})


def test_frame_offsets_wrap_at_the_8_bit_counter() -> None:
    assert frame_offset(10, 10) == 0 and frame_offset(12, 10) == 2 and frame_offset(8, 10) == -2
    assert frame_offset(1, 255) == 2 and frame_offset(254, 1) == -3


def test_outputs_are_fitted_to_the_model_shapes() -> None:
    grid = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert fit_output(grid[None, None], (1, 1, 4, 4), "p").shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(fit_output(grid.T[None], (1, 1, 4, 4), "p")[0, 0], grid.T)
    np.testing.assert_array_equal(fit_output(np.arange(6.0).reshape(3, 2)[None], (1, 2, 3), "p")[0],
                                  np.arange(6.0).reshape(3, 2).T)
    assert fit_output(np.array([[0.7]]), (), "score").shape == ()
    with pytest.raises(InjectionFailed, match="output 'p' has shape"):
        fit_output(np.zeros((1, 5)), (1, 1, 4, 4), "p")


def test_runtime_settings_are_typed_and_unknown_keys_refused() -> None:
    assert IMX500Device(profile(frame_rate=30)).settings.frame_rate == 30
    with pytest.raises(BadInput, match=r"imx500\.yaml: runtime: unknown key\(s\) frame_rat; valid: calibration"):
        IMX500Device(profile(frame_rat=30))
    with pytest.raises(BadInput, match=r"imx500\.yaml: runtime: calibration: unknown 'test-set'"):
        IMX500Device(profile(calibration="test-set"))


def test_availability_names_what_the_pi_lacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setitem(sys.modules, "picamera2", None)
    ok, reason = IMX500Device(profile()).availability()
    assert not ok and "imx500-package (Raspberry Pi only: sudo apt install imx500-tools)" in reason
    assert "picamera2 (sudo apt install python3-picamera2)" in reason


def test_packaging_without_the_pi_tool_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    packer = tmp_path / "packerOut.zip"
    packer.write_bytes(b"zip")
    artifact = Artifact(packer, "0", "int8", {}, "0")
    with pytest.raises(BadInput, match=r"imx500-package not found: packaging network\.rpk runs on the Raspberry Pi"):
        IMX500Device(profile()).package(artifact)
    fake_command(tmp_path / "bin", "imx500-package", "", exit_code=3)
    with pytest.raises(Exception, match="imx500-package failed \\(exit 3\\)"):
        IMX500Device(profile(packager=str(tmp_path / "bin" / "imx500-package"))).package(artifact)


def test_compile_without_the_converter_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_IMXCONV_ENV", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    from bench.devices.base import ExportedModel

    with pytest.raises(BadInput, match=r"python -m bench\.devices\.imx500\.converter install"):
        IMX500Device(profile()).compile(ExportedModel(tmp_path / "m.onnx", "0", "image", (1, 3, 8, 8), ("score",)),
                                        tmp_path / "a")


# ------------------------------------------------------------------ the whole chain on the demo


def pi_env(tmp_path: Path, converter: Path, **faults: str) -> dict[str, str]:
    """The fake Pi: packager and picamera2 on the paths, and the imx500 profile with a per-image deadline the
    test sets (the fake sensor runs the INT8 model in ONNX Runtime, seconds per image on a loaded machine)."""
    import yaml

    profile = yaml.safe_load((REPO / "devices" / "imx500.yaml").read_text())
    profile["runtime"]["timeout_s"] = 300
    (tmp_path / "devices").mkdir(exist_ok=True)
    (tmp_path / "devices" / "imx500.yaml").write_text(yaml.safe_dump(profile))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "imx500-package").write_text(PACKAGER)
    (bin_dir / "imx500-package").chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "BENCH_IMXCONV_ENV": str(converter.parent.parent),
            "BENCH_DEVICES_DIR": str(tmp_path / "devices"),
            "PYTHONPATH": os.pathsep.join([str(PICAMERA_FAKES), os.environ.get("PYTHONPATH", "")]), **faults}


def imx500_run(small_demo: dict, out: Path, env: dict[str, str], *extra: str):
    args = ["run", "--device", "imx500", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]),
            "--checkpoint", str(small_demo["checkpoint"]), "--backbone-weights", str(small_demo["backbone"]),
            "--categories", "washer", "--limit", "6", "--warmup", "1", "--min-count", "5", "--min-duration", "0",
            "--out", str(out), *extra]
    return run_cli(args, cwd=out.parent, env={"BENCH_CACHE_DIR": str(small_demo["cache"]), **env})


@pytest.fixture(scope="module")
def emulated(small_demo: dict, tmp_path_factory: pytest.TempPathFactory):
    need("imx500", "model_compression_toolkit")
    out = tmp_path_factory.mktemp("imx500-emu") / "results"
    done = imx500_run(small_demo, out, {}, "--emulate")
    assert done.returncode == 0, done.stderr[-3000:]
    return load_run(next(out.iterdir()))


@pytest.mark.slow
@requires("imx500", "model_compression_toolkit", "mct_quantizers", "OpenEXR")
def test_device_run_matches_its_emulation(small_demo: dict, converter_cli: Path, emulated, tmp_path: Path) -> None:
    done = imx500_run(small_demo, tmp_path / "results", pi_env(tmp_path, converter_cli, FAKE_IMX500_DROP_EVERY="3"))
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(next((tmp_path / "results").iterdir()))
    entry = record.manifest["model"]["categories"]["washer"]
    details = entry["artifact_details"]
    assert details["conversion"]["memory"]["fits"] and details["conversion"]["packer_zip"] == "packerOut.zip"
    emulated_entry = emulated.manifest["model"]["categories"]["washer"]
    calibrated = details["quantization"]["representative_images"]
    assert calibrated > 0 and calibrated == emulated_entry["artifact_details"]["quantization"]["representative_images"]
    assert details["mctq_onnx_sha256"] == emulated_entry["artifact_details"]["mctq_onnx_sha256"]  # the same model
    device = record.images.set_index("image_id")["score"]
    host = emulated.images.set_index("image_id")["score"]
    assert device.notna().all() and len(device) == len(host)
    np.testing.assert_allclose(device.loc[host.index], host, atol=0.02)  # 8-bit pixels vs float pixels
    timed = record.latency.query("phase == 'timed'")
    assert len(timed) >= 5 and np.allclose(timed["device_ms"], 4.2 + 0.85)
    washer = record.metrics["categories"]["washer"]  # the sensor's KPI, not the host's wait for the frame
    assert washer["timing_source"] == "device_clock" and washer["p50_ms"] == pytest.approx(4.2 + 0.85)


@pytest.mark.slow
@requires("imx500", "model_compression_toolkit", "mct_quantizers", "OpenEXR")
def test_a_camera_that_disappears_keeps_the_record(small_demo: dict, converter_cli: Path, tmp_path: Path) -> None:
    done = imx500_run(small_demo, tmp_path / "results", pi_env(tmp_path, converter_cli, FAKE_IMX500_FAIL_AFTER="4"))
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "Unable to set input tensor fd: [Errno 19] No such device" in last
    record = load_run(next((tmp_path / "results").iterdir()))
    assert record.manifest["status"] == "failed" and len(record.latency) > 0


@requires("export", "torch")
@requires("imx500", "model_compression_toolkit", "mct_quantizers")
def test_live_mode_records_kpi_and_frame_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming sensor frames (FAKE picamera2): per-frame KPI and timestamps, FPS from the timestamps."""
    from support.small_net import images, small_net

    from bench.devices.imx500 import live
    from bench.devices.imx500.quant import quantize_for_imx500

    quantize_for_imx500(small_net(), images(4, 32), tmp_path)
    (tmp_path / "rpk").mkdir()
    rpk = tmp_path / "rpk" / "network.rpk"
    rpk.write_bytes(b"rpk")
    monkeypatch.syspath_prepend(str(PICAMERA_FAKES))
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        monkeypatch.delitem(sys.modules, name)
    assert live.main([str(rpk), "--frames", "20", "--out", str(tmp_path / "live")]) == 0
    summary = __import__("json").loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["frames"] == summary["frames_with_output"] == 20
    assert summary["fps"] == pytest.approx(10.0) and summary["device_p50_ms"] == pytest.approx(5.05)
    assert len((tmp_path / "live" / "frames.csv").read_text().splitlines()) == 21
    assert live.main([str(tmp_path / "missing.rpk"), "--out", str(tmp_path / "x")]) == 2
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        del sys.modules[name]
