"""The lab host's side of a remote run: ship the bundle, start the worker over SSH, record its events.

The host preprocesses the inputs, compiles where the device's toolchain lives on the host (the
IMX500 converter, AI Hub) and otherwise ships the exported ONNX for the device to compile (a
TensorRT engine belongs to the device's GPU). Each event the worker streams is applied to the
host's run record at once, so the record is the same as a local run's, and a dropped connection
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

from bench.data.loader import InputLoader, Loaded
from bench.devices.base import Artifact, Device
from bench.devices.cache import compiled_artifact
from bench.devices.profiles import profile_data
from bench.errors import BenchError
from bench.power import LIVE_METERS, meter_name
from bench.records import RunWriter
from bench.remote.bundle import write_bundle
from bench.remote.ssh import SshTarget
from bench.runner import CategoryJob, DeviceFailure, JobRunner, Measurement


def is_remote(device: Device) -> bool:
    return str(device.profile.location.get("where", "local")) == "ssh"


class RemoteRunner(JobRunner):
    """Runs category jobs on an SSH target; the same ``run(jobs, done)`` as :class:`bench.runner.Runner`."""

    def __init__(self, device: Device, writer: RunWriter, loader: InputLoader, postprocess: dict[str, Any],
                 measurement: Measurement, artifact_root: Path) -> None:
        super().__init__(device, writer, loader, postprocess, measurement, artifact_root)
        self.target = SshTarget.from_location(device.profile.location, device.profile.source)
        self.records_power = meter_name(device.profile.power) in LIVE_METERS

    def run(self, jobs: list[CategoryJob], done: set[str]) -> None:
        progress = self.writer.manifest["progress"]
        todo = self.pending(jobs, done)
        if not todo:
            return
        inputs = {job.category: self._load(job) for job in todo}
        artifacts = self._host_artifacts(todo)
        profile = profile_data(self.device.profile)
        remote_dir = f"{self.target.workdir.rstrip('/')}/{self.writer.run_dir.name}-{self.writer.attempt}"
        with tempfile.TemporaryDirectory(prefix="bench-bundle-") as tmp:
            bundle = write_bundle(Path(tmp), profile, todo, inputs, self.measurement, self.postprocess,
                                  self.writer.attempt, progress, artifacts, done)
            print(f"shipping {len(todo)} categories to {self.target.name}:{remote_dir} ...", file=sys.stderr)
            self.target.put(bundle, remote_dir)
        try:
            self._follow(remote_dir)
        finally:
            # an unreachable device keeps its bundle until its workdir is cleaned; the record is safe either way
            with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
                self.target.run(["rm", "-rf", remote_dir], timeout=30)

    def _load(self, job: CategoryJob) -> dict[str, Loaded]:
        return {sample.image_id: self.loader(sample) for sample in job.samples}

    def _host_artifacts(self, jobs: list[CategoryJob]) -> dict[str, Artifact]:
        """Compile here when this host has the device's toolchain and the device cannot compile itself."""
        if not self.device.compiles_apart() or not self.device.compile_status()[0]:
            return {}
        return {job.category: compiled_artifact(job.exported, self.device, self.artifact_root)[0] for job in jobs}

    def _follow(self, remote_dir: str) -> None:
        proc = self.target.stream([self.target.python, "-m", "bench.remote.worker", remote_dir])
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
                    self._apply(kind, event)
        except KeyboardInterrupt:
            proc.terminate()
            raise
        finally:
            proc.wait()
        if error is not None:
            raise DeviceFailure(f"{self.target.name}: {error['message']}")
        if not finished:
            tail = (proc.stderr.read() if proc.stderr else "").strip().splitlines()[-1:] or ["no output"]
            raise DeviceFailure(f"lost the connection to {self.target.name} (ssh exit {proc.returncode}: {tail[0]}); "
                                f"what was measured is kept, resume with --resume {self.writer.run_dir.name}")

    def _apply(self, kind: str, event: dict[str, Any]) -> None:
        writer = self.writer
        if kind == "rows":
            writer.append(event["table"], event["rows"])
        elif kind == "map":
            data = np.load(io.BytesIO(base64.b64decode(event["npy"])), allow_pickle=False)
            writer.save_map(event["category"], event["image_id"], data)
        elif kind == "progress":
            writer.set_progress(event["category"], **event["state"])
        elif kind == "artifact":
            writer.set_artifact(event["category"], event["sha256"], event["toolchain"], event["cached"],
                                event["details"])
        elif kind == "hello":
            writer.update(device={**event["device"], "remote": self.target.name})
            for warning in event["device"].get("environment", {}).get("warnings") or []:
                print(f"warning: {self.target.name}: {warning}", file=sys.stderr)
        elif kind == "measurement":
            writer.update(measurement={**writer.manifest.get("measurement", {}), **event})
