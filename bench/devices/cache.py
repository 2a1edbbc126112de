"""The artifact cache: an artifact is reused only when everything that built it is unchanged.

The key covers the model's checksum, the device family and the harness's compiler revision for it
(the source of the family's compile path and, emulated, the emulation engine's: an edited FP16
policy, wrapper or default rebuilds), the profile's resolved typed settings (defaults included, so a
changed default rebuilds too), the toolchain versions, and for toolchains that start from the
PyTorch module the representative images, normalisation, target platform and model code revision.
Each entry stores the artifact's sha256 beside it; an entry whose file no longer matches (truncated,
edited, half-written) is rebuilt, never reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.devices.base import Artifact, Device, ExportedModel
from bench.paths import cache_dir
from bench.records.atomic import write_json
from bench.util import file_sha256


def key_payload(exported: ExportedModel, device: Device) -> dict[str, Any]:
    """What the cache key hashes."""
    quantizes = device.quantization_images() > 0
    return {
        "model": exported.sha256,
        "family": device.profile.kind,
        "emulated": device.emulated,
        "compiler_revision": device.compiler_revision(),
        "settings": device.artifact_settings(),
        "toolchain": device.toolchain(),
        "representative": exported.representative_key,
        "normalization": exported.normalization if quantizes else None,
        "tpc_version": exported.tpc_version if quantizes else None,
        "module_revision": exported.module_revision if quantizes else None,
    }


def cache_key(exported: ExportedModel, device: Device) -> str:
    payload = key_payload(exported, device)
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:24]


def compiled_artifact(exported: ExportedModel, device: Device, root: Path) -> tuple[Artifact, bool]:
    """The cached artifact when valid, else a freshly compiled one; returns (artifact, was_cached).

    The artifact's details record the compiler revision it was built with, so the manifest shows it.
    """
    entry = root / device.profile.name / cache_key(exported, device)
    meta_path = entry / "artifact.json"
    if meta_path.exists():
        cached = _load(meta_path)
        if cached is not None and cached.path.is_file() and file_sha256(cached.path) == cached.sha256:
            return cached, True
        shutil.rmtree(entry, ignore_errors=True)
    built = device.compile(exported, entry)
    artifact = replace(built, sha256=file_sha256(built.path), source_sha256=exported.sha256,
                       details={**built.details, "compiler_revision": device.compiler_revision()})
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


def artifact_for(device: Device, exported: ExportedModel) -> tuple[Artifact, bool]:
    """The artifact from the cache folder (``bench.paths.cache_dir()/artifacts``), built when missing; returns
    (artifact, was_cached). The one place a run, ``bench compile`` and a remote worker compile."""
    return compiled_artifact(exported, device, cache_dir() / "artifacts")
