"""Nightly CI: the workflow passes actionlint and wires devices, references, gates and report; the gate
script compares every device run with its host reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import paths
from support.run_records import make_run

from bench import nightly
from bench.cli import main

REPO = paths.REPO
WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"


def test_workflow_passes_actionlint() -> None:
    beside = Path(sys.executable).parent / "actionlint"  # the venv's, also when it is not activated
    actionlint = shutil.which("actionlint") or (str(beside) if beside.is_file() else None)
    assert actionlint, "actionlint is part of the dev extra (pip install -e '.[dev]')"
    done = subprocess.run([actionlint, str(WORKFLOW)], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_runs_every_device_then_gates_and_reports() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    jobs = flow["jobs"]
    targets = jobs["device"]["strategy"]["matrix"]["target"]
    assert {t["device"] for t in targets} == {"jetson", "imx500", "rb5"}
    assert all(t["runner"] == f"bench-{t['device']}" for t in targets)
    labels = yaml.safe_load((REPO / ".github" / "actionlint.yaml").read_text())["self-hosted-runner"]["labels"]
    assert {t["runner"] for t in targets} | {"bench-host"} <= set(labels)
    assert set(jobs["gate-and-report"]["needs"]) == {"host-reference", "device"}
    steps = " ".join(step.get("run", "") for step in jobs["gate-and-report"]["steps"])
    assert "python -m bench report" in steps and "python -m bench nightly" in steps
    assert '"$status" -eq 4' in steps and "::warning::" in steps  # inconclusive warns; exceeded (3) fails
    for profile in ("jetson", "imx500", "rb5"):
        assert (REPO / "devices" / f"{profile}.yaml").is_file()


def test_gates_compare_every_device_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # 400 + 400 images: a device ranking them as the host does is within 0.2 (one-pair floor <= 0.025 points),
    # one reversing them exceeds it, and seven images both perfect straddle it (one pair of 12 is 8.3 points)
    labels = np.array([0] * 400 + [1] * 400)
    scores = np.r_[np.linspace(0, 1, 400), np.linspace(2, 3, 400)]
    make_run(tmp_path / "host", "ref", scores, labels)
    make_run(tmp_path / "jetson", "near", scores ** 3, labels, device="jetson")
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 0
    assert "1 device runs compared against the 0.20-point gate (--max-drift): 0 exceed, 0 inconclusive, 1 within" \
        in capsys.readouterr().err
    few_labels = np.array([0, 0, 0, 1, 1, 1, 1])
    few = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9, 1.0])
    make_run(tmp_path / "few-host", "few-ref", few, few_labels, index="few")
    make_run(tmp_path / "few-rb5", "few-dev", few + 0.001, few_labels, device="rb5", index="few")
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 4
    err = capsys.readouterr().err
    assert "2 device runs compared against the 0.20-point gate (--max-drift): 0 exceed, 1 inconclusive, 1 within" in err
    assert "gate inconclusive: image AUROC drift +0.00 points" in err and "gate failed" not in err
    make_run(tmp_path / "imx500", "far", -scores, labels, device="imx500")
    assert [dev.name for _, dev in nightly.pairs(tmp_path)] == ["few-dev", "far", "near"]
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 3  # exceeds wins over inconclusive
    err = capsys.readouterr().err
    assert "3 device runs compared against the 0.20-point gate (--max-drift): 1 exceed, 1 inconclusive, 1 within" in err
    assert "gate failed: image AUROC drift -100.00 points" in err and "gate inconclusive" in err


def test_a_device_run_without_reference_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = np.array([0, 1] * 10)
    make_run(tmp_path, "lonely", labels.astype(float), labels, device="imx500")
    assert main(["nightly", str(tmp_path)]) == 2
    assert "no complete reference run (a profile with role: reference) of tinyglass on mvtec" in capsys.readouterr().err


def test_each_device_run_gets_its_card_gate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    gates = yaml.safe_load((REPO / "models" / "tinyglass.yaml").read_text())["drift_gate"]
    rng = np.random.default_rng(0)
    labels = np.array([0] * 60 + [1] * 40)
    scores = rng.normal(0, 1, 100) + 1.5 * labels
    # ranked as the host ranks: the interval is the one-pair floor, 6 of 2400 pairs = 0.25 points
    # (test_metrics_drift checks the quantile 6 by brute-force resampling): within 0.5, straddling 0.2
    assert gates["default"] < 100 * 6 / 2400 < gates["imx500"]
    make_run(tmp_path / "host", "ref", scores, labels)
    make_run(tmp_path / "imx500", "sensor", scores + 1.0, labels, device="imx500")
    assert main(["nightly", str(tmp_path), "--no-pixel"]) == 0
    captured = capsys.readouterr()
    assert f"within the {gates['imx500']:.2f}-point gate (card tinyglass, imx500)" in captured.out
    assert "1 device runs compared against their card gates: 0 exceed, 0 inconclusive, 1 within" in captured.err
    make_run(tmp_path / "jetson", "gpu", scores + 1.0, labels, device="jetson")
    assert main(["nightly", str(tmp_path), "--no-pixel"]) == 4
    captured = capsys.readouterr()
    assert f"inconclusive for the {gates['default']:.2f}-point gate (card tinyglass, default)" in captured.out
    assert "gate inconclusive" in captured.err and "jetson vs host" in captured.err
    assert "imx500 vs host" not in captured.err
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.3"]) == 0  # one gate for all
    assert capsys.readouterr().out.count("within the 0.30-point gate (--max-drift)") == 2
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 4
    assert "2 device runs compared against the 0.20-point gate (--max-drift): 0 exceed, 2 inconclusive, 0 within" \
        in capsys.readouterr().err


def test_a_device_run_that_did_not_complete_fails_the_night(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Issue 20: a failed real Jetson run beside a good one passed the gate (exit 0, '1 device runs compared')."""
    labels = np.array([0] * 400 + [1] * 400)
    scores = np.r_[np.linspace(0, 1, 400), np.linspace(2, 3, 400)]
    make_run(tmp_path / "host", "ref", scores, labels, created="2026-11-20T01:00:00+00:00")
    make_run(tmp_path / "rb5", "good", scores, labels, device="rb5", created="2026-11-20T02:00:00+00:00")
    make_run(tmp_path / "jetson", "dropped", scores[:5], labels[:5], device="jetson", status="failed",
             error="device 'jetson' failed during cat: link lost", created="2026-11-20T02:00:00+00:00")
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 5  # DESIGN.md: a device failed
    err = capsys.readouterr().err
    assert "device run failed: dropped (device 'jetson' failed during cat: link lost)" in err
    assert "1 device runs compared against the 0.20-point gate (--max-drift): 0 exceed, 0 inconclusive, 1 within; " \
           "1 did not complete" in err
    make_run(tmp_path / "jetson", "rerun", scores, labels, device="jetson", created="2026-11-20T03:00:00+00:00")
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 0  # the rerun replaces it
    assert "note: device run dropped failed, a later complete run replaces it" in capsys.readouterr().err
    make_run(tmp_path / "imx500", "stopped", scores[:5], labels[:5], device="imx500", emulated=True,
             status="interrupted", error="interrupted by the user (Ctrl-C)", created="2026-11-20T04:00:00+00:00")
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 5  # emulated runs count too
