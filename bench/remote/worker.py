"""The device-side worker: ``python -m bench.remote.worker BUNDLE`` runs a shipped job on this machine.

It drives the ordinary :class:`bench.runner.Runner` with this machine's adapter and power meter,
and instead of writing a run folder it streams every record event as one JSON line on stdout
(:class:`StreamWriter`); the lab host applies them to its own run record as they arrive, so
whatever was measured before a disconnect is kept there. Logs and progress go to stderr.
"""

from __future__ import annotations

import base64
import io
import json
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from bench.devices.profiles import profile_from_data
from bench.devices.registry import create_device
from bench.errors import BenchError
from bench.paths import cache_dir
from bench.power import MeterUnavailable, open_meter, rate_hz
from bench.remote.bundle import BundleLoader, read_bundle
from bench.runner import Measurement, Runner

PROTOCOL = 1


class StreamWriter:
    """The parts of RunWriter the runner uses, as JSON-line events on a stream."""

    def __init__(self, out: TextIO, attempt: int, progress: dict[str, Any]) -> None:
        self.out = out
        self.attempt = attempt
        self.manifest: dict[str, Any] = {"progress": progress}

    def emit(self, event: str, **payload: Any) -> None:
        self.out.write(json.dumps({"event": event, **payload}, default=_plain) + "\n")
        self.out.flush()

    def append(self, table: str, rows: list[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            self.emit("rows", table=table, rows=rows)

    def save_map(self, category: str, image_id: str, anomaly_map: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, anomaly_map.astype(np.float16), allow_pickle=False)
        self.emit("map", category=category, image_id=image_id, npy=base64.b64encode(buffer.getvalue()).decode())

    def set_progress(self, category: str, **state: Any) -> None:
        self.manifest["progress"].setdefault(category, {}).update(state)
        self.emit("progress", category=category, state=state)

    def set_artifact(self, category: str, sha256: str, toolchain: dict[str, str], cached: bool,
                     details: dict[str, Any] | None = None) -> None:
        self.emit("artifact", category=category, sha256=sha256, toolchain=toolchain, cached=cached,
                  details=details or {})


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def run_bundle(folder: Path, out: TextIO) -> None:
    spec, jobs, inputs, artifacts = read_bundle(folder)
    profile = profile_from_data(spec["profile"])
    device = create_device(profile)
    writer = StreamWriter(out, int(spec["attempt"]), spec["progress"])
    writer.emit("hello", protocol=PROTOCOL, device=device.describe())
    meter = None
    try:
        meter = open_meter(profile.power)
    except MeterUnavailable as exc:
        writer.emit("measurement", power_status="unavailable", power_reason=str(exc))
    try:
        runner = Runner(device, writer, BundleLoader(inputs), spec["postprocess"], Measurement(**spec["measurement"]),
                        cache_dir() / "artifacts", meter, rate_hz(profile.power), prebuilt=artifacts)
        runner.run(jobs, set(spec.get("done", [])))
    finally:
        if meter is not None:
            meter.close()
    writer.emit("done")


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
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a library prints must not corrupt the event stream
    signal.signal(signal.SIGHUP, signal.default_int_handler)  # the host went away: stop like Ctrl-C
    try:
        run_bundle(Path(args[0]), out)
    except BenchError as exc:
        _report(out, str(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        _report(out, "the worker was interrupted", 130)
        return 130
    except Exception as exc:  # the device's runtime failed in a way the adapter did not name
        _report(out, f"{type(exc).__name__}: {exc}", 1)
        return 1
    return 0


def _report(out: TextIO, message: str, code: int) -> None:
    try:
        out.write(json.dumps({"event": "error", "message": message, "exit_code": code}) + "\n")
        out.flush()
    except (BrokenPipeError, OSError):
        pass  # the host is gone; nothing left to tell


if __name__ == "__main__":
    raise SystemExit(main())
