"""The one pairing rule (bench.pairing) as report, nightly and compare apply it: the reference is a role."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.run_records import make_run

from bench.cli import main
from bench.nightly import pairs
from bench.pairing import is_reference, pair_runs
from bench.records import load_run
from bench.reports.collect import collect

LABELS = np.array([0] * 30 + [1] * 30)
MEAN = {"mean": {"image_auroc": 0.9}, "categories": {}}  # collect() takes finished runs with metrics
SCORES = np.random.default_rng(1).normal(0, 1, 60) + 1.5 * LABELS


def test_a_newer_gpu_fp32_run_of_kind_host_is_not_the_reference(tmp_path: Path) -> None:
    """host-cuda.yaml is kind host, FP32: before roles, the newest such run became everybody's reference."""
    cpu = make_run(tmp_path, "cpu", SCORES, LABELS, device="host", created="2026-11-01T00:00:00+00:00", metrics=MEAN)
    gpu = make_run(tmp_path, "gpu", SCORES + 0.3 * LABELS, LABELS, device="host-cuda", kind="host", role="device",
                   created="2026-11-02T00:00:00+00:00", metrics=MEAN)
    dev = make_run(tmp_path, "jetson", SCORES, LABELS, device="jetson", created="2026-11-03T00:00:00+00:00",
                   metrics=MEAN)
    runs = [load_run(p) for p in (cpu, gpu, dev)]
    found = pair_runs(runs)
    assert sorted((ref.run_id, run.run_id) for ref, run in found.pairs) == [("cpu", "gpu"), ("cpu", "jetson")]
    assert [(ref.name, run.name) for ref, run in pairs(tmp_path)] == [("cpu", "gpu"), ("cpu", "jetson")]
    report = collect(runs, None)
    assert {(d["ref"].run_id, d["dev"].run_id) for d in report.drift} == {("cpu", "gpu"), ("cpu", "jetson")}


def test_the_reference_has_the_device_runs_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two reference runs of other checkpoints: nightly once took the newest by model and dataset alone, and
    compare then refused the pair (exit 2)."""
    make_run(tmp_path, "ref-a", SCORES, LABELS, sha="a" * 64, created="2026-11-01T00:00:00+00:00")
    make_run(tmp_path, "ref-b", SCORES, LABELS, sha="b" * 64, created="2026-11-02T00:00:00+00:00")
    make_run(tmp_path, "dev-a", SCORES, LABELS, device="jetson", sha="a" * 64, created="2026-11-03T00:00:00+00:00")
    assert [(ref.name, run.name) for ref, run in pairs(tmp_path)] == [("ref-a", "dev-a")]
    # identical scores on 60 images: the interval is the one-pair floor (6 of 900 pairs, 0.67 points), within 1
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "1"]) == 0
    assert "1 device runs compared against the 1.00-point gate (--max-drift): 0 exceed, 0 inconclusive, 1 within" \
        in capsys.readouterr().err


def test_a_pinned_reference_wins_over_the_newest(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    old = make_run(tmp_path, "old", SCORES, LABELS, created="2026-11-01T00:00:00+00:00", metrics=MEAN)
    make_run(tmp_path, "new", SCORES - 2.0 * LABELS, LABELS, created="2026-11-02T00:00:00+00:00", metrics=MEAN)
    make_run(tmp_path, "dev", SCORES, LABELS, device="jetson", created="2026-11-03T00:00:00+00:00", metrics=MEAN)
    assert [ref.name for ref, _ in pairs(tmp_path)] == ["new"]
    assert [ref.name for ref, _ in pairs(tmp_path, [old])] == ["old"]
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "1"]) == 3
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "1", "--reference", str(old)]) == 0
    runs = [load_run(p) for p in sorted(tmp_path.iterdir())]
    assert [(d["ref"].run_id, d["dev"].run_id) for d in collect(runs, None).drift] == [("new", "dev")]
    assert [(d["ref"].run_id, d["dev"].run_id) for d in collect(runs, None, [load_run(old)]).drift] == [("old", "dev")]


def test_any_run_can_be_pinned_and_then_is_no_device_run(tmp_path: Path) -> None:
    """A GPU FP32 run pinned as reference: the device runs pair with it, and it is not itself paired."""
    gpu = make_run(tmp_path, "gpu", SCORES, LABELS, device="host-cuda", role="device")
    make_run(tmp_path, "dev", SCORES, LABELS, device="rb5")
    found = pair_runs([load_run(p) for p in sorted(tmp_path.iterdir())], [load_run(gpu)])
    assert [(ref.run_id, run.run_id) for ref, run in found.pairs] == [("gpu", "dev")] and not found.unpaired


def test_an_emulated_run_of_a_reference_profile_is_a_device_run() -> None:
    manifest = {"device": {"role": "reference", "emulated": True}}
    assert not is_reference(manifest) and is_reference({"device": {"role": "reference", "emulated": False}})
    assert not is_reference({"device": {"kind": "host", "emulated": False}})  # a record written before roles


def test_compare_refuses_a_run_with_itself(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = make_run(tmp_path, "one", SCORES, LABELS)
    assert main(["compare", str(run), str(run), "--no-pixel"]) == 2
    assert "not with itself" in capsys.readouterr().err


def test_a_newer_smoke_run_on_fewer_images_is_not_the_reference(tmp_path: Path) -> None:
    """A --limit run of the reference profile once became the newest reference, which compare then refused."""
    make_run(tmp_path, "full", SCORES, LABELS, index="all", created="2026-11-01T00:00:00+00:00")
    make_run(tmp_path, "smoke", SCORES[:20], LABELS[:20], index="first-20", created="2026-11-02T00:00:00+00:00")
    make_run(tmp_path, "dev", SCORES, LABELS, device="jetson", index="all", created="2026-11-03T00:00:00+00:00")
    assert [(ref.name, run.name) for ref, run in pairs(tmp_path)] == [("full", "dev")]
    assert main(["nightly", str(tmp_path), "--no-pixel", "--max-drift", "1"]) == 0
