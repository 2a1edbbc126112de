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
from support.run_records import drift_of, make_run, swap_pairs

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
    for profile in ("jetson", "imx500", "rb5"):
        assert (REPO / "devices" / f"{profile}.yaml").is_file()


def test_gates_compare_every_device_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 60 + [1] * 40)
    scores = rng.normal(0, 1, 100) + 1.5 * labels
    make_run(tmp_path / "host", "ref", scores, labels)
    make_run(tmp_path / "jetson", "near", scores + rng.normal(0, 1e-4, 100), labels, device="jetson")
    assert main(["nightly", str(tmp_path), "--no-pixel"]) == 0
    noisy = scores + rng.normal(0, 1.5, 100)
    make_run(tmp_path / "rb5", "far", noisy, labels, device="rb5")
    assert [dev.name for _, dev in nightly.pairs(tmp_path)] == ["near", "far"]
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 3
    err = capsys.readouterr().err
    assert "2 device runs compared, 1 over the 0.20-point gate" in err and "gate failed" in err


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
    pairs = 6
    assert gates["default"] < -drift_of(scores, labels, pairs) < gates["imx500"]
    make_run(tmp_path / "host", "ref", scores, labels)
    make_run(tmp_path / "imx500", "sensor", swap_pairs(scores, labels, pairs), labels, device="imx500")
    assert main(["nightly", str(tmp_path), "--no-pixel"]) == 0
    captured = capsys.readouterr()
    assert f"within the {gates['imx500']:.2f}-point gate (card tinyglass, imx500)" in captured.out
    assert "1 device runs compared, 0 over their card gates" in captured.err
    make_run(tmp_path / "jetson", "gpu", swap_pairs(scores, labels, pairs), labels, device="jetson")
    assert main(["nightly", str(tmp_path), "--no-pixel"]) == 3
    captured = capsys.readouterr()
    assert f"EXCEEDS the {gates['default']:.2f}-point gate (card tinyglass, default)" in captured.out
    assert "gate failed" in captured.err and "jetson vs host" in captured.err and "imx500 vs host" not in captured.err
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.3"]) == 0  # one gate for all
    assert capsys.readouterr().out.count("within the 0.30-point gate (--max-drift)") == 2
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "0.2"]) == 3
    assert "2 device runs compared, 2 over the 0.20-point gate (--max-drift)" in capsys.readouterr().err
