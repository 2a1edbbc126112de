"""Lab operation: a device behind a real sshd on 127.0.0.1, runs killed at random points and resumed,
and concurrent runs in one results folder."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.cli import ctrl_c_default, run_cli
from support.local_sshd import LocalSshd, ensure_sshd, make_sshd
from support.paths import REPO

from bench.records import load_run

pytestmark = pytest.mark.slow
RUN_ARGS = ["--model", "tinyglass", "--categories", "washer,tiles", "--limit", "6", "--warmup", "1", "--min-count",
            "5", "--min-duration", "0"]


def args(small_demo: dict, out: Path, device: str, *extra: str) -> list[str]:
    return ["run", "--device", device, "--data-root", str(small_demo["data_root"]), "--checkpoint",
            str(small_demo["checkpoint"]), "--backbone-weights", str(small_demo["backbone"]), "--out", str(out),
            *RUN_ARGS, *extra]


def env(small_demo: dict, **extra: str) -> dict[str, str]:
    return {"BENCH_CACHE_DIR": str(small_demo["cache"]), **extra}


def scores(run_dir: Path) -> dict[str, float]:
    return load_run(run_dir).images.set_index("image_id")["score"].to_dict()


@pytest.fixture(scope="module")
def reference(small_demo: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted local host run: what every other run here must end up equal to."""
    out = tmp_path_factory.mktemp("reference")
    done = run_cli(args(small_demo, out, "host"), cwd=out, env=env(small_demo))
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.iterdir())


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if os.geteuid() != 0 and not Path("/run/sshd").is_dir():
        pytest.skip("starting a test sshd needs root (or an existing /run/sshd privilege separation folder)")
    if ensure_sshd() is None:
        pytest.skip("no OpenSSH server here and it cannot be installed (needs apt as root)")
    server = make_sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


def remote_profiles(folder: Path, sshd: LocalSshd, cache: Path) -> Path:
    """The host profile, placed behind the local sshd: the 'device' runs the worker with this venv."""
    folder.mkdir(parents=True, exist_ok=True)
    profile = yaml.safe_load((REPO / "devices" / "host.yaml").read_text())
    profile["name"] = "host-remote"
    profile["location"] = sshd.location(sys.executable, {"PYTHONPATH": str(REPO), "BENCH_CACHE_DIR": str(cache)})
    (folder / "host-remote.yaml").write_text(yaml.safe_dump(profile))
    return folder


def test_remote_run_leaves_the_same_record_as_a_local_one(small_demo: dict, sshd: LocalSshd, reference: Path,
                                                          tmp_path: Path) -> None:
    profiles = remote_profiles(tmp_path / "devices", sshd, tmp_path / "device-cache")
    out = tmp_path / "results"
    done = run_cli(args(small_demo, out, "host-remote"), cwd=tmp_path,
                   env=env(small_demo, BENCH_DEVICES_DIR=str(profiles)))
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = next(out.iterdir())
    record, local = load_run(run_dir), load_run(reference)
    assert record.status == "complete" and record.manifest["device"]["remote"] == f"root@127.0.0.1:{sshd.port}"
    assert scores(run_dir) == scores(reference)  # the same tensors through the same runtime
    assert set(record.metrics["categories"]) == set(local.metrics["categories"]) == {"washer", "tiles"}
    for category in ("washer", "tiles"):
        assert record.metrics["categories"][category]["image_auroc"] == local.metrics["categories"][category][
            "image_auroc"]
        assert set(record.maps(category)) == set(local.maps(category))
        assert record.metrics["categories"][category]["timed_inferences"] >= 5
    # the bundle was unpacked below the profile's workdir (made by the upload) and removed after the run
    work = sshd.folder / "device-work"
    assert work.is_dir() and not any(work.iterdir())


def test_doctor_asks_the_remote_device(sshd: LocalSshd, tmp_path: Path) -> None:
    profiles = remote_profiles(tmp_path / "devices", sshd, tmp_path / "device-cache")
    done = run_cli(["doctor", "--json"], cwd=tmp_path, env={"BENCH_DEVICES_DIR": str(profiles)})
    rows = {row["check"]: row for row in __import__("json").loads(done.stdout)}
    row = rows["device host-remote"]
    assert row["ok"] and row["reason"].startswith(f"on root@127.0.0.1:{sshd.port}: onnxruntime")
    sshd.stop()
    try:
        done = run_cli(["doctor", "--json"], cwd=tmp_path, env={"BENCH_DEVICES_DIR": str(profiles)})
        row = {r["check"]: r for r in __import__("json").loads(done.stdout)}["device host-remote"]
        assert not row["ok"] and "ssh root@127.0.0.1" in row["reason"]
    finally:
        sshd.start()


