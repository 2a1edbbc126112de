"""The runner: drives any Device through compile, open, warm-up, accuracy and timed passes.

It knows the Device interface and nothing of any device. Timing follows MLPerf LoadGen's
single-stream scenario: the inputs are loaded into memory first (LoadGen's performance sample
set, here up to 64 distinct inputs per category), then an untimed warm-up, then back-to-back
timed inferences until both a minimum count and a minimum duration are met. The accuracy
pass over the whole dataset is never timed: its decoding and preprocessing run in background
threads, which on a CPU device would compete with the inference being timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.clock import now_ns
from bench.data.loader import InputLoader, Loaded
from bench.data.samples import Sample
from bench.data.stream import prefetch
from bench.devices.base import Artifact, Device, ExportedModel, Session
from bench.devices.cache import compiled_artifact
from bench.errors import BadInput, BenchError
from bench.models.postprocess import decode
from bench.power.base import PowerMeter, Sampler
from bench.progress import bar
from bench.records.writer import RunWriter

TIMED_POOL = 64  # distinct inputs a separate timed pass cycles over


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
class CategoryJob:
    category: str
    exported: ExportedModel
    samples: list[Sample]


class DeviceFailure(BenchError):
    """The device or its runtime failed mid-run; what was recorded so far is kept."""


class JobRunner:
    """What every runner holds: the device, the record, the inputs and the settings of one run."""

    meter: PowerMeter | None = None

    def __init__(self, device: Device, writer: RunWriter, loader: InputLoader, postprocess: dict[str, Any],
                 measurement: Measurement, artifact_root: Path) -> None:
        self.device = device
        self.writer = writer
        self.loader = loader
        self.postprocess = postprocess
        self.measurement = measurement
        self.artifact_root = artifact_root

    def pending(self, jobs: list[CategoryJob], done: set[str]) -> list[CategoryJob]:
        """The jobs with work left: an image not in the record, or no completed timed pass."""
        progress = self.writer.manifest["progress"]
        return [job for job in jobs if not (progress.get(job.category, {}).get("timed_attempt") is not None
                                            and all(s.image_id in done for s in job.samples))]


class Runner(JobRunner):
    """Runs category jobs on a device attached to this machine."""

    def __init__(self, device: Device, writer: RunWriter, loader: InputLoader, postprocess: dict[str, Any],
                 measurement: Measurement, artifact_root: Path, meter: PowerMeter | None = None,
                 rate_hz: float = 100.0, prebuilt: dict[str, Artifact] | None = None) -> None:
        super().__init__(device, writer, loader, postprocess, measurement, artifact_root)
        self.meter = meter
        self.rate_hz = rate_hz
        self.prebuilt = prebuilt or {}  # artifacts compiled elsewhere (a remote run's host), by category
        self._window: tuple[int, int] | None = None

    def run(self, jobs: list[CategoryJob], done: set[str]) -> None:
        for job in self.pending(jobs, done):
            self._run_category(job, done, self.writer.manifest["progress"].get(job.category, {}))

    def _run_category(self, job: CategoryJob, done: set[str], state: dict[str, Any]) -> None:
        if job.category in self.prebuilt:
            artifact, cached = self.prebuilt[job.category], True
        else:
            artifact, cached = compiled_artifact(job.exported, self.device, self.artifact_root)
        self.writer.set_artifact(job.category, artifact.sha256, artifact.toolchain, cached, artifact.details)
        todo = [s for s in job.samples if s.image_id not in done]
        session = self.device.open(artifact)
        try:
            pool = self._warmup(session, job)
            if todo:
                self._accuracy_pass(session, job.category, todo)
                done.update(s.image_id for s in todo)
            self.writer.set_progress(job.category, accuracy_done=True)
            self._timed_pass(session, job, pool)
            self.writer.set_progress(job.category, timed_attempt=self.writer.attempt)
        finally:
            audit = session.audit()
            if audit:
                self.writer.set_progress(job.category, session=audit)
            session.close()

    def _infer(self, session: Session, batch: np.ndarray, category: str, phase: str | None) -> dict[str, np.ndarray]:
        start = now_ns()
        try:
            result = session.infer(batch)
        except BenchError:
            raise
        except Exception as exc:  # a runtime or a link that dropped: keep the record, say what broke
            raise DeviceFailure(f"device '{self.device.profile.name}' failed during {category}: {exc}") from exc
        end = now_ns()
        if phase == "timed":
            self._window = (self._window or (start, end))[0], end
        if phase is not None:
            self.writer.append("latency", [{
                "category": category, "attempt": self.writer.attempt, "phase": phase, "t_start_ns": start,
                "t_end_ns": end, "latency_ms": (end - start) / 1e6, "device_ms": result.device_ms,
            }])
        return result.outputs

    def _inputs(self, samples: list[Sample]) -> Iterator[tuple[Sample, Loaded]]:
        m = self.measurement
        return prefetch(samples, self.loader, workers=m.prefetch_workers, depth=m.prefetch_depth)

    def _warmup(self, session: Session, job: CategoryJob) -> list[np.ndarray]:
        """Warm up on the category's first readable inputs, which also become the timed pass's input pool."""
        pool: list[np.ndarray] = []
        for _, loaded in self._inputs(job.samples):
            if loaded.tensor is not None:
                pool.append(loaded.tensor)
            if len(pool) == TIMED_POOL:
                break
        if not pool:
            raise BadInput(f"category '{job.category}': no readable image to run")
        if session.host_timed:  # a device that times itself warms up inside its own profiling
            for i in range(self.measurement.warmup):
                self._infer(session, pool[i % len(pool)], job.category, "warmup")
        return pool

    def _accuracy_pass(self, session: Session, category: str, todo: list[Sample]) -> None:
        """Every image once, untimed; sessions that take inputs in groups get ``chunk`` at a time, and each
        group's rows are written as soon as its outputs are back."""
        group: list[tuple[Sample, Loaded]] = []
        with bar(len(todo), f"{category} accuracy", "img") as progress:
            for item in self._inputs(todo):
                group.append(item)
                if len(group) >= max(1, session.chunk):
                    self._accuracy_group(session, category, group)
                    progress.update(len(group))
                    group = []
            if group:
                self._accuracy_group(session, category, group)
                progress.update(len(group))

    def _accuracy_group(self, session: Session, category: str, group: list[tuple[Sample, Loaded]]) -> None:
        readable = [loaded.tensor for _, loaded in group if loaded.tensor is not None]
        results = iter(self._infer_many(session, readable, category))
        for sample, loaded in group:
            row = {"image_id": sample.image_id, "category": category, "defect_type": sample.defect_type,
                   "label": sample.label, "input_sha256": loaded.sha256, "score": None, "error": loaded.error}
            if loaded.tensor is not None:
                row["score"], amap = decode(next(results), self.postprocess)
                if amap is not None:
                    self.writer.save_map(category, sample.image_id, amap)
            self.writer.append("images", [row])

    def _infer_many(self, session: Session, batches: list[np.ndarray], category: str) -> list[dict[str, np.ndarray]]:
        try:
            results = session.infer_many(batches)
        except BenchError:
            raise
        except Exception as exc:
            raise DeviceFailure(f"device '{self.device.profile.name}' failed during {category}: {exc}") from exc
        if len(results) != len(batches):
            raise DeviceFailure(f"device '{self.device.profile.name}' returned {len(results)} results for "
                                f"{len(batches)} inputs in {category}")
        return [r.outputs for r in results]

    def _window_ns(self) -> int:
        """Duration of the timed window so far: first timed start to last timed end."""
        return 0 if self._window is None else self._window[1] - self._window[0]

    def _device_timed_pass(self, session: Session, job: CategoryJob, pool: list[np.ndarray]) -> None:
        """Latencies from the device's own profiler, recorded as timed rows laid end to end from now (so the
        window, and FPS, assume back-to-back execution on the device); the source is recorded per category."""
        m = self.measurement
        if m.min_count == 0:
            return
        timing = session.device_timing(pool, m.min_count)
        if not timing.latencies_ms:
            raise DeviceFailure(f"device '{self.device.profile.name}' returned no latencies for {job.category} "
                                f"({timing.source})")
        t = now_ns()
        rows = []
        for ms in timing.latencies_ms:
            end = t + round(ms * 1e6)
            rows.append({"category": job.category, "attempt": self.writer.attempt, "phase": "timed", "t_start_ns": t,
                         "t_end_ns": end, "latency_ms": float(ms), "device_ms": float(ms)})
            t = end
        self.writer.append("latency", rows)
        self.writer.set_progress(job.category, timing={"source": timing.source, "host_timed": False,
                                                       "count": len(rows), **timing.details})

    def _timed_pass(self, session: Session, job: CategoryJob, pool: list[np.ndarray]) -> None:
        """Back-to-back timed inferences on in-memory inputs until both the minimum count and duration are met."""
        if not session.host_timed:
            self._device_timed_pass(session, job, pool)
            return
        m = self.measurement
        min_ns = int(m.min_duration_s * 1e9)
        count = 0
        self._window = None
        sampler = Sampler(self.meter, self.rate_hz) if self.meter is not None and m.min_count > 0 else None
        if sampler is not None:
            sampler.start()
        try:
            with bar(m.min_count, f"{job.category} timed", "img") as progress:
                while count < m.min_count or self._window_ns() < min_ns:
                    self._infer(session, pool[count % len(pool)], job.category, "timed")
                    count += 1
                    if count <= m.min_count:
                        progress.update()
        finally:
            if sampler is not None:
                sampler.stop()
                self.writer.append("power", sampler.rows)
                self.writer.set_progress(job.category, power=sampler.to_manifest())
