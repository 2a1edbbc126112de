"""``bench demo`` end to end on a tiny configuration, then ``bench run`` on its outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support.cli import run_cli

from bench.records import load_run
from bench.util import file_sha256

pytestmark = pytest.mark.slow


def expected_tinyglass_params() -> int:
    """ResNet-18 without layer4 and fc, plus the official discriminator (Conv 128x512 + bias, BatchNorm2d scale
    and shift, Conv 512x1 without bias): about 2.85 M."""
    from torchvision.models import resnet18

    full = resnet18(weights=None)
    trunk = sum(p.numel() for name, p in full.named_parameters() if not name.startswith(("layer4", "fc")))
    return trunk + (128 * 512 + 512) + 2 * 512 + 512


def test_demo_writes_a_complete_record_and_report(small_demo: dict) -> None:
    assert f"run record: results/{small_demo['run'].name}" in small_demo["stdout"]
    assert "report:     reports/demo/index.html" in small_demo["stdout"]
    record = load_run(small_demo["run"])
    assert record.status == "complete"
    m = record.manifest
    assert m["device"]["profile"] == "host" and m["device"]["emulated"] is False
    assert m["device"]["environment"]["settings"]["intra_op_num_threads"] >= 1
    assert m["model"]["params"] == expected_tinyglass_params()
    assert 1.7e9 < m["model"]["macs"] < 2.0e9  # ResNet-18 to layer3 at 256x256 plus the discriminator, from the graph
    for figures in record.metrics["categories"].values():
        assert figures["gmac_per_inference"] == m["model"]["macs"] / 1e9
        assert figures["gmac_per_j"] is None  # no power meter: no energy figures, never zeros
    assert m["measurement"]["min_count"] == 5 and m["measurement"]["scenario"] == "single-stream"
    categories = m["dataset"]["categories"]
    assert categories == ["fabric", "tiles", "washer"]
    for cat in categories:
        entry = m["model"]["categories"][cat]
        assert entry["checkpoint_sha256"] == file_sha256(Path(entry["checkpoint"]))
        assert entry["artifact_sha256"] == entry["onnx_sha256"]  # the host runs the ONNX itself
        assert entry["artifact_toolchain"]["onnxruntime"] == m["device"]["environment"]["runtime"]["onnxruntime"]
        assert entry["export_parity_max_abs"]["score"] < 1e-4
    assert len(record.images) == m["dataset"]["image_count"] == 3 * (3 + 2 * 3)
    assert record.images["input_sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    for cat in categories:
        figures = record.metrics["categories"][cat]
        assert 0.0 <= figures["image_auroc"] <= 1.0 and 0.0 <= figures["pixel_auroc"] <= 1.0
        assert figures["timed_inferences"] >= 5 and figures["p50_ms"] > 0
        assert figures["timing_source"] == "host_clock" and record.progress(cat)["timing_source"] == "host_clock"


def test_report_shows_exactly_the_metrics(small_demo: dict) -> None:
    html = small_demo["report"].read_text()
    metrics = json.loads((small_demo["run"] / "metrics.json").read_text())
    percent = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "aupro")  # fractions shown in percent
    latency = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps", "timed_inferences", "gmac_per_inference")
    for cat, figures in [*metrics["categories"].items(), ("mean", metrics["mean"])]:
        for key in percent + (latency if cat != "mean" else ()):
            cell = re.search(rf'data-key="{key}" data-category="{cat}">([^<]*)<', html)
            assert cell is not None, (cat, key)
            if figures[key] is None:
                assert cell.group(1) == "n/a", (cat, key)
            else:  # two decimals
                scale = 100 if key in percent else 1
                assert re.fullmatch(r"-?\d+\.\d\d|\d+", cell.group(1)), (cat, key, cell.group(1))
                assert abs(float(cell.group(1)) - figures[key] * scale) <= 0.005 + 1e-9, (cat, key)
        source = re.search(rf'data-key="timing_source" data-category="{cat}">([^<]*)<', html)
        assert source is not None and source.group(1).startswith("host clock: ")  # which clock the figures are
    assert 'src="data:image/png;base64,' in html
    assert "http://" not in html and "https://" not in html  # self-contained


def test_demo_again_reuses_the_caches(small_demo: dict) -> None:
    done = run_cli(["demo", "--small"], cwd=small_demo["work"], env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fitting" not in done.stderr and "calibrating" not in done.stderr
    runs = sorted((small_demo["work"] / "results").iterdir())
    assert len(runs) == 2
    first, second = (load_run(r) for r in runs)
    # same inputs, same checkpoints, same host numerics: identical scores
    assert first.images["input_sha256"].tolist() == second.images["input_sha256"].tolist()
    assert first.images["score"].tolist() == second.images["score"].tolist()


def test_compare_two_host_runs_end_to_end(small_demo: dict) -> None:
    """Two host runs of the same inputs pair image by image; masks are re-read for pixel drift."""
    runs = sorted((small_demo["work"] / "results").iterdir())
    if len(runs) < 2:
        pytest.skip("needs the second demo run of test_demo_again_reuses_the_caches")
    done = run_cli(["compare", str(runs[0]), str(runs[1]), "--json", "--max-drift", "0.0"], cwd=small_demo["work"],
                   env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    # no finite sample puts an interval inside a zero gate: identical runs are inconclusive there (exit 4)
    assert done.returncode == 4, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["gate"]["verdict"] == "inconclusive" and result["dataset_drift"]["delta_points"] == 0.0
    for figures in result["categories"].values():
        assert figures["image"]["delta_points"] == 0.0 and figures["image"]["max_abs_error"] == 0.0
        assert figures["pixel"]["delta_points"] == 0.0


def test_demo_ends_with_its_figures_why_and_next_commands_that_work_as_printed(small_demo: dict) -> None:
    """Issue 20: the demo ended with two paths and no result, and 'bench run ... --data-root <demo data>' did not
    find the demo's checkpoints. Its closing lines give the figures, why AUROC is low, and commands with real paths."""
    import shlex

    stdout = small_demo["stdout"]
    mean = load_run(small_demo["run"]).metrics["mean"]
    assert re.search(r"demo done in \d+ min \d\d s: TinyGLASS on the host, 27 images; "
                     rf"image AUROC {mean['image_auroc'] * 100:.1f} % \(mean over categories\), "
                     rf"p50 latency {mean['p50_ms']:.1f} ms on this CPU", stdout)
    assert "the AUROC is low by design: the demo's backbone is a seeded random ResNet-18" in stdout
    html = small_demo["report"].read_text()
    assert "Note: demo run: the backbone is a seeded random ResNet-18" in html  # the report says so too
    command = next(line.strip() for line in stdout.splitlines() if "--device jetson --emulate" in line)
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "bench"]
    out = Path(argv[argv.index("--out") + 1])
    argv[argv.index("--out") + 1] = str(small_demo["work"] / "next")  # leave the session's demo results as they are
    done = run_cli([*argv[3:], "--categories", "washer", "--limit", "4"], cwd=small_demo["work"],
                   env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.name == "results"  # the demo's own results folder, where its run record is


def test_the_headline_command_runs_as_printed_on_the_edgezsad_stand_in(small_demo: dict) -> None:
    """Issue 20: `bench run --device jetson --model edgezsad` could not be tried on a fresh machine (no checkpoint,
    no TinyViT weights). The demo fits a labelled stand-in and prints the command with its real paths."""
    import shlex

    stdout = small_demo["stdout"]
    assert "the project's headline command, on the demo's EdgeZSAD stand-in" in stdout
    command = next(line.strip() for line in stdout.splitlines() if "--model edgezsad" in line)
    argv = shlex.split(command)
    assert argv[:9] == ["python", "-m", "bench", "run", "--device", "jetson", "--emulate", "--model", "edgezsad"]
    argv[argv.index("--out") + 1] = str(small_demo["work"] / "headline")
    done = run_cli([*argv[3:], "--limit", "4"], cwd=small_demo["work"],
                   env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(next((small_demo["work"] / "headline").iterdir()))
    assert record.status == "complete" and record.manifest["model"]["name"] == "edgezsad"
    assert record.manifest["device"]["profile"] == "jetson" and record.manifest["device"]["emulated"]
    assert record.manifest["dataset"]["categories"] == ["washer"]  # held out from the zero-shot fit
    assert record.manifest["request"]["note"].startswith("EdgeZSAD stand-in, not the published model")
    assert record.images["score"].notna().all() and len(record.images) == 4
    checkpoint = Path(argv[argv.index("--checkpoint") + 1])
    from bench.models.prepare import load_checkpoint

    meta = load_checkpoint(checkpoint / "edgezsad.pth")["meta"]
    assert meta["sources"] == ["fabric", "tiles"] and set(meta["heldout_image_auroc"]) == {"washer"}


def test_a_next_command_names_the_extra_it_needs_when_missing(small_demo: dict,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's demo install has no imx500 extra: that command says so instead of failing as printed."""
    from bench import demo
    from bench.devices.imx500 import emulation

    real = emulation.installed_version
    monkeypatch.setattr(emulation, "installed_version",
                        lambda dist: None if dist == "model-compression-toolkit" else real(dist))
    record = demo.Demo(small_demo["run"], small_demo["report"], Path("ez"), Path("tv.pth"))
    lines = demo.closing_lines(record, 60.0)
    imx500 = next(line for line in lines if "--device imx500" in line)
    assert imx500.endswith("    # first: pip install -e '.[imx500]'")
    assert not any(line.endswith("]'") for line in lines if "--device jetson" in line)  # emulate is installed
