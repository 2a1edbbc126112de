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
from bench.devices.imx500 import IMX500Settings
from bench.devices.imx500.adapter import IMX500Device
from bench.devices.imx500.session import InjectionFailed, InjectionSession, fit_output, frame_offset
from bench.errors import BadInput, DeviceFailure
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


def test_a_failed_packaging_leaves_no_network_to_reuse(tmp_path: Path) -> None:
    """imx500-package that wrote part of network.rpk, then failed: the next run packages again, not the part."""
    packer = tmp_path / "artifact" / "packerOut.zip"
    packer.parent.mkdir()
    packer.write_bytes(b"zip")
    artifact = Artifact(packer, "0", "int8", {}, "0")
    for name, script in [("broken", '#!/bin/sh\nprintf partial > "$4/network.rpk"\nexit 1\n'), ("good", PACKAGER)]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "imx500-package").write_text(script)
        (tmp_path / name / "imx500-package").chmod(0o755)
    with pytest.raises(Exception, match=r"imx500-package failed \(exit 1\)"):
        IMX500Device(profile(packager=str(tmp_path / "broken" / "imx500-package"))).package(artifact)
    assert sorted(p.name for p in packer.parent.iterdir()) == ["packerOut.zip"]
    (packer.parent / "rpk").mkdir()  # what a failed packaging left before the scratch folder: rpk/ without the network
    (packer.parent / "rpk" / "packager.log").write_text("failed\n")
    rpk = IMX500Device(profile(packager=str(tmp_path / "good" / "imx500-package"))).package(artifact)
    assert rpk == packer.parent / "rpk" / "network.rpk" and rpk.read_bytes() == b"zip"
    assert sorted(p.name for p in packer.parent.iterdir()) == ["packerOut.zip", "rpk"]


def test_compile_without_the_converter_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCH_IMXCONV_ENV", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path))
    from bench.devices.base import ExportedModel

    with pytest.raises(BadInput, match=r"python -m bench\.devices\.imx500\.converter install"):
        IMX500Device(profile()).compile(ExportedModel(tmp_path / "m.onnx", "0", "image", (1, 3, 8, 8), ("score",)),
                                        tmp_path / "a")


# ------------------------------------------------------------------ the Pi side in this process (FAKE picamera2)


def _forget_picamera2() -> None:
    for name in [n for n in sys.modules if n == "picamera2" or n.startswith("picamera2.")]:
        del sys.modules[name]


@pytest.fixture
def fake_pi(monkeypatch: pytest.MonkeyPatch):
    """FAKE picamera2 importable in this process, with a fresh simulated board for each test."""
    monkeypatch.syspath_prepend(str(PICAMERA_FAKES))
    _forget_picamera2()
    yield
    _forget_picamera2()


