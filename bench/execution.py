"""The device side of a run: jobs in, a finished run record out, with no torch anywhere.

Whatever stops a run (Ctrl-C, SIGTERM, a device that drops, a bad image) ends here: the
record is finished with the matching status and the reason, and every row written so far
stays in it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.loader import InputLoader
from bench.devices.base import Device
from bench.errors import BenchError
from bench.metrics.summary import summarize
from bench.records import RunWriter, load_run
from bench.runner import CategoryJob, Measurement, Runner

MasksFn = Callable[[], Mapping[str, Mapping[str, np.ndarray] | None]]


class Interrupted(BenchError):
    """The run was stopped by Ctrl-C or a termination signal; it can be resumed."""

    exit_code = 130


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, a scheduler) ends the run like Ctrl-C: recorded as interrupted."""
    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"interrupted by signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def execute_jobs(device: Device, writer: RunWriter, jobs: list[CategoryJob], loader: InputLoader,
                 postprocess: dict[str, Any], measurement: Measurement, artifact_root: Path,
                 masks: MasksFn, done: set[str] | None = None, gmac: float | None = None) -> Path:
    """Run every job into ``writer`` and finish the record; returns the run folder."""
    runner = Runner(device, writer, loader, postprocess, measurement, artifact_root)
    resume_hint = f"resume with --resume {writer.run_dir.name}"
    try:
        with terminate_as_interrupt():
            runner.run(jobs, set() if done is None else done)
            record = load_run(writer.run_dir)
            categories = [job.category for job in jobs]
            progress = writer.manifest["progress"]
            metrics = summarize(record.images, record.latency, {c: record.maps(c) for c in categories}, masks(),
                                {c: progress.get(c, {}).get("timed_attempt") for c in categories}, gmac,
                                record.power, device.profile.power.get("rails"),
                                device.profile.power.get("idle_w"))
            writer.finish("complete", metrics)
    except KeyboardInterrupt:
        writer.finish("interrupted", error="interrupted by the user (Ctrl-C)")
        raise Interrupted(f"interrupted by the user; {resume_hint}") from None
    except Interrupted as exc:
        writer.finish("interrupted", error=str(exc))
        raise Interrupted(f"{exc}; {resume_hint}") from None
    except BenchError as exc:
        writer.finish("failed", error=str(exc))
        raise
    except Exception as exc:
        writer.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    return writer.run_dir
