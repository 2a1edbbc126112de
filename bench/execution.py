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
from bench.metrics.energy import timed_window
from bench.metrics.summary import summarize
from bench.power import MeterUnavailable, PowerMeter, meter_name, open_meter, open_trace, rate_hz
from bench.records import RunWriter, load_run
from bench.runner import CategoryJob, JobRunner, Measurement, Runner

# Masks of the evaluated images (those without an error), per category; None where pixel metrics are n/a.
MasksFn = Callable[[set[str]], Mapping[str, Mapping[str, np.ndarray] | None]]


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


def _meter(device: Device, writer: RunWriter) -> PowerMeter | None:
    """The profile's live meter; one that cannot be opened is recorded as unavailable and the run goes on
    (accuracy and latency stay valid, energy says why it is missing)."""
    try:
        return open_meter(device.profile.power)
    except MeterUnavailable as exc:
        writer.update(measurement={**writer.manifest.get("measurement", {}), "power_status": "unavailable",
                                   "power_reason": str(exc)})
        return None


def execute_jobs(device: Device, writer: RunWriter, jobs: list[CategoryJob], loader: InputLoader,
                 postprocess: dict[str, Any], measurement: Measurement, artifact_root: Path,
                 masks: MasksFn, done: set[str] | None = None, gmac: float | None = None) -> Path:
    """Run every job into ``writer`` and finish the record; returns the run folder.

    A profile whose ``location.where`` is ``ssh`` runs on its device through the remote worker
    (``bench.remote``); its meter is opened there.
    """
    from bench.remote.host import RemoteRunner, is_remote

    runner: JobRunner
    meter = None
    if is_remote(device) and not device.emulated:
        runner = RemoteRunner(device, writer, loader, postprocess, measurement, artifact_root)
    else:
        meter = None if device.emulated else _meter(device, writer)
        runner = Runner(device, writer, loader, postprocess, measurement, artifact_root, meter,
                        rate_hz(device.profile.power))
    resume_hint = f"resume with --resume {writer.run_dir.name}"
    try:
        _run_and_finish(runner, writer, jobs, done, masks, gmac, resume_hint)
    finally:
        if meter is not None:
            meter.close()
    return writer.run_dir


def _rails(power: dict[str, Any], rows: Any) -> list[str] | None:
    """The rails energy is summed over: ``energy_rails``, else the sampled ``rails``, else every rail recorded.

    A Jetson samples VDD_IN and its parts (VDD_CPU_GPU_CV, VDD_SOC) but its energy is VDD_IN alone,
    which already contains them."""
    return list(power.get("energy_rails") or power.get("rails") or sorted(rows["rail"].unique())) or None


def _import_trace(power: dict[str, Any], writer: RunWriter, jobs: list[CategoryJob]) -> None:
    """An external meter's CSV trace (``meter: csv``): its samples around each timed window go into the record."""
    trace = open_trace(power)
    latency = load_run(writer.run_dir).latency
    for job in jobs:
        attempt = writer.manifest["progress"].get(job.category, {}).get("timed_attempt")
        window = timed_window(latency, job.category, attempt)
        if window is not None:
            writer.append("power", trace.rows(window[0], window[1]))


def _run_and_finish(runner: JobRunner, writer: RunWriter, jobs: list[CategoryJob], done: set[str] | None,
                    masks: MasksFn, gmac: float | None, resume_hint: str) -> None:
    """Drive the runner, compute the metrics and finish the record with the status that fits how it ended."""
    try:
        with terminate_as_interrupt():
            runner.run(jobs, set() if done is None else done)
            if not runner.device.emulated and meter_name(runner.device.profile.power) == "csv":
                _import_trace(runner.device.profile.power, writer, jobs)
            record = load_run(writer.run_dir)
            categories = [job.category for job in jobs]
            progress = writer.manifest["progress"]
            power = runner.device.profile.power
            records_power = getattr(runner, "records_power", runner.meter is not None) or meter_name(power) == "csv"
            rails = _rails(power, record.power) if records_power else None
            evaluated = set(record.images.loc[record.images["error"].isna(), "image_id"])
            metrics = summarize(record.images, record.latency, {c: record.maps(c) for c in categories},
                                masks(evaluated),
                                {c: progress.get(c, {}).get("timed_attempt") for c in categories}, gmac,
                                record.power, rails, power.get("idle_w"), power.get("note"))
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
