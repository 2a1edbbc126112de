"""The base classes' template methods: ``open`` checks availability once, ``close`` runs once and never masks
the failure that is already propagating; and the role every device records."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.devices.base import Artifact, Device, DeviceProfile, ExportedModel, InferenceResult, Session
from bench.devices.profiles import load_profile
from bench.devices.registry import create_device
from bench.errors import BadInput


class RecordingSession(Session):
    def __init__(self, close_error: Exception | None = None) -> None:
        self.closes = 0
        self.close_error = close_error

    def infer(self, batch: np.ndarray) -> InferenceResult:
        raise RuntimeError("the device dropped")

    def _close(self) -> None:
        self.closes += 1
        if self.close_error is not None:
            raise self.close_error


class UnavailableDevice(Device):
    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        self.asked = 0
        self.opened = 0

    def availability(self) -> tuple[bool, str]:
        self.asked += 1
        return False, "the sensor is not connected"

    def _open(self, artifact: Artifact) -> Session:
        self.opened += 1
        return RecordingSession()

    def toolchain(self) -> dict[str, str]:
        return {}

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        raise AssertionError("not compiled here")

    def environment(self) -> dict[str, Any]:
        return {}


def profile(**fields: Any) -> DeviceProfile:
    return DeviceProfile(**{"name": "cam", "kind": "host", "precision": "fp32", "source": Path("cam.yaml"), **fields})


def test_a_failing_close_does_not_mask_the_failure_in_flight(capsys: pytest.CaptureFixture) -> None:
    session = RecordingSession(close_error=RuntimeError("cudaStreamDestroy failed"))
    with pytest.raises(RuntimeError, match="the device dropped"), session:
        session.infer(np.zeros(1))
    assert session.closes == 1
    assert "cudaStreamDestroy failed" in capsys.readouterr().err


def test_a_failing_close_without_another_failure_raises() -> None:
    with pytest.raises(RuntimeError, match="cudaStreamDestroy failed"), \
            RecordingSession(close_error=RuntimeError("cudaStreamDestroy failed")):
        pass


def test_close_runs_once() -> None:
    session = RecordingSession()
    with session:
        pass
    session.close()
    session.close()
    assert session.closes == 1


def test_open_on_an_unavailable_device_says_why_once_and_never_opens() -> None:
    device = UnavailableDevice(profile())
    artifact = Artifact(Path("model.onnx"), "0" * 64, "fp32", {}, "0" * 64)
    for _ in range(2):
        with pytest.raises(BadInput) as err:
            device.open(artifact)
        assert str(err.value) == "cam.yaml: device 'cam' cannot run here: the sensor is not connected"
    assert (device.asked, device.opened) == (1, 0)


def test_the_manifest_records_the_profile_role() -> None:
    assert create_device(load_profile("host")).describe()["role"] == "reference"
    assert create_device(load_profile("host-cuda")).describe()["role"] == "device"


def test_an_emulated_device_is_never_the_reference() -> None:
    pretending = replace(load_profile("jetson"), role="reference")
    assert create_device(pretending).role == "reference"
    assert create_device(pretending, emulate=True).role == "device"