@pytest.fixture(scope="module")
def pi_network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``rpk/network.rpk`` beside an MCT-quantized small network (the fake sensor runs that ONNX)."""
    need("export", "torch")
    need("imx500", "model_compression_toolkit")
    from support.small_net import images, small_net

    from bench.devices.imx500.quant import quantize_for_imx500

    out = tmp_path_factory.mktemp("imx500-net")
    quantize_for_imx500(small_net(), images(4, 32), out)
    (out / "rpk").mkdir()
    (out / "rpk" / "network.rpk").write_bytes(b"rpk")
    return out / "rpk" / "network.rpk"


def pi_session(rpk: Path) -> InjectionSession:
    """An injection session on the fake camera; pixels are the inputs (identity normalisation), generous deadline."""
    from bench.devices.imx500.quant import Normalization
    from bench.models.export import OUTPUT_NAMES

    return InjectionSession(rpk, Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), list(OUTPUT_NAMES),
                            IMX500Settings(timeout_s=300.0, max_reinjections=3))


def infer_all(session: InjectionSession, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    try:
        return [session.infer(batch).outputs for batch in batches]
    finally:
        session.close()


PI_STACK = requires("imx500", "model_compression_toolkit", "mct_quantizers", "OpenEXR")  # torch: pi_network


@PI_STACK
def test_fake_tensor_info_and_injection_checks_follow_picamera2(pi_network: Path, fake_pi: None,
                                                                tmp_path: Path) -> None:
    """The fake rejects what picamera2 0.3.38 rejects: tensor info of the wrong size, non-FLOAT or missing EXR
    channels, values outside [0, 1]; and the tensor info arrives as libcamera's packed bytes."""
    import Imath
    import OpenEXR
    from picamera2 import Picamera2
    from picamera2.devices import IMX500

    imx500 = IMX500(str(pi_network), tensor_injection=True)
    picam2 = Picamera2(imx500.camera_num)
    picam2.start(picam2.create_preview_configuration())
    metadata = picam2.capture_metadata()
    info = metadata["CnnOutputTensorInfo"]
    assert isinstance(info, bytes) and len(info) == 712
    parsed = imx500._IMX500__get_output_tensor_info(list(info))  # anything bytes() takes, as the real call
    assert parsed["frameCount"] == 1 and parsed["num_tensors"] == len(imx500.get_outputs(metadata))
    with pytest.raises(ValueError, match="tensor info length 711 does not match expected size 712"):
        imx500._IMX500__get_output_tensor_info(info[:-1])
    with pytest.raises(RuntimeError, match="No camera number 1 found"):
        Picamera2(1)

    width, height = imx500.get_input_size()

    def exr(channels: dict[str, str], value: float = 0.5) -> OpenEXR.InputFile:
        header = OpenEXR.Header(width, height)
        header["channels"] = {name: Imath.Channel(Imath.PixelType(getattr(Imath.PixelType, kind)))
                              for name, kind in channels.items()}
        path = str(tmp_path / f"{len(list(tmp_path.iterdir()))}.exr")
        out = OpenEXR.OutputFile(path, header)
        out.writePixels({name: np.full((height, width), value, np.float16 if kind == "HALF" else np.float32).tobytes()
                         for name, kind in channels.items()})
        out.close()
        return OpenEXR.InputFile(path)

    assert len(imx500.prepare_tensor_for_injection(exr(dict.fromkeys("RGB", "FLOAT")))) == 3 * 32 * 32
    with pytest.raises(ValueError, match="Channel 'R' is not of type FLOAT"):
        imx500.prepare_tensor_for_injection(exr({"R": "HALF", "G": "FLOAT", "B": "FLOAT"}))
    with pytest.raises(ValueError, match="EXR input missing required channel 'B'"):
        imx500.prepare_tensor_for_injection(exr({"R": "FLOAT", "G": "FLOAT"}))
    with pytest.raises(ValueError, match=r"Channel 'R' values not normalised to 0-1 range \(min: 1\.500"):
        imx500.prepare_tensor_for_injection(exr(dict.fromkeys("RGB", "FLOAT"), 1.5))
    for key, value in (("dtype", "int16"), ("input_format", "YUV")):  # only signed/unsigned and RGB/BGR are handled
        imx500.config["input_tensor"] = {**imx500.config["input_tensor"], key: value}
        with pytest.raises(UnboundLocalError):
            imx500.prepare_tensor_for_injection(exr(dict.fromkeys("RGB", "FLOAT")))
    picam2.close()


