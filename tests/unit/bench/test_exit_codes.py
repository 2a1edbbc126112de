"""Device failures share one documented exit code (DESIGN.md: 5), apart from bad input (2) and crashes (1)."""

from __future__ import annotations

import pytest

from bench.devices.imx500.session import InjectionFailed
from bench.devices.rb5.aihub import AIHubError
from bench.devices.rb5.qnn_adb import BoardError
from bench.devices.tensorrt.build import EngineBuildFailed
from bench.devices.tensorrt.cuda_runtime import CudaError
from bench.devices.tensorrt.session import EngineLoadFailed
from bench.errors import BadInput, DeviceFailure


@pytest.mark.parametrize("error", [EngineBuildFailed, EngineLoadFailed, CudaError, AIHubError, BoardError,
                                   InjectionFailed])
def test_every_adapters_device_failure_exits_5(error: type[DeviceFailure]) -> None:
    assert issubclass(error, DeviceFailure) and not issubclass(error, BadInput)
    assert error("x").exit_code == 5


def test_the_resume_hint_names_a_results_folder_that_is_not_the_default(tmp_path, monkeypatch) -> None:
    """Issue 20: the hint after Ctrl-C left out --out, so following it failed with 'no such run in results'."""
    from bench.run.benchmark import resume_hint

    monkeypatch.chdir(tmp_path)
    assert resume_hint(tmp_path / "results" / "R1") == "resume with --resume R1"
    assert resume_hint(tmp_path / "elsewhere" / "R1") == f"resume with --resume R1 --out {tmp_path / 'elsewhere'}"


@pytest.mark.parametrize("script, message", [
    ("exec sleep 600", "did not finish within 1 s; the device may be down or the link dropped"),
    ("echo 'ssh: connect to host lab-jetson port 22: No route to host' >&2; exit 255", "No route to host"),
])
def test_an_unreachable_or_silent_ssh_device_is_a_device_failure(tmp_path, monkeypatch, script: str,
                                                                   message: str) -> None:
    """Issue 20: an ssh device that timed out ended in a TimeoutExpired traceback (exit 1). A stand-in ``ssh``
    on PATH plays the device; the deadline is the caller's, so the test does not depend on speed."""
    from bench.remote.ssh import SshFailed, SshTarget

    fake = tmp_path / "bin" / "ssh"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\n{script}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    with pytest.raises(SshFailed, match=message) as failure:
        SshTarget("lab-jetson").run(["true"], timeout=1)
    assert failure.value.exit_code == 5
