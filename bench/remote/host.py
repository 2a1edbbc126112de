"""The measure step for a device behind SSH: ship the bundle, start the worker, apply its events to the sink.

The inputs are preprocessed here, by the sample library. The plan compiled where the device's
toolchain lives on this host (the IMX500 converter, AI Hub); otherwise the exported ONNX travels and
the device compiles it (a TensorRT engine belongs to the device's GPU). Each event the worker streams
is applied to the sink at once, so the record is the same as a local run's, and a dropped connection
loses nothing that was measured: the run is finished as failed and ``--resume`` continues it.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.loader import Loaded
from bench.errors import BenchError
from bench.records.sink import RecordSink
from bench.remote.bundle import write_bundle
from bench.remote.ssh import SshTarget
from bench.run.measure import DeviceFailure, Job, Workload


def measure_remote(work: Workload, sink: RecordSink) -> None:
    """Run the jobs of ``work`` on the profile's SSH target, the same as ``bench.run.measure.measure`` here."""
    if not work.jobs:
        return
    target = SshTarget.from_location(work.device.profile.location, work.device.profile.source)
    inputs = {job.category: _load(work, job) for job in work.jobs}
    with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
        bundle = write_bundle(Path(tmp), work, inputs, sink.attempt)
        remote_dir = f"{target.workdir.rstrip('/')}/{bundle.name}"
        print(f"shipping {len(work.jobs)} categories to {target.name}:{remote_dir} ...", file=sys.stderr)
        target.put(bundle, remote_dir)
    try:
        _follow(target, remote_dir, sink)
    finally:
        # an unreachable device keeps its bundle until its workdir is cleaned; the record is safe either way
        with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
            target.run(["rm", "-rf", remote_dir], timeout=30)


def _load(work: Workload, job: Job) -> dict[str, Loaded]:
    return {sample.image_id: work.library(sample) for sample in job.samples}


def _follow(target: SshTarget, remote_dir: str, sink: RecordSink) -> None:
    proc = target.stream([target.python, "-m", "bench.remote.worker", remote_dir])
    finished, error = False, None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = json.loads(line)
            kind = event.pop("event")
            if kind == "done":
                finished = True
            elif kind == "error":
                error = event
            else:
                _apply(target, sink, kind, event)
    except BaseException:  # Ctrl-C, or an event the record refuses: the worker stops rather than runs on unheard
        proc.terminate()
        raise
    finally:
        proc.wait()
    if error is not None:
        raise DeviceFailure(f"{target.name}: {error['message']}")
    if not finished:
        tail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:] or ["no output"]
        raise DeviceFailure(f"lost the connection to {target.name} (ssh exit {proc.returncode}: {tail[0]})")


def _apply(target: SshTarget, sink: RecordSink, kind: str, event: dict[str, Any]) -> None:
    if kind == "rows":
        sink.append(event["table"], event["rows"])
    elif kind == "map":
        data = np.load(io.BytesIO(base64.b64decode(event["npy"])), allow_pickle=False)
        sink.save_map(event["category"], event["image_id"], data)
    elif kind == "progress":
        sink.set_progress(event["category"], **event["state"])
    elif kind == "artifact":
        sink.set_artifact(event["category"], event["sha256"], event["toolchain"], event["cached"], event["details"])
    elif kind == "section":
        sink.set_section(event["section"], **event["fields"])
    elif kind == "hello":
        sink.set_section("device", **event["device"], remote=target.name)
        for warning in event["device"].get("environment", {}).get("warnings") or []:
            print(f"warning: {target.name}: {warning}", file=sys.stderr)