@PI_STACK
def test_injection_outputs_do_not_depend_on_the_networks_tensor_format(pi_network: Path, fake_pi: None,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The sensor's input tensor may be planar BGR and signed (its network_info says which); the session's EXR
    names its channels, so picamera2 lays them out and every format gives the same outputs."""
    from support.small_net import images

    batches = images(2, 32, seed=3)
    results = []
    for fmt, dtype in (("RGB", "unsigned"), ("BGR", "signed"), ("BGR", "unsigned")):
        _forget_picamera2()
        monkeypatch.setenv("FAKE_IMX500_INPUT_FORMAT", fmt)
        monkeypatch.setenv("FAKE_IMX500_INPUT_DTYPE", dtype)
        results.append(infer_all(pi_session(pi_network), batches))
    for outputs in results[1:]:
        for got, want in zip(outputs, results[0], strict=True):
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
    assert not np.array_equal(results[0][0]["patch_scores"], results[0][1]["patch_scores"])


@PI_STACK
def test_an_injection_frame_of_0_is_unknown_not_frame_0(pi_network: Path, fake_pi: None,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    """picamera2's get_injection_cmp_frm returns 0 when its ioctl fails. Here the second image is injected on frame
    255, so its output is on frame 1 (257), and the driver's answer is lost: frame 0 (256) still carries the first
    image's output. Matching it against frame 0 would give the second image the first image's outputs."""
    from support.small_net import images

    first, second = images(2, 32, seed=5)
    monkeypatch.setenv("FAKE_IMX500_FIRST_FRAME", "253")
    monkeypatch.setenv("FAKE_IMX500_CMP_FRM_ERRORS", "2")
    got_first, got_second, again = infer_all(pi_session(pi_network), [first, second, second])
    assert "Unable to get injection comparison frame from device driver" in capsys.readouterr().out
    assert not np.array_equal(got_second["patch_scores"], got_first["patch_scores"])
    for name in again:
        np.testing.assert_array_equal(got_second[name], again[name])


@PI_STACK
def test_a_driver_that_never_reports_the_injection_frame_fails_in_one_line(
        pi_network: Path, fake_pi: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.small_net import images

    monkeypatch.setenv("FAKE_IMX500_CMP_FRM_ERRORS", "*")
    with pytest.raises(InjectionFailed, match=r"did not say which frame carries the injected image's output \(4 "
                                              r"injections; get_injection_cmp_frm returned 0, its value on an ioctl"):
        infer_all(pi_session(pi_network), images(1, 32))


@PI_STACK
@pytest.mark.parametrize(("faults", "message"), [
    ({"FAKE_PICAMERA2_CAMERAS": "imx708"},  # the sensor node is bound, libcamera lists another camera only
     r"^no IMX500 camera among the cameras libcamera lists \(rpicam-hello --list-cameras\), though its sensor"),
    ({"FAKE_PICAMERA2_CAMERAS": "", "FAKE_IMX500_ABSENT": "1"},
     r"^no IMX500 camera on this device \(picamera2: IMX500: Requested camera dev-node not found\)$"),
    ({"FAKE_PICAMERA2_BUSY": "1"},
     r"^picamera2 cannot open the IMX500 camera \(camera 0\): Camera __init__ sequence did not complete\.$"),
])
def test_a_missing_or_busy_camera_is_a_device_failure(pi_network: Path, fake_pi: None, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                      faults: dict[str, str], message: str) -> None:
    """picamera2 0.3.38: IMX500() raises StopIteration when libcamera lists no matching imx500 and RuntimeError
    when there is no imx500 sensor node; Picamera2() raises RuntimeError. One line each, exit 5 (device)."""
    from bench.devices.imx500 import live

    for key, value in faults.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DeviceFailure, match=message) as caught:
        pi_session(pi_network)
    assert not isinstance(caught.value, BadInput) and "\n" not in str(caught.value)
    assert live.main([str(pi_network), "--frames", "2", "--out", str(tmp_path / "live")]) == 5
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: ")


@PI_STACK
def test_a_network_file_the_imx500_cannot_load_is_bad_input(pi_network: Path, fake_pi: None, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"missing\.rpk: the IMX500 cannot load it: Firmware file .* does not exist"):
        pi_session(tmp_path / "missing.rpk")


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
    assert record.manifest["status"] == "failed"
    assert len(record.images) > 0 and record.images["score"].notna().all()  # the accuracy pass's rows are kept


@requires("export", "torch")
@requires("imx500", "model_compression_toolkit", "mct_quantizers")
def test_live_mode_records_kpi_and_frame_rate(pi_network: Path, fake_pi: None, tmp_path: Path) -> None:
    """Streaming sensor frames (FAKE picamera2): per-frame KPI and timestamps, FPS from the timestamps."""
    from bench.devices.imx500 import live

    rpk = pi_network
    assert live.main([str(rpk), "--frames", "20", "--out", str(tmp_path / "live")]) == 0
    summary = __import__("json").loads((tmp_path / "live" / "summary.json").read_text())
    assert summary["frames"] == summary["frames_with_output"] == 20
    assert summary["fps"] == pytest.approx(10.0) and summary["device_p50_ms"] == pytest.approx(5.05)
    assert len((tmp_path / "live" / "frames.csv").read_text().splitlines()) == 21
    assert live.main([str(tmp_path / "missing.rpk"), "--out", str(tmp_path / "x")]) == 2
