"""A ``bench run`` stopped by a signal leaves a readable record; ``--resume`` finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import ctrl_c_default, run_cli

from bench.records import load_run

pytestmark = pytest.mark.slow


def start_run(small_demo: dict, out: Path, min_duration: float) -> subprocess.Popen:
    args = ["run", "--device", "host", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]),
            "--checkpoint", str(small_demo["checkpoint"]), "--out", str(out), "--warmup", "1",
            "--min-count", "5", "--min-duration", str(min_duration)]
    env = {**os.environ, "BENCH_CACHE_DIR": str(small_demo["cache"])}
    return subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=small_demo["work"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_timed_rows(out: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        for journal in out.glob("*/latency.jsonl"):
            if '"timed"' in journal.read_text():
                return journal.parent
        time.sleep(0.2)
    raise AssertionError("the run never reached its timed pass")


def timed_lines(run_dir: Path) -> int:
    """Timed rows the journal holds now (complete lines only: a write may be in progress)."""
    lines = (run_dir / "latency.jsonl").read_text().splitlines(keepends=True)
    return sum(line.endswith("\n") and '"phase":"timed"' in line for line in lines)


@pytest.mark.parametrize("sig, status, code", [(signal.SIGTERM, "interrupted", 130), (signal.SIGKILL, "running", -9)])
def test_signal_mid_run_then_resume(small_demo: dict, tmp_path: Path, sig: signal.Signals, status: str,
                                    code: int) -> None:
    out = tmp_path / "results"
    proc = start_run(small_demo, out, min_duration=30)
    run_dir = wait_for_timed_rows(out, proc)
    flushed = timed_lines(run_dir)
    sent_ns = time.perf_counter_ns()  # the harness's clock (bench.clock), system-wide on Linux
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    assert proc.returncode == code

    killed = load_run(run_dir)
    assert killed.status == status  # readable, and never claims to be complete
    # the signal came in the first category's 30 s timed window, so no category had finished its timed pass
    assert all(state.get("timed_attempt") is None for state in killed.manifest["progress"].values())
    done_before = set(killed.images["image_id"])
    timed = killed.latency[killed.latency["phase"] == "timed"]
    # timed rows are buffered off the timed path: none written before the signal is lost, and a run stopped by
    # SIGTERM writes the rows it still held, up to the inference the signal interrupted
    assert len(timed) >= flushed > 0
    if sig == signal.SIGTERM:
        assert sent_ns - timed["t_end_ns"].max() < 0.3e9

    # The resumed attempt runs under the recorded request, with a shorter timed window (recorded).
    done = run_cli(["run", "--out", str(out), "--resume", run_dir.name, "--min-duration", "0.5"],
                   cwd=small_demo["work"], env={"BENCH_CACHE_DIR": str(small_demo["cache"])})
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(run_dir)
    assert record.status == "complete"
    assert record.images["image_id"].is_unique
    assert len(record.images) == record.manifest["dataset"]["image_count"]
    kept = record.images[record.images["image_id"].isin(done_before)]
    assert kept["score"].tolist() == killed.images.set_index("image_id").loc[kept["image_id"], "score"].tolist()
    assert [a.get("status") for a in record.manifest["attempts"]] == [
        "interrupted" if sig == signal.SIGTERM else None, "complete"]
    assert set(record.metrics["categories"]) == {"fabric", "tiles", "washer"}
    assert record.manifest["attempts"][1]["measurement"]["min_duration_s"] == 0.5
    # every category's figures come from the resumed attempt's complete timed window
    for cat, state in record.manifest["progress"].items():
        assert state["timed_attempt"] == 1, cat
        assert record.metrics["categories"][cat]["timed_inferences"] >= 5


def interrupt_when(args: list[str], cwd: Path, cache: Path, marker: str, timeout: float = 600) -> tuple[int, str]:
    """Start ``python -m bench ARGS``, send SIGINT (Ctrl-C) as soon as ``marker`` shows on its stderr (an event,
    not a delay), and return its exit code and whole stderr."""
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, preexec_fn=ctrl_c_default,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        char = proc.stderr.read(1)
        assert char and time.monotonic() < deadline, f"'{marker}' never showed: {seen[-2000:]}"
        seen += char
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    return proc.returncode, seen + rest


@pytest.mark.parametrize("command", ["fit", "demo"])
def test_ctrl_c_outside_a_run_is_one_line_and_130(small_demo: dict, tmp_path: Path, command: str) -> None:
    """Issue 20: Ctrl-C while fitting (``bench fit``, or the demo's fitting step) ended in a traceback, exit 1."""
    if command == "fit":
        args = ["fit", "--model", "tinyglass", "--data-root", str(small_demo["data_root"]), "--out",
                str(tmp_path / "ckpt"), "--backbone-weights", str(small_demo["backbone"]), "--steps", "100000"]
        cache = small_demo["cache"]
    else:  # a cache of its own, so the demo makes its data and starts fitting
        args, cache = ["demo", "--small", "--out", str(tmp_path / "results")], tmp_path / "cache"
    code, err = interrupt_when(args, tmp_path, cache, "fit ")
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    assert code == 130 and "Traceback" not in err, err[-3000:]
    assert lines[-1].startswith("error: interrupted by the user (Ctrl-C); ")
    assert ("bench demo' again" if command == "demo" else "checkpoints written before it are complete") in lines[-1]
    assert not list((tmp_path / "ckpt").glob("*.pth"))  # nothing half-written: the first category never finished
