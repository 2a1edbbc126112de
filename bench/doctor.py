"""``bench doctor``: for every device profile, whether it can run here and exactly what is missing.

Each profile gets a row for its adapter (and power meter) and, when it has an emulation
section, one for running its numerics on this host. Where cuda-python is installed, one row says
whether this NVIDIA driver can run its CUDA runtime and the pip TensorRT's CUDA major, since a
mismatch otherwise surfaces only as an opaque error at the first CUDA call.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from bench.devices.profiles import load_profile, profile_data, profile_names
from bench.devices.registry import create_device
from bench.devices.tensorrt.cuda_runtime import load_cudart
from bench.devices.tensorrt.versions import cuda_compatibility, tensorrt_wheel
from bench.errors import BenchError
from bench.power import check_meter, meter_name


def _export_status() -> tuple[bool, str]:
    missing = [name for name in ("torch", "torchvision", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        return False, f"missing {', '.join(missing)}: pip install -e '.[export]'"
    return True, "ok"


def cuda_rows() -> list[dict[str, Any]]:
    """The driver/runtime row when cuda-python imports; none where it is not installed."""
    try:
        cudart = load_cudart()
    except ImportError:
        return []
    return [_check("cuda driver/runtime", lambda: cuda_compatibility(cudart, tensorrt_wheel()))]


def _check(check: str, probe: Any) -> dict[str, Any]:
    try:
        ok, reason = probe()
    except BenchError as exc:
        ok, reason = False, str(exc)
    return {"check": check, "ok": ok, "reason": reason}


def remote_status(profile: Any) -> tuple[bool, str]:
    """Ask the device itself, over SSH, whether it can run the profile."""
    from bench.remote.ssh import SshTarget

    target = SshTarget.from_location(profile.location, profile.source)
    data = json.dumps(profile_data(profile), default=str)
    out = target.run([target.python, "-m", "bench.remote.worker", "--check", data],
                     timeout=90)
    try:
        answer = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return False, f"on {target.name}: unexpected answer from bench.remote.worker ({out.strip()[:80]!r})"
    return bool(answer["ok"]), f"on {target.name}: {answer['reason']}"


def diagnose() -> list[dict[str, Any]]:
    rows = [_check("export (host side)", _export_status), *cuda_rows()]
    for name in profile_names():
        try:
            profile = load_profile(name)
        except BenchError as exc:
            rows.append({"check": f"device {name}", "ok": False, "reason": str(exc)})
            continue

        def device_status(profile: Any = profile) -> tuple[bool, str]:
            if profile.location.get("where") == "ssh":
                return remote_status(profile)
            ok, reason = create_device(profile).availability()
            if ok and meter_name(profile.power) != "none":
                meter_ok, meter_reason = check_meter(profile.power)
                return meter_ok, f"{reason}; power: {meter_reason}"
            return ok, reason

        rows.append(_check(f"device {name}", device_status))
        try:
            device = create_device(profile)
        except BenchError:
            device = None  # the device row above already says why
        if device is not None and device.compiles_apart():
            rows.append(_check(f"compile {name}", device.compile_status))
        if profile.emulation:
            rows.append(_check(f"emulate {name}", lambda p=profile: create_device(p, emulate=True).availability()))
    return rows
