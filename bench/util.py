"""Small helpers shared by several modules."""

from __future__ import annotations

import hashlib
import importlib
from importlib import metadata
from pathlib import Path


def installed_version(dist: str) -> str | None:
    """The installed distribution's version, else the importable module's ``__version__``, else None.

    The module fallback covers packages installed without metadata (a distro's python3-* package, a
    test's stand-in module)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(dist.replace("-", "_"))
    except ImportError:
        return None
    return str(getattr(module, "__version__", "unknown"))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