def test_a_dropped_connection_resumes_to_the_same_record(small_demo: dict, sshd: LocalSshd, reference: Path,
                                                         tmp_path: Path) -> None:
    profiles = remote_profiles(tmp_path / "devices", sshd, tmp_path / "device-cache")
    out = tmp_path / "results"
    run_env = {**os.environ, **env(small_demo, BENCH_DEVICES_DIR=str(profiles))}
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args(small_demo, out, "host-remote", "--min-duration",
                                                                    "20")],
                            cwd=tmp_path, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any('"timed"' in j.read_text() for j in out.glob("*/latency.jsonl")):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    sshd.stop()  # the device drops off the network mid timed pass
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "lost the connection to root@127.0.0.1" in stderr.strip().splitlines()[-1]
    run_dir = next(out.iterdir())
    assert load_run(run_dir).status == "failed" and len(load_run(run_dir).images) > 0
    sshd.start()
    done = run_cli(["run", "--out", str(out), "--resume", run_dir.name, "--min-duration", "0"], cwd=tmp_path,
                   env=env(small_demo, BENCH_DEVICES_DIR=str(profiles)))
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(run_dir)
    assert record.status == "complete" and record.images["image_id"].is_unique
    assert scores(run_dir) == scores(reference)


def journal_rows(out: Path) -> int:
    """Complete image and latency rows the run's journals hold now (a resumed attempt appends to them)."""
    journals = [*out.glob("*/images.jsonl"), *out.glob("*/latency.jsonl")]
    return sum(journal.read_text().count("\n") for journal in journals)


def wait_for_rows(out: Path, proc: subprocess.Popen, target: int, timeout: float = 600) -> bool:
    """Until the journals hold ``target`` rows (True) or the process ended (False): the kill point is a point
    of the record's progress, so the test does not depend on the machine's speed (issue 20)."""
    deadline = time.monotonic() + timeout
    while journal_rows(out) < target:
        if proc.poll() is not None:
            return False
        assert time.monotonic() < deadline, f"the run never reached {target} rows"
        time.sleep(0.02)
    return True


def test_runs_killed_at_random_points_resume_to_the_uninterrupted_record(small_demo: dict, reference: Path,
                                                                         tmp_path: Path) -> None:
    out = tmp_path / "results"
    rng = random.Random(20261122)
    images = len(load_run(reference).images)
    # kill points in rows recorded: three during the accuracy passes, then two among the timed rows
    targets = [*sorted(rng.sample(range(1, images), 3)), images + rng.randint(1, 4), images + rng.randint(6, 9)]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args(small_demo, out, "host")], cwd=tmp_path,
                            env={**os.environ, **env(small_demo)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ctrl_c_default)
    kills = 0
    run_dir = None
    for target in targets:
        if not wait_for_rows(out, proc, target):
            break
        proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM, signal.SIGINT]))
        proc.communicate(timeout=120)
        kills += 1
        run_dir = next(out.glob("*/manifest.json")).parent  # rows exist, so the record does
        if load_run(run_dir).status == "complete":
            break  # the signal came after the record was finished (status is written last): nothing to resume
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--out", str(out), "--resume", run_dir.name],
                                cwd=tmp_path, env={**os.environ, **env(small_demo)}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=ctrl_c_default)
    proc.communicate(timeout=600)
    run_dir = run_dir or next(out.iterdir())
    if load_run(run_dir).status != "complete":
        done = run_cli(["run", "--out", str(out), "--resume", run_dir.name], cwd=tmp_path, env=env(small_demo))
        assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(run_dir)
    assert kills >= 3 and record.status == "complete"  # at least the accuracy-pass kills always land
    assert record.images["image_id"].is_unique and scores(run_dir) == scores(reference)
    assert set(record.metrics["categories"]) == {"washer", "tiles"}
    for category, state in record.manifest["progress"].items():
        latency = record.latency
        timed = latency[(latency["category"] == category) & (latency["phase"] == "timed")
                        & (latency["attempt"] == state["timed_attempt"])]
        assert len(timed) >= 5  # each category's figures come from one complete timed window
    assert len(list(out.iterdir())) == 1


def test_concurrent_runs_share_a_results_folder(small_demo: dict, tmp_path: Path) -> None:
    out = tmp_path / "results"
    procs = [subprocess.Popen([sys.executable, "-m", "bench", *args(small_demo, out, "host", "--min-duration", "8")],
                              cwd=tmp_path, env={**os.environ, **env(small_demo)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("*/manifest.json"))) < 2:
        time.sleep(0.2)
    first = sorted(out.glob("*/manifest.json"))[0].parent
    if procs[0].poll() is None and load_run(first).status == "running":  # a second writer for a live run is refused
        done = run_cli(["run", "--out", str(out), "--resume", first.name], cwd=tmp_path, env=env(small_demo))
        assert done.returncode == 2 and "being written by another process" in done.stderr
    for proc in procs:
        _, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
    runs = [load_run(p) for p in sorted(out.iterdir())]
    assert len(runs) == 2 and all(r.status == "complete" for r in runs)
    assert all(r.images["image_id"].is_unique and len(r.images) == 12 for r in runs)
    np.testing.assert_array_equal(runs[0].images.sort_values("image_id")["score"],
                                  runs[1].images.sort_values("image_id")["score"])
