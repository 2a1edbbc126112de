"""The measure step on this machine: sessions over the sample library, every result into a record sink.

It knows Sessions (opened from the device's artifacts), the sample library and the sink: nothing of
any device family, of the run folder, or of how the record is finished.
Timing follows MLPerf LoadGen's single-stream scenario: the inputs are in memory first (LoadGen's
performance sample set, here the first 64 readable inputs of the category, kept from the accuracy pass
so no image is decoded twice), then an untimed warm-up, then back-to-back timed inferences until both a
minimum count and a minimum duration are met. The accuracy pass over the whole dataset comes first and
is never timed: its decoding and preprocessing run in background threads, which on a CPU device would
compete with the inference being timed.

Each category's latency rows name the session's timing source. A session timed by the device's
profiler runs its own timed pass (``Session.device_timing``); its rows carry the profiler's figures
and no timestamps, since the host timed nothing.

Record-keeping stays off the timed path: between two inferences the harness only notes the two
timestamps; rows are written to the sink at most once per ``FLUSH_INTERVAL_NS`` and when the pass
ends or fails, so a killed run loses only the rows since the last flush (a resumed run times every
category again anyway). The machine's clocks and temperatures (``bench.host_state``) and the
device's own (``Device.state``) are recorded before and after each timed window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from bench.clock import now_ns
from bench.data.loader import Loaded
from bench.data.samples import Sample
from bench.data.stream import prefetch
from bench.devices.base import Artifact, Device, ExportedModel, Session
from bench.errors import BadInput, BenchError, DeviceFailure, cleanup
from bench.host_state import machine_state
from bench.models.postprocess import decode
from bench.power import MeterUnavailable, PowerMeter, Sampler, max_failures, open_meter, rate_hz
from bench.progress import bar
from bench.records.sink import RecordSink

TIMED_POOL = 64  # distinct inputs a separate timed pass cycles over
FLUSH_INTERVAL_NS = 1_000_000_000  # latency rows reach the sink at least this often during a pass
PROFILER = "device_profiler"

SampleLibrary = Callable[[Sample], Loaded]  # a sample's preprocessed tensor and its hash, or why it has none


@dataclass(frozen=True)
class Measurement:
    warmup: int = 10
    min_count: int = 100
    min_duration_s: float = 5.0
    prefetch_workers: int = 2
    prefetch_depth: int = 8

    def to_manifest(self) -> dict[str, Any]:
        return {**asdict(self), "scenario": "single-stream", "batch": 1}


@dataclass(frozen=True)
class Job:
    """One category: its samples and what the device runs. ``artifact`` is None where the device
    compiles the exported model itself (a remote run ships the ONNX)."""

    category: str
    samples: list[Sample]
    exported: ExportedModel
    artifact: Artifact | None = None
    cached: bool = False


@dataclass(frozen=True)
class Workload:
    """What a measure step runs: the jobs with work left, and the image ids the record has already
    (a resumed run evaluates only the others, and times every job again)."""

    device: Device
    jobs: list[Job]
    library: SampleLibrary
    postprocess: dict[str, Any]
    measurement: Measurement
    done: frozenset[str] = frozenset()


def measure(work: Workload, sink: RecordSink) -> None:
    """Run every job of ``work`` on this machine into ``sink``, sampling the profile's power meter over
    each timed window; a meter that cannot be read is recorded as unavailable and the run goes on."""
    meter = None if work.device.emulated else _open_meter(work.device.profile.power, sink)
    try:
        # The post-processing's small matrix products must not wake a BLAS thread pool: its threads spin after
        # each call and took the cores from the next inference (ONNX Runtime 2.4x slower on 2 cores, benchmarks/
        # README.md). One BLAS thread for the whole measure step; the device's own runtime is unaffected.
        with threadpool_limits(limits=1, user_api="blas"):
            for job in work.jobs:
                _Category(work, sink, meter, job).run()
    finally:
        if meter is not None:
            with cleanup("closing the power meter"):
                meter.close()


def _open_meter(power: dict[str, Any], sink: RecordSink) -> PowerMeter | None:
    try:
        return open_meter(power)
    except MeterUnavailable as exc:
        sink.set_section("measurement", power_status="unavailable", power_reason=str(exc))
        return None


class _Category:
    """One job's session: the accuracy pass over the images still to do, the warm-up, the timed pass."""

    def __init__(self, work: Workload, sink: RecordSink, meter: PowerMeter | None, job: Job) -> None:
        self.work = work
        self.sink = sink
        self.meter = meter
        self.job = job
        self.category = job.category
        self.source = ""
        self._window: tuple[int, int] | None = None
        self._pending: list[tuple[str, int, int, float | None]] = []  # (phase, start, end, device_ms) not yet written
        self._flushed_ns = 0

    def run(self) -> None:
        artifact = self.job.artifact
        if artifact is None:
            raise ValueError(f"category '{self.category}' has no compiled artifact to run")
        self.sink.set_artifact(self.category, artifact.sha256, artifact.toolchain, self.job.cached, artifact.details)
        todo = [s for s in self.job.samples if s.image_id not in self.work.done]
        with self.work.device.open(artifact) as session:
            self.source = session.timing_source
            self.sink.set_progress(self.category, timing_source=self.source)
            try:
                pool = self._accuracy_pass(session, todo) if todo else []
                self.sink.set_progress(self.category, accuracy_done=True)
                if len(pool) < TIMED_POOL and len(todo) < len(self.job.samples):
                    pool = self._pool()  # resumed: the accuracy pass saw only some of the images, or none
                if not pool:
                    raise BadInput(f"category '{self.category}': no readable image to run")
                self._warmup(session, pool)
                self._timed_window(session, pool)
                self.sink.set_progress(self.category, timed_attempt=self.sink.attempt)
            finally:
                with cleanup(f"recording the session audit of {self.category}"):
                    audit = session.audit()
                    if audit:
                        self.sink.set_progress(self.category, session=audit)

    def _state(self) -> dict[str, Any]:
        """The measuring machine's clocks and temperatures, and the device's where it is apart; only what
        could be read."""
        state = {"machine": machine_state(), "device": self.work.device.state()}
        return {key: value for key, value in state.items() if value}

    def _timed_window(self, session: Session, pool: list[np.ndarray]) -> None:
        """The timed pass, with the state read just before and just after it (also when it fails); nothing when
        there is nothing to time (an emulated run: its timing would be the host's)."""
        m = self.work.measurement
        if m.min_count == 0 and m.min_duration_s <= 0:
            return
        before = self._state()
        self.sink.set_progress(self.category, state={"before": before})
        try:
            if self.source == PROFILER:
                self._profiled_pass(session, pool)
            else:
                self._timed_pass(session, pool)
        finally:
            with cleanup(f"recording the state after the timed pass of {self.category}"):
                self.sink.set_progress(self.category, state={"before": before, "after": self._state()})

    def _failure(self, exc: Exception) -> DeviceFailure:
        return DeviceFailure(f"device '{self.work.device.profile.name}' failed during {self.category}: {exc}")

    def _infer(self, session: Session, batch: np.ndarray, phase: str) -> None:
        start = now_ns()
        try:
            result = session.infer(batch)
        except BenchError:
            raise
        except Exception as exc:  # a runtime or a link that dropped: keep the record, say what broke
            raise self._failure(exc) from exc
        end = now_ns()
        if phase == "timed":
            self._window = (self._window or (start, end))[0], end
        self._pending.append((phase, start, end, result.device_ms))
        if end - self._flushed_ns >= FLUSH_INTERVAL_NS:
            self._flush()

    def _flush(self) -> None:
        """Write the buffered latency rows; the buffer is taken first, so a failed write is never repeated."""
        rows, self._pending = self._pending, []
        self._flushed_ns = now_ns()
        if rows:
            self.sink.append("latency", [self._row(phase, start, end, (end - start) / 1e6, device_ms)
                                         for phase, start, end, device_ms in rows])

    def _row(self, phase: str, start: int | None, end: int | None, latency_ms: float,
             device_ms: float | None) -> dict[str, Any]:
        return {"category": self.category, "attempt": self.sink.attempt, "phase": phase, "t_start_ns": start,
                "t_end_ns": end, "latency_ms": latency_ms, "device_ms": device_ms, "timing_source": self.source}

    def _inputs(self, samples: list[Sample]) -> Iterator[tuple[Sample, Loaded]]:
        m = self.work.measurement
        return prefetch(samples, self.work.library, workers=m.prefetch_workers, depth=m.prefetch_depth)

    def _pool(self) -> list[np.ndarray]:
        """The category's first readable inputs, loaded apart from the accuracy pass (a resumed run)."""
        pool: list[np.ndarray] = []
        for _, loaded in self._inputs(self.job.samples):
            if loaded.tensor is not None:
                pool.append(loaded.tensor)
            if len(pool) == TIMED_POOL:
                break
        return pool

    def _warmup(self, session: Session, pool: list[np.ndarray]) -> None:
        """Untimed inferences before the timed pass, cycling over its input pool."""
        if self.source == PROFILER:  # a device that times itself warms up inside its own profiling
            return
        self._flushed_ns = now_ns()
        try:
            for i in range(self.work.measurement.warmup):
                self._infer(session, pool[i % len(pool)], "warmup")
        finally:
            with cleanup(f"recording the warm-up rows of {self.category}"):
                self._flush()

    def _accuracy_pass(self, session: Session, todo: list[Sample]) -> list[np.ndarray]:
        """Every image once, untimed; sessions that take inputs in groups get ``chunk`` at a time, and each
        group's rows are written as soon as its outputs are back. Returns the first readable inputs as the
        timed pass's pool, so no image is decoded twice."""
        group: list[tuple[Sample, Loaded]] = []
        pool: list[np.ndarray] = []
        with bar(len(todo), f"{self.category} accuracy", "img") as progress:
            for item in self._inputs(todo):
                if item[1].tensor is not None and len(pool) < TIMED_POOL:
                    pool.append(item[1].tensor)
                group.append(item)
                if len(group) >= max(1, session.chunk):
                    self._accuracy_group(session, group)
                    progress.update(len(group))
                    group = []
            if group:
                self._accuracy_group(session, group)
                progress.update(len(group))
        return pool

    def _accuracy_group(self, session: Session, group: list[tuple[Sample, Loaded]]) -> None:
        readable = [loaded.tensor for _, loaded in group if loaded.tensor is not None]
        results = iter(self._infer_many(session, readable))
        for sample, loaded in group:
            row = {"image_id": sample.image_id, "category": self.category, "defect_type": sample.defect_type,
                   "label": sample.label, "input_sha256": loaded.sha256, "score": None, "error": loaded.error}
            if loaded.tensor is not None:
                row["score"], amap = decode(next(results), self.work.postprocess)
                if amap is not None:
                    self.sink.save_map(self.category, sample.image_id, amap)
            self.sink.append("images", [row])

    def _infer_many(self, session: Session, batches: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        try:
            results = session.infer_many(batches)
        except BenchError:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        if len(results) != len(batches):
            raise DeviceFailure(f"device '{self.work.device.profile.name}' returned {len(results)} results for "
                                f"{len(batches)} inputs in {self.category}")
        return [r.outputs for r in results]

    def _window_ns(self) -> int:
        """Duration of the timed window so far: first timed start to last timed end."""
        return 0 if self._window is None else self._window[1] - self._window[0]

    def _timed_pass(self, session: Session, pool: list[np.ndarray]) -> None:
        """Back-to-back timed inferences on in-memory inputs until both the minimum count and duration are met,
        with the power meter sampled over exactly that window."""
        m = self.work.measurement
        min_ns = int(m.min_duration_s * 1e9)
        count = 0
        self._window = None
        self._flushed_ns = now_ns()
        sampler = None
        if self.meter is not None and m.min_count > 0:
            power = self.work.device.profile.power
            sampler = Sampler(self.meter, rate_hz(power), max_failures=max_failures(power))
            sampler.start()
        try:
            with bar(m.min_count, f"{self.category} timed", "img") as progress:
                while count < m.min_count or self._window_ns() < min_ns:
                    self._infer(session, pool[count % len(pool)], "timed")
                    count += 1
                    if count <= m.min_count:
                        progress.update()
        finally:
            with cleanup(f"recording the timed rows of {self.category}"):
                self._flush()
            if sampler is not None:
                with cleanup(f"recording the power samples of {self.category}"):
                    sampler.stop()
                    self.sink.append("power", sampler.rows)
                    self.sink.set_progress(self.category, power=sampler.to_manifest())

    def _profiled_pass(self, session: Session, pool: list[np.ndarray]) -> None:
        """The device's profiler times at least the minimum count; its figures become the timed rows, without
        timestamps (the host timed nothing, and laying them end to end would invent a window)."""
        m = self.work.measurement
        if m.min_count == 0:
            return
        try:
            timing = session.device_timing(pool, m.min_count)
        except BenchError:
            raise
        except Exception as exc:
            raise self._failure(exc) from exc
        if not timing.latencies_ms:
            raise DeviceFailure(f"device '{self.work.device.profile.name}' returned no latencies for "
                                f"{self.category} ({timing.source})")
        self.sink.append("latency", [self._row("timed", None, None, float(ms), float(ms))
                                     for ms in timing.latencies_ms])
        self.sink.set_progress(self.category, timing={"source": timing.source, "count": len(timing.latencies_ms),
                                                      **timing.details})
