"""The measure step keeps record-keeping off the timed path: timed rows are written in batches, at least every
flush interval and when the pass ends or fails; the state around the timed window is recorded."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.clock import now_ns
from bench.data.loader import Loaded
from bench.data.samples import Sample
from bench.devices.base import Artifact, DeviceProfile, InferenceResult, Session
from bench.errors import DeviceFailure
from bench.run import measure as measure_module
from bench.run.measure import Job, Measurement, Workload, measure


class ListSink:
    """A record sink in memory that notes when each latency write happened."""

    attempt = 0

    def __init__(self) -> None:
        self.latency: list[dict[str, Any]] = []
        self.writes: list[tuple[int, int]] = []  # (time of the write, rows written)
        self.progress: dict[str, dict[str, Any]] = {}

    def append(self, table: str, rows: Any) -> None:
        rows = list(rows)
        if table == "latency":
            self.writes.append((now_ns(), len(rows)))
            self.latency.extend(rows)

    def set_progress(self, category: str, **fields: Any) -> None:
        self.progress.setdefault(category, {}).update(fields)

    def set_artifact(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_section(self, section: str, **fields: Any) -> None:
        pass


class SleepySession(Session):
    """Each inference takes about a millisecond; fails once ``fail_after`` inferences are done."""

    def __init__(self, fail_after: int | None) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail_after = fail_after

    def infer(self, batch: np.ndarray) -> InferenceResult:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise ConnectionError("link to the device lost")
        start = now_ns()
        time.sleep(0.001)
        self.calls.append((start, now_ns()))
        return InferenceResult({"score": np.zeros(1)})

    def _close(self) -> None:
        pass


class FakeDevice:
    emulated = True

    def __init__(self, fail_after: int | None = None, state: dict[str, Any] | None = None) -> None:
        self.profile = DeviceProfile("fake", "host", "fp32")
        self.session = SleepySession(fail_after)
        self._state = state or {}

    def open(self, artifact: Artifact) -> Session:
        return self.session

    def state(self) -> dict[str, Any]:
        return self._state


def workload(device: FakeDevice, measurement: Measurement) -> Workload:
    samples = [Sample(f"c/{i}.png", Path(f"{i}.png"), "c", "test", "good", 0, None) for i in range(4)]
    artifact = Artifact(Path("model"), "a" * 64, "fp32", {}, "s" * 64)
    job = Job("c", samples, None, artifact)  # type: ignore[arg-type]
    library = lambda sample: Loaded(np.zeros((1, 3, 4, 4), np.float32), "h")  # noqa: E731
    return Workload(device, [job], library, {}, measurement,  # type: ignore[arg-type]
                    done=frozenset(s.image_id for s in samples))


def test_timed_rows_are_written_in_batches_between_inferences(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure_module, "FLUSH_INTERVAL_NS", 20_000_000)
    device, sink = FakeDevice(), ListSink()
    measure(workload(device, Measurement(warmup=3, min_count=150, min_duration_s=0)), sink)
    timed = [r for r in sink.latency if r["phase"] == "timed"]
    assert len(timed) == 150 and sum(r["phase"] == "warmup" for r in sink.latency) == 3
    # every row is the session's own call, timed around it
    for row, (start, end) in zip(timed, device.session.calls[3:], strict=True):
        assert row["t_start_ns"] <= start and end <= row["t_end_ns"]
    # a write never falls inside an inference, and there are far fewer writes than inferences
    calls = device.session.calls
    for when, _ in sink.writes:
        assert not any(start <= when <= end for start, end in calls)
    assert 3 <= len(sink.writes) < 150 // 5
    window_s = (timed[-1]["t_end_ns"] - timed[0]["t_start_ns"]) / 1e9
    assert len(sink.writes) <= window_s / 0.02 + 3  # one per flush interval, the warm-up's and the last


def test_a_failing_device_keeps_the_buffered_timed_rows() -> None:
    """Rows not yet written when the device fails are written on the way out, not lost."""
    device, sink = FakeDevice(fail_after=2 + 40), ListSink()
    with pytest.raises(DeviceFailure, match="link to the device lost"):
        measure(workload(device, Measurement(warmup=2, min_count=500, min_duration_s=0)), sink)
    assert sum(r["phase"] == "timed" for r in sink.latency) == 40
    assert len(sink.writes) == 2  # the flush interval (1 s) never came: the warm-up's and the failure's
    state = sink.progress["c"]["state"]
    assert set(state) == {"before", "after"}  # the state after the window is recorded on failure too


def test_state_before_and_after_the_timed_window(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []

    def fake_machine_state() -> dict[str, Any]:
        reads.append(now_ns())
        return {"thermal_c": {"cpu": 40.0 + len(reads)}}

    monkeypatch.setattr(measure_module, "machine_state", fake_machine_state)
    device, sink = FakeDevice(state={"gpu_clock_hz": 1}), ListSink()
    measure(workload(device, Measurement(warmup=1, min_count=20, min_duration_s=0)), sink)
    timed = [r for r in sink.latency if r["phase"] == "timed"]
    assert reads[0] < timed[0]["t_start_ns"] and reads[1] > timed[-1]["t_end_ns"]
    assert sink.progress["c"]["state"] == {
        "before": {"machine": {"thermal_c": {"cpu": 41.0}}, "device": {"gpu_clock_hz": 1}},
        "after": {"machine": {"thermal_c": {"cpu": 42.0}}, "device": {"gpu_clock_hz": 1}}}


def test_nothing_readable_records_empty_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure_module, "machine_state", dict)
    sink = ListSink()
    measure(workload(FakeDevice(), Measurement(warmup=0, min_count=2, min_duration_s=0)), sink)
    assert sink.progress["c"]["state"] == {"before": {}, "after": {}}
