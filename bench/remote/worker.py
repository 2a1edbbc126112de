"""The device-side worker: ``python -m bench.remote.worker BUNDLE`` runs a shipped job on this machine.

It runs the ordinary measure step (``bench.run.measure``) with this machine's adapter and power
meter, and instead of writing a run folder its sink streams every record event as one JSON line on
stdout (:class:`StreamWriter`); the lab host applies them to its own run record as they arrive, so
whatever was measured before a disconnect is kept there. Logs and progress go to stderr.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from bench.devices.cache import artifact_for
from bench.devices.profiles import profile_from_data
from bench.devices.registry import create_device
from bench.errors import BenchError
from bench.remote.bundle import read_bundle
from bench.run.measure import Workload, measure

PROTOCOL = 1


class StreamWriter:
    """A record sink (``bench.records.sink.RecordSink``) that streams each call as a JSON-line event."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def begin(self, attempt: int, device: dict[str, Any]) -> None:
        """The stream's first event: the protocol and the device's own description; rows that follow
        belong to ``attempt``."""
        self._attempt = attempt
        self.emit("hello", protocol=PROTOCOL, device=device)

    def emit(self, event: str, **payload: Any) -> None:
        self.out.write(json.dumps({"event": event, **payload}, default=_plain) + "\n")
        self.out.flush()

    def append(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            self.emit("rows", table=table, rows=rows)

    def save_map(self, category: str, image_id: str, anomaly_map: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, anomaly_map.astype(np.float16), allow_pickle=False)
        self.emit("map", category=category, image_id=image_id, npy=base64.b64encode(buffer.getvalue()).decode())

    def set_artifact(self, category: str, sha256: str, toolchain: dict[str, str], cached: bool,
                     details: dict[str, Any] | None = None) -> None:
        self.emit("artifact", category=category, sha256=sha256, toolchain=toolchain, cached=cached,
                  details=details or {})

    def set_progress(self, category: str, **fields: Any) -> None:
        self.emit("progress", category=category, state=fields)

    def set_section(self, section: str, **fields: Any) -> None:
        self.emit("section", section=section, fields=fields)

    def finish(self, status: str, metrics: dict[str, Any] | None = None, error: str | None = None) -> None:
        """``done`` when the jobs ran to the end, else ``error`` with the reason; the host computes the metrics."""
        try:
            if status == "complete":
                self.emit("done")
            else:
                self.emit("error", status=status, message=error)
        except (BrokenPipeError, OSError):
            pass  # the host is gone; nothing left to tell


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def run_bundle(folder: Path, writer: StreamWriter) -> None:
    bundle = read_bundle(folder)
    device = create_device(profile_from_data(bundle.profile))
    writer.begin(bundle.attempt, device.describe())
    jobs = []
    for job in bundle.jobs:
        if job.artifact is None:  # compiled by the device's own toolchain (a TensorRT engine is its GPU's)
            artifact, cached = artifact_for(device, job.exported)
            job = replace(job, artifact=artifact, cached=cached)
        jobs.append(job)
    measure(Workload(device, jobs, bundle.library, bundle.postprocess, bundle.measurement, bundle.done), writer)


def check(profile_json: str) -> dict[str, Any]:
    """Whether this machine can run the profile (``bench doctor`` asks this over SSH)."""
    try:
        ok, reason = create_device(profile_from_data(json.loads(profile_json))).availability()
    except BenchError as exc:
        ok, reason = False, str(exc)
    return {"ok": ok, "reason": reason}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) == 2 and args[0] == "--check":
        print(json.dumps(check(args[1])))
        return 0
    if len(args) != 1:
        print("usage: python -m bench.remote.worker BUNDLE_FOLDER | --check PROFILE_JSON", file=sys.stderr)
        return 2
    writer = StreamWriter(sys.stdout)
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the event stream
    signal.signal(signal.SIGHUP, signal.default_int_handler)  # the host went away: stop like Ctrl-C
    try:
        run_bundle(Path(args[0]), writer)
    except BenchError as exc:
        writer.finish("failed", error=str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        writer.finish("interrupted", error="the worker was interrupted")
        return 130
    except Exception as exc:  # the device's runtime failed in a way the adapter did not name
        writer.finish("failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    writer.finish("complete")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
