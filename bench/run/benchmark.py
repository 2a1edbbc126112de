"""``bench run``: plan, measure, finalize, and a record whose status says how the run ended.

Whatever stops a run once its record exists (Ctrl-C, SIGTERM, a device that drops, a bad image)
ends here: the record is finished with the matching status and the reason, every row written so
far stays in it, and the error names the ``--resume`` that continues it.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.errors import BenchError, Interrupted
from bench.paths import results_dir
from bench.records import RunWriter, ensure_writable, load_run, new_run_id
from bench.records.writer import check_unlocked
from bench.remote.host import measure_remote
from bench.run.continuity import refuse_changed
from bench.run.finalize import finalize
from bench.run.measure import DeviceFailure, measure
from bench.run.plan import Plan, plan_run
from bench.run.request import RunRequest, resumed_request


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


def execute(request: RunRequest | None, out: Path | None = None, resume: str | None = None,
            measurement: Mapping[str, Any] | None = None) -> Path:
    """Run a benchmark, or with ``resume`` (and no request) finish an unfinished one under its recorded
    request; ``measurement`` overrides measurement settings (None values leave them). Returns the run folder."""
    if (request is None) == (resume is None):
        raise ValueError("give either a request or the run to resume")
    out = out or results_dir()
    ensure_writable(out)
    if resume is not None:
        request = resumed_request(out / resume)
        check_unlocked(out / resume)  # refuse a run another process is writing before preparing anything
    assert request is not None
    request = request.with_measurement(**(measurement or {}))
    with terminate_as_interrupt():
        try:
            plan = plan_run(request)
        except KeyboardInterrupt:
            raise Interrupted("interrupted by the user (Ctrl-C) before the run record was created") from None
        return run_plan(plan, out, resume)


def run_plan(plan: Plan, out: Path, resume: str | None = None) -> Path:
    """The device side of a run, no torch needed: create (or reopen) the record, measure what it lacks,
    finalize. Returns the run folder."""
    with terminate_as_interrupt():
        writer = _open_record(plan, out, resume)
        _measure_and_finalize(plan, writer)
    return writer.run_dir


def _open_record(plan: Plan, out: Path, resume: str | None) -> RunWriter:
    if resume is not None:
        manifest = plan.manifest
        writer = RunWriter.reopen(out / resume, manifest["command"], manifest["request"], manifest["measurement"],
                                  verify=lambda recorded: refuse_changed(resume, recorded, manifest))
    else:
        writer = RunWriter.create(out, plan.manifest, new_run_id(plan.device.profile.name,
                                                                 plan.manifest["model"]["name"]))
    print(f"run {writer.run_dir}", file=sys.stderr)
    if not plan.remote:  # a remote device reports its own environment (and warnings) when it starts
        for warning in plan.manifest["device"]["environment"].get("warnings") or []:
            print(f"warning: {warning}", file=sys.stderr)
    return writer


def resume_hint(run_dir: Path) -> str:
    """How to finish this run, naming its results folder unless it is the default, so it works as printed."""
    out = run_dir.parent
    where = "" if out.resolve() == results_dir().resolve() else f" --out {out}"
    return f"resume with --resume {run_dir.name}{where}"


def _measure_and_finalize(plan: Plan, writer: RunWriter) -> None:
    """Measure what the record lacks, then finalize; finish the record with the status that fits how it ended."""
    hint = resume_hint(writer.run_dir)
    try:
        done = set(load_run(writer.run_dir).images["image_id"]) if writer.attempt > 0 else set()
        timed = {job.category for job in plan.jobs if writer.progress(job.category).get("timed_attempt") is not None}
        work = plan.workload(done, timed)
        (measure_remote if plan.remote else measure)(work, writer)
        finalize(plan, writer)
    except KeyboardInterrupt:
        writer.finish("interrupted", error="interrupted by the user (Ctrl-C)")
        raise Interrupted(f"interrupted by the user; {hint}") from None
    except Interrupted as exc:
        writer.finish("interrupted", error=str(exc))
        raise Interrupted(f"{exc}; {hint}") from None
    except DeviceFailure as exc:
        writer.finish("failed", error=str(exc))
        raise DeviceFailure(f"{exc}; what was measured is kept, {hint}") from exc
    except BenchError as exc:
        writer.finish("failed", error=str(exc))
        raise
    except Exception as exc:
        writer.finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
