"""``--emulate``: FP16 (Jetson, RB5) and MCT INT8 (IMX500) numerics on the host, marked, then compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.cli import run_cli
from support.extras import requires

from bench.records import load_run

pytestmark = pytest.mark.slow


def run(small_demo: dict, out: Path, *extra: str) -> Path:
    args = ["run", "--data-root", str(small_demo["data_root"]), "--checkpoint", str(small_demo["checkpoint"]),
            "--categories", "washer", "--limit", "6", "--warmup", "1", "--min-count", "3", "--min-duration", "0",
            "--out", str(out), *extra]
    done = run_cli(args, cwd=small_demo["work"], env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-3000:]
    if "--emulate" in extra:  # issue 20: an emulated run showed an empty "timed: 0img" bar
        assert "washer timed" not in done.stderr
    return Path(done.stdout.strip().split("run record: ")[-1])


@pytest.fixture(scope="module")
def reference(small_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run(small_demo, tmp_path_factory.mktemp("ref"), "--device", "host")


@pytest.mark.parametrize("device, kind, numerics, tool", [
    pytest.param("jetson", "tensorrt", "fp16", "onnxconverter-common",
                 marks=requires("emulate", "onnxconverter_common")),
    pytest.param("rb5", "rb5", "fp16", "onnxconverter-common", marks=requires("emulate", "onnxconverter_common")),
    pytest.param("imx500", "imx500", "int8_mct", "model-compression-toolkit",
                 marks=requires("imx500", "model_compression_toolkit", "onnxruntime_extensions")),
])
def test_emulated_run_is_marked_and_compares(small_demo: dict, reference: Path, tmp_path: Path, device: str,
                                             kind: str, numerics: str, tool: str) -> None:
    run_dir = run(small_demo, tmp_path, "--device", device, "--emulate")
    record = load_run(run_dir)
    m = record.manifest
    assert m["device"]["emulated"] is True and m["device"]["kind"] == kind and m["device"]["role"] == "device"
    assert m["device"]["environment"]["emulation"]["numerics"] == numerics
    assert m["measurement"]["timing"].startswith("skipped")
    assert record.latency.empty  # never device timing
    entry = m["model"]["categories"]["washer"]
    assert tool in entry["artifact_toolchain"] and entry["artifact_sha256"] != entry["onnx_sha256"]
    if numerics == "int8_mct":
        quantization = entry["artifact_details"]["quantization"]
        # the small demo's 6 normal images and a synthetic anomaly made from each (--calibration default)
        assert quantization["representative_images"] == 12
        assert quantization["calibration"]["mode"] == "train-synthetic"
        assert quantization["bit_widths"] == {"activation": [8], "weights": [8]}
        # the artifact is the MCTQ ONNX the converter receives; the run converted it to standard Q/DQ
        assert entry["artifact_sha256"] == entry["artifact_details"]["mctq_onnx_sha256"]
        qdq = entry["artifact_details"]["qdq"]
        assert sum(qdq["replaced_nodes"].values()) == sum(quantization["quantizer_nodes"].values())
        # agreement with MCT's own graph on 8 representative images (4 normal, 4 synthetic anomalies)
        agree = qdq["agreement"]
        assert agree["images"] == 8 and agree["max_abs_difference"]["score"] <= 1 / 256
        assert abs(agree["image_auroc"]["qdq"] - agree["image_auroc"]["mctq"]) <= 0.0625  # one pair of 4 x 4
    else:
        assert entry["artifact_details"]["policy"] == f"{'tensorrt' if device == 'jetson' else 'qnn_gpu'}_fp16"
    assert record.metrics["categories"]["washer"]["p50_ms"] is None
    done = run_cli(["compare", str(reference), str(run_dir), "--json"], cwd=small_demo["work"],
                   env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["device"]["emulated"] is True
    img = result["categories"]["washer"]["image"]
    assert img["max_abs_error"] > 0  # other numerics ran
    limit = 0.01 if numerics == "fp16" else 0.1
    assert img["max_abs_error"] < limit


def test_emulate_needs_an_emulation_section(small_demo: dict, tmp_path: Path) -> None:
    done = run_cli(["run", "--device", "host", "--emulate", "--data-root", str(small_demo["data_root"]),
                    "--checkpoint", str(small_demo["checkpoint"]), "--out", str(tmp_path)], cwd=small_demo["work"],
                   env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 2 and "no emulation section" in done.stderr
