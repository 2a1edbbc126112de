"""``bench doctor``: for every device profile, whether it can run here and exactly what is missing."""

from __future__ import annotations

import importlib.util
from typing import Any

from bench.devices.profiles import load_profile, profile_names
from bench.devices.registry import adapter_class
from bench.errors import BenchError
from bench.power import meter_name


def _export_status() -> tuple[bool, str]:
    missing = [name for name in ("torch", "torchvision", "onnx") if importlib.util.find_spec(name) is None]
    if missing:
        return False, f"missing {', '.join(missing)}: pip install -e '.[export]'"
    return True, "ok"


def diagnose() -> list[dict[str, Any]]:
    rows = []
    export_ok, export_reason = _export_status()
    rows.append({"check": "export (host side)", "ok": export_ok, "reason": export_reason})
    for name in profile_names():
        try:
            profile = load_profile(name)
            cls = adapter_class(profile.kind)
            meter_name(profile.power)
            ok, reason = cls.availability()
        except BenchError as exc:
            ok, reason = False, str(exc)
        rows.append({"check": f"device {name}", "ok": ok, "reason": reason})
    return rows
