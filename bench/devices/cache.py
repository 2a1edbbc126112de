"""The artifact cache, keyed by (model checksum, device profile, toolchain version).

Each entry stores the artifact's sha256 beside it; an entry whose file no longer matches
(truncated, edited, half-written) is rebuilt, never reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.devices.base import Artifact, Device, ExportedModel
from bench.devices.profiles import profile_data
from bench.records.atomic import write_json
from bench.util import file_sha256


def cache_key(exported: ExportedModel, device: Device) -> str:
    payload = {"model": exported.sha256, "profile": profile_data(device.profile), "toolchain": device.toolchain(),
               "emulated": device.emulated, "representative": exported.representative_key,
               "normalization": exported.normalization if device.quantization_images() else None}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def compiled_artifact(exported: ExportedModel, device: Device, root: Path) -> tuple[Artifact, bool]:
    """The cached artifact when valid, else a freshly compiled one; returns (artifact, was_cached)."""
    entry = root / device.profile.name / cache_key(exported, device)
    meta_path = entry / "artifact.json"
    if meta_path.exists():
        cached = _load(meta_path)
        if cached is not None and cached.path.is_file() and file_sha256(cached.path) == cached.sha256:
            return cached, True
        shutil.rmtree(entry, ignore_errors=True)
    artifact = device.compile(exported, entry)
    artifact = Artifact(artifact.path, file_sha256(artifact.path), artifact.precision, artifact.toolchain,
                        exported.sha256, artifact.details)
    record: dict[str, Any] = asdict(artifact)
    record["path"] = artifact.path.relative_to(entry).as_posix()
    write_json(meta_path, record)
    return artifact, False


def _load(meta_path: Path) -> Artifact | None:
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8"))
        data["path"] = meta_path.parent / data["path"]
        return Artifact(**data)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
